"""A FAISS scene index on disk, with the metadata needed to show a hit.

Layout of ``index_dir``:

- ``meta.json``: embedder id and dim, chunk records by vector id, scene texts,
  scripts, and the content hash of each ingested file; names the vectors file.
- ``vectors-<generation>.faiss``: IndexIDMap2 over IndexFlatIP (exact cosine on
  normalised vectors; a few hundred thousand chunks stay fast without training).

Saving writes a new vectors file, then atomically replaces meta.json, which
points at it: a crash at any moment leaves the previous index intact and never
pairs metadata with the wrong vectors.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from retrieval.chunk import Chunk

META_FILE = "meta.json"
FORMAT_VERSION = 1


class SceneIndexError(Exception):
    """A scene index on disk that cannot be used as it is."""


class EmbedderMismatchError(SceneIndexError):
    """Vectors from a different model or dimension than the index was built with."""


class SceneIndex:
    def __init__(self, index_dir: str | Path, *, model_id: str = "", dim: int = 0) -> None:
        """An empty index; ``SceneIndex.load`` opens a saved one, ``SceneIndex.open`` either."""
        self.index_dir = Path(index_dir)
        self.model_id = model_id
        self.dim = int(dim)
        self._faiss = None
        self._chunks: dict[int, dict] = {}  # vector id -> chunk record
        self._scenes: dict[str, dict] = {}  # scene id -> {"heading", "text", "characters"}
        self._scripts: dict[str, dict] = {}  # script id -> {"title", "source_path", ...}
        self._files: dict[str, dict] = {}  # source path -> {"hash", "script_id"}
        self._next_id = 0
        self._generation = 0

    # -- opening -------------------------------------------------------------------

    @classmethod
    def exists(cls, index_dir: str | Path) -> bool:
        return (Path(index_dir) / META_FILE).is_file()

    @classmethod
    def load(cls, index_dir: str | Path) -> "SceneIndex":
        import faiss

        index_dir = Path(index_dir)
        meta_path = index_dir / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no scene index in {index_dir} (missing {META_FILE})") from None
        if meta.get("version") != FORMAT_VERSION:
            raise SceneIndexError(f"{meta_path}: index format {meta.get('version')!r}, expected {FORMAT_VERSION}; rebuild the index")
        self = cls(index_dir, model_id=meta["model_id"], dim=meta["dim"])
        self._chunks = {int(k): v for k, v in meta["chunks"].items()}
        self._scenes = meta["scenes"]
        self._scripts = meta["scripts"]
        self._files = meta["files"]
        self._next_id = meta["next_id"]
        self._generation = meta["generation"]
        if meta.get("vectors_file"):
            self._faiss = faiss.read_index(str(index_dir / meta["vectors_file"]))
            if self._faiss.ntotal != len(self._chunks):
                raise SceneIndexError(f"{index_dir}: {self._faiss.ntotal} vectors but {len(self._chunks)} chunk records; rebuild the index")
        return self

    @classmethod
    def open(cls, index_dir: str | Path, *, model_id: str, dim: int) -> "SceneIndex":
        """Load the index in ``index_dir`` if there is one, checking it was built with
        this embedder; otherwise start an empty one for it."""
        if not cls.exists(index_dir):
            return cls(index_dir, model_id=model_id, dim=dim)
        index = cls.load(index_dir)
        index.check_embedder(model_id=model_id, dim=dim)
        return index

    def check_embedder(self, *, model_id: str, dim: int) -> None:
        if self.dim and int(dim) != self.dim:
            raise EmbedderMismatchError(
                f"index in {self.index_dir} holds {self.dim}-dimensional vectors from {self.model_id!r}; "
                f"got {dim}-dimensional vectors. Use the same embedder or rebuild the index."
            )
        if self.model_id and model_id and model_id != self.model_id:
            raise EmbedderMismatchError(
                f"index in {self.index_dir} was built with embedder {self.model_id!r}, not {model_id!r}; "
                "mixing models makes scores meaningless. Use the same embedder or rebuild the index."
            )

    # -- changing --------------------------------------------------------------------

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray, *, model_id: str = "") -> list[int]:
        """Add chunks with their vectors (row i belongs to chunks[i]); returns the vector ids."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise ValueError(f"need one vector per chunk: {len(chunks)} chunks, vectors of shape {vectors.shape}")
        self.check_embedder(model_id=model_id, dim=vectors.shape[1])
        if not len(chunks):
            return []
        if not self.dim:
            self.dim = int(vectors.shape[1])
        if model_id and not self.model_id:
            self.model_id = model_id
        if self._faiss is None:
            self._faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
        self._faiss.add_with_ids(vectors, ids)
        self._next_id += len(chunks)
        for vid, chunk in zip(ids.tolist(), chunks):
            record = asdict(chunk)
            scene_text = record.pop("scene_text")
            title = record.pop("title")
            record["characters"] = list(chunk.characters)
            self._chunks[vid] = record
            self._scenes.setdefault(chunk.scene_id, {"heading": chunk.heading, "text": scene_text, "characters": list(chunk.characters)})
            self._scripts.setdefault(chunk.script_id, {"title": title})
        return ids.tolist()

    def set_script_info(self, script_id: str, **info) -> None:
        """Record script-level facts (title, authors, licence, source path...)."""
        self._scripts.setdefault(script_id, {}).update(info)

    def remove_script(self, script_id: str) -> int:
        """Drop every chunk of a script; returns how many chunks were removed."""
        ids = [vid for vid, rec in self._chunks.items() if rec["script_id"] == script_id]
        if ids and self._faiss is not None:
            self._faiss.remove_ids(np.asarray(ids, dtype=np.int64))
        for vid in ids:
            del self._chunks[vid]
        prefix = f"{script_id}#"
        for sid in [s for s in self._scenes if s.startswith(prefix)]:
            del self._scenes[sid]
        self._scripts.pop(script_id, None)
        for path in [p for p, f in self._files.items() if f["script_id"] == script_id]:
            del self._files[path]
        return len(ids)

    # -- file hashes -----------------------------------------------------------------

    def record_file(self, source_path: str, *, content_hash: str, script_id: str) -> None:
        self._files[source_path] = {"hash": content_hash, "script_id": script_id}

    def file_record(self, source_path: str) -> dict | None:
        """{"hash", "script_id"} for a file ingested before, else None."""
        return self._files.get(source_path)

    def script_source(self, script_id: str) -> str | None:
        return next((p for p, f in self._files.items() if f["script_id"] == script_id), None)

    def script_ids(self) -> set[str]:
        return set(self._scripts)

    # -- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._chunks)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[dict, float]]:
        """The k nearest chunks as (record, cosine score), best first.

        A record holds the chunk fields plus "title", "scene_text" and "scene_id".
        """
        if self._faiss is None or not self._chunks or k <= 0:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.dim:
            raise EmbedderMismatchError(f"query vector has dimension {query.shape[1]}, index has {self.dim}")
        scores, ids = self._faiss.search(query, min(k, len(self._chunks)))
        out = []
        for vid, score in zip(ids[0].tolist(), scores[0].tolist()):
            if vid < 0:
                continue
            out.append((self._record(vid), float(score)))
        return out

    def _record(self, vid: int) -> dict:
        rec = dict(self._chunks[vid])
        scene_id = f"{rec['script_id']}#{rec['scene_index']}"
        scene = self._scenes.get(scene_id, {})
        rec["scene_id"] = scene_id
        rec["scene_text"] = scene.get("text", "")
        rec["title"] = self._scripts.get(rec["script_id"], {}).get("title", "")
        rec["characters"] = tuple(rec["characters"])
        return rec

    def stats(self) -> dict:
        return {
            "scripts": len({r["script_id"] for r in self._chunks.values()}),
            "scenes": len(self._scenes),
            "chunks": len(self._chunks),
            "dim": self.dim,
            "embedder": self.model_id,
        }

    # -- saving ----------------------------------------------------------------------

    def save(self) -> None:
        """Write vectors then metadata, each atomically; meta.json names the vectors file."""
        import faiss

        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._generation += 1
        vectors_file = ""
        if self._faiss is not None:
            vectors_file = f"vectors-{self._generation}.faiss"
            _atomic_write(self.index_dir / vectors_file, faiss.serialize_index(self._faiss).tobytes())
        meta = {
            "version": FORMAT_VERSION,
            "model_id": self.model_id,
            "dim": self.dim,
            "generation": self._generation,
            "vectors_file": vectors_file,
            "next_id": self._next_id,
            "chunks": {str(k): v for k, v in self._chunks.items()},
            "scenes": self._scenes,
            "scripts": self._scripts,
            "files": self._files,
        }
        _atomic_write(self.index_dir / META_FILE, json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        _remove_stale(self.index_dir, keep=vectors_file)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale(index_dir: Path, *, keep: str) -> None:
    for old in index_dir.glob("vectors-*.faiss"):
        if old.name != keep:
            old.unlink(missing_ok=True)


def iter_records(index: SceneIndex) -> Iterable[dict]:
    """Every chunk record (for tools and tests that inspect the index)."""
    for vid in sorted(index._chunks):
        yield index._record(vid)

"""A FAISS scene index on disk, with the metadata needed to show a hit.

Layout of ``index_dir``:

- ``meta.json``: embedder id and dim, chunk records by vector id, scene texts,
  scripts, the content hash of each ingested file, the index kind and its
  parameters; names the vectors files.
- ``vectors-<generation>.faiss``: the store, an IndexIDMap2 over IndexFlatIP holding
  every live chunk vector (exact cosine on normalised vectors). A ``flat`` index
  searches it directly; it is also what rebuilds and re-ranks use.
- ``ann-<generation>.faiss``: for the ``hnsw`` and ``ivfpq`` kinds, the approximate
  index searched instead (see retrieval.index_types for what each kind trades).

Saving writes the new vectors files, then atomically replaces meta.json, which
points at them: a crash at any moment leaves the previous index intact and never
pairs metadata with the wrong vectors. An index saved before kinds existed has no
"index" entry in meta.json and loads as ``flat``; its vectors file is the store.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from retrieval.chunk import Chunk
from retrieval.index_types import AnnIndex, IndexParams, check_kind, choose_kind, omp_threads
from retrieval.fileutil import fsync_dir

META_FILE = "meta.json"
FORMAT_VERSION = 1
# An HNSW graph carrying more tombstones than this share of its nodes is rebuilt on
# save: every tombstone still costs a visit during a search.
HNSW_COMPACT_RATIO = 0.25

log = logging.getLogger(__name__)


class SceneIndexError(Exception):
    """A scene index on disk that cannot be used as it is."""


class EmbedderMismatchError(SceneIndexError):
    """Vectors from a different model or dimension than the index was built with."""


class SceneIndex:
    def __init__(self, index_dir: str | Path, *, model_id: str = "", dim: int = 0, kind: str = "flat",
                 params: IndexParams | None = None, **param_overrides) -> None:
        """An empty index; ``SceneIndex.load`` opens a saved one, ``SceneIndex.open`` either.

        ``params`` (or keyword overrides of its fields, e.g. ``hnsw_min_vectors=``) say
        when to move to which kind and how each kind is built and searched.
        """
        self.index_dir = Path(index_dir)
        self.model_id = model_id
        self.dim = int(dim)
        self.params = (params or IndexParams()).with_overrides(**param_overrides)
        self.kind = check_kind(kind)
        self.pinned = False  # kind chosen by hand (rebuild(kind)): saves keep it whatever the size
        self._store = None  # IndexIDMap2(IndexFlatIP): every live vector, by vector id
        self._ann: AnnIndex | None = None  # the searched index when kind is hnsw or ivfpq
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
    def load(cls, index_dir: str | Path, *, params: IndexParams | None = None, **param_overrides) -> "SceneIndex":
        """Open a saved index. Its recorded parameters apply, except where ``params``
        or keyword overrides say otherwise (settings win over what was recorded)."""
        index_dir = Path(index_dir)
        meta_path = index_dir / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no scene index in {index_dir} (missing {META_FILE})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SceneIndexError(f"{meta_path} is corrupt ({exc}); remove {index_dir} and ingest the library again") from None
        if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
            version = meta.get("version") if isinstance(meta, dict) else None
            raise SceneIndexError(f"{meta_path}: index format {version!r}, expected {FORMAT_VERSION}; rebuild the index")
        info = meta.get("index") or {"kind": "flat"}  # indexes saved before kinds existed are flat
        recorded = IndexParams.from_json(info.get("params"))
        chosen = recorded.with_overrides(**(params.as_json() if params else {})).with_overrides(**param_overrides)
        try:
            self = cls(index_dir, model_id=meta["model_id"], dim=meta["dim"], kind=info.get("kind", "flat"), params=chosen)
            self._chunks = {int(k): v for k, v in meta["chunks"].items()}
            self._scenes = meta["scenes"]
            self._scripts = meta["scripts"]
            self._files = meta["files"]
            self._next_id = meta["next_id"]
            self._generation = meta["generation"]
            self.pinned = bool(info.get("pinned", False))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SceneIndexError(f"{meta_path} is incomplete or malformed ({exc!r}); remove {index_dir} and ingest the library again") from None
        if meta.get("vectors_file"):
            self._store = _read_faiss(index_dir / meta["vectors_file"])
            if self._store.ntotal != len(self._chunks):
                raise SceneIndexError(f"{index_dir}: {self._store.ntotal} vectors but {len(self._chunks)} chunk records; rebuild the index")
        if self.kind != "flat":
            self._load_ann(info)
        return self

    def _load_ann(self, info: dict) -> None:
        """The approximate index; if its file is lost or damaged, the store still holds
        every vector, so it is rebuilt from there (slower to open, nothing lost)."""
        path = self.index_dir / info.get("ann_file", "")
        try:
            self._ann = AnnIndex.from_bytes(self.kind, path.read_bytes(), params=self.params, deleted=info.get("deleted", ()))
            expected = len(self._chunks) + len(self._ann.deleted)
            if self._ann.ntotal != expected:
                raise SceneIndexError(f"{self._ann.ntotal} vectors, expected {expected}")
        except (OSError, RuntimeError, SceneIndexError) as exc:
            log.warning("scene index %s: %s index %s unusable (%s); rebuilding it from the stored vectors",
                        self.index_dir, self.kind, path.name, str(exc).splitlines()[0] if str(exc) else exc)
            pinned = self.pinned
            self.rebuild(self.kind)
            self.pinned = pinned

    @classmethod
    def open(cls, index_dir: str | Path, *, model_id: str, dim: int, params: IndexParams | None = None,
             **param_overrides) -> "SceneIndex":
        """Load the index in ``index_dir`` if there is one, checking it was built with
        this embedder; otherwise start an empty one for it."""
        if not cls.exists(index_dir):
            return cls(index_dir, model_id=model_id, dim=dim, params=params, **param_overrides)
        index = cls.load(index_dir, params=params, **param_overrides)
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
        ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
        self.add_vectors(vectors, ids)
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

    def add_vectors(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """The vector half of ``add`` (store and searched index), for tools that
        manage records themselves; ``add`` is the way in for chunks."""
        import faiss

        if self._store is None:
            self._store = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._store.add_with_ids(vectors, ids)
        if self._ann is not None:
            self._ann.add(vectors, ids)

    def set_script_info(self, script_id: str, **info) -> None:
        """Record script-level facts (title, authors, licence, source path...)."""
        self._scripts.setdefault(script_id, {}).update(info)

    def remove_script(self, script_id: str) -> int:
        """Drop every chunk of a script; returns how many chunks were removed.

        The store and IVF-PQ forget the vectors at once; HNSW marks them deleted (see
        ``AnnIndex.remove``) and they are never returned again.
        """
        ids = [vid for vid, rec in self._chunks.items() if rec["script_id"] == script_id]
        if ids and self._store is not None:
            id_array = np.asarray(ids, dtype=np.int64)
            self._store.remove_ids(id_array)
            if self._ann is not None:
                self._ann.remove(id_array)
        for vid in ids:
            del self._chunks[vid]
        prefix = f"{script_id}#"
        for sid in [s for s in self._scenes if s.startswith(prefix)]:
            del self._scenes[sid]
        self._scripts.pop(script_id, None)
        for path in [p for p, f in self._files.items() if f["script_id"] == script_id]:
            del self._files[path]
        return len(ids)

    def rebuild(self, kind: str | None = None) -> str:
        """Rebuild the searched index from the stored vectors as ``kind`` (None: the
        kind the thresholds choose). Ids, records and scores do not change; HNSW
        tombstones are dropped. A kind named here is pinned: later saves keep it until
        ``rebuild(None)`` hands the choice back to the thresholds. Returns the kind."""
        pinned = kind is not None
        kind = check_kind(kind) if kind else choose_kind(len(self._chunks), self.params)
        vectors, ids = self.stored_vectors()
        if kind == "ivfpq" and not len(ids):
            raise ValueError("an empty index cannot become ivfpq: IVF-PQ is trained on the library's vectors")
        if kind == "hnsw" and not self.dim:
            raise ValueError("an index that has never held a vector has no dimension to build HNSW for")
        self._ann = None  # free the old one before building the next
        if kind != "flat":
            with omp_threads(self.params.build_threads):
                self._ann = AnnIndex.build(kind, vectors, ids, dim=self.dim, params=self.params)
        self.kind = kind
        self.pinned = pinned
        return kind

    def set_params(self, **overrides) -> None:
        """Change parameters in place. Search-time ones (hnsw_ef_search, ivf_nprobe,
        rerank) apply to the next query; build-time ones to the next rebuild."""
        self.params = self.params.with_overrides(**overrides)
        if self._ann is not None:
            self._ann.params = self.params
            self._ann._apply_search_params()

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, ids) of every live chunk, as read-only views of the store (no copy)."""
        import faiss

        if self._store is None or not self._store.ntotal:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64)
        flat = faiss.downcast_index(self._store.index)
        n = int(self._store.ntotal)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)
        ids = faiss.vector_to_array(self._store.id_map)
        vectors.flags.writeable = False
        return vectors, ids

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

    def scripts(self) -> list[dict]:
        """Every script with its title, source and counts, sorted by id (for listings)."""
        chunks: dict[str, int] = {}
        for rec in self._chunks.values():
            chunks[rec["script_id"]] = chunks.get(rec["script_id"], 0) + 1
        scenes: dict[str, int] = {}
        for scene_id in self._scenes:
            script_id = scene_id.rsplit("#", 1)[0]
            scenes[script_id] = scenes.get(script_id, 0) + 1
        return [
            {"script_id": sid, "title": info.get("title", ""), "scenes": scenes.get(sid, 0), "chunks": chunks.get(sid, 0),
             "source_path": self.script_source(sid) or info.get("source_path", "")}
            for sid, info in sorted(self._scripts.items())
        ]

    # -- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._chunks)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[dict, float]]:
        """The k nearest chunks as (record, cosine score), best first.

        A record holds the chunk fields plus "title", "scene_text" and "scene_id".
        Scores are exact cosines whatever the kind, so they compare across kinds.
        """
        if self._store is None or not self._chunks or k <= 0:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.dim:
            raise EmbedderMismatchError(f"query vector has dimension {query.shape[1]}, index has {self.dim}")
        with omp_threads(self.params.search_threads):
            scores, ids = self._nearest(query, min(k, len(self._chunks)))
        return [(self._record(vid), score) for vid, score in zip(ids, scores) if vid >= 0]

    def _nearest(self, query: np.ndarray, k: int) -> tuple[list[float], list[int]]:
        if self._ann is None:
            scores, ids = self._store.search(query, k)
            return scores[0].tolist(), ids[0].tolist()
        if self._ann.kind != "ivfpq":
            scores, ids = self._ann.search(query, k)
            return scores[0].tolist(), ids[0].tolist()
        # PQ scores are approximate: take k * rerank candidates and score them exactly.
        fetch = min(self._ann.ntotal, k * self.params.rerank)
        _, candidates = self._ann.search(query, fetch)
        candidates = candidates[0][candidates[0] >= 0]
        if not len(candidates):
            return [], []
        exact = self._store.reconstruct_batch(candidates) @ query[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return exact[best].tolist(), candidates[best].tolist()

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
        """Counts and the index kind; "deleted" counts HNSW tombstones awaiting a rebuild."""
        return {
            "scripts": len({r["script_id"] for r in self._chunks.values()}),
            "scenes": len(self._scenes),
            "chunks": len(self._chunks),
            "vectors": int(self._store.ntotal) if self._store is not None else 0,
            "type": self.kind,
            "pinned": self.pinned,
            "deleted": len(self._ann.deleted) if self._ann is not None else 0,
            "dim": self.dim,
            "embedder": self.model_id,
        }

    # -- saving ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the vectors files then metadata, each atomically; meta.json names the
        vectors files. With ``auto_rebuild``, first move to the kind the library's
        size calls for, and compact an HNSW graph full of tombstones."""
        import faiss

        self._maybe_rebuild()
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._generation += 1
        vectors_file = ann_file = ""
        if self._store is not None:
            vectors_file = f"vectors-{self._generation}.faiss"
            _atomic_write(self.index_dir / vectors_file, faiss.serialize_index(self._store).tobytes())
        if self._ann is not None:
            ann_file = f"ann-{self._generation}.faiss"
            _atomic_write(self.index_dir / ann_file, self._ann.to_bytes())
        meta = {
            "version": FORMAT_VERSION,
            "model_id": self.model_id,
            "dim": self.dim,
            "generation": self._generation,
            "vectors_file": vectors_file,
            "index": {
                "kind": self.kind,
                "params": self.params.as_json(),
                "pinned": self.pinned,
                "ann_file": ann_file,
                "deleted": sorted(self._ann.deleted) if self._ann is not None else [],
            },
            "next_id": self._next_id,
            "chunks": {str(k): v for k, v in self._chunks.items()},
            "scenes": self._scenes,
            "scripts": self._scripts,
            "files": self._files,
        }
        _atomic_write(self.index_dir / META_FILE, json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        _remove_stale(self.index_dir, keep={vectors_file, ann_file})

    def _maybe_rebuild(self) -> None:
        if not self.params.auto_rebuild or self._store is None:
            return
        target = self.kind if self.pinned else choose_kind(len(self._chunks), self.params, current=self.kind)
        if target != self.kind:
            log.info("scene index %s: %d vectors, moving from %s to %s", self.index_dir, len(self._chunks), self.kind, target)
            self.rebuild(target)
            self.pinned = False
        elif self._ann is not None and len(self._ann.deleted) > HNSW_COMPACT_RATIO * max(self._ann.ntotal, 1):
            pinned = self.pinned
            self.rebuild(self.kind)
            self.pinned = pinned


def _read_faiss(path: Path):
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        if not path.is_file():
            raise SceneIndexError(f"{path} is missing; remove {path.parent} and ingest the library again") from None
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise SceneIndexError(f"{path} is corrupt or truncated ({first[:200]}); remove {path.parent} and "
                              "ingest the library again") from None


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
    fsync_dir(path.parent)


def _remove_stale(index_dir: Path, *, keep: set[str]) -> None:
    for pattern in ("vectors-*.faiss", "ann-*.faiss"):
        for old in index_dir.glob(pattern):
            if old.name not in keep:
                old.unlink(missing_ok=True)


def iter_records(index: SceneIndex) -> Iterable[dict]:
    """Every chunk record (for tools and tests that inspect the index)."""
    for vid in sorted(index._chunks):
        yield index._record(vid)

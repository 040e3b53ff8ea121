"""A FAISS scene index on disk, with a SQL catalog of the metadata needed to show a hit.

Layout of ``index_dir``:

- ``vectors-<generation>.faiss``: the store, an IndexIDMap2 over IndexFlatIP holding
  every live chunk vector (exact cosine on normalised vectors). A ``flat`` index
  searches it directly; it is also what rebuilds and re-ranks use.
- ``ann-<generation>.faiss``: for the ``hnsw`` and ``ivfpq`` kinds, the approximate
  index searched instead (see retrieval.index_types for what each kind trades).
- ``catalog.sqlite``: the metadata catalog (see retrieval.catalog): embedder id and
  dim, the index kind and its parameters, the generation and the names of its vectors
  files, scripts and their facts, the content hash of each ingested file, scenes, and
  chunk records by vector id. With ``catalog_url`` it lives in another database
  instead (e.g. the bot store's PostgreSQL), keyed by ``index_name``.

Opening an index reads the state row, the scripts and files tables (small) and the
vectors files; chunk and scene texts stay in the catalog, and ``search`` fetches the
records of the ids it returns. Vector ids are never reused, so an id always means the
same chunk, whichever generation a process has loaded.

Changes (add, remove, facts, file hashes) stay in memory, invisible to other processes,
until ``save``: it writes the new vectors files (temporary file, fsync, rename), then
commits one catalog transaction that writes the metadata changes and points the state
row at the new files, and only then deletes the previous generation's files. A crash
at any moment before the commit leaves the previous generation whole; nothing ever
pairs metadata with the wrong vectors.

An index saved before the catalog (only ``meta.json``) is imported into the catalog
the first time it is loaded, then its meta.json is renamed ``meta.json.imported``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Collection, Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from files.durable import fsync_dir
from retrieval.catalog import (
    CATALOG_FILE,
    DEFAULT_INDEX_NAME,
    Catalog,
    CatalogError,
    Changes,
    IndexState,
    Snapshot,
    default_url,
)
from retrieval.chunk import Chunk
from retrieval.index_types import (
    AnnIndex,
    IndexParams,
    check_kind,
    choose_kind,
    omp_threads,
)
from retrieval.legacy_meta import META_FILE, LegacyMetaError, read_or_import

# An HNSW graph carrying more tombstones than this share of its nodes is rebuilt on
# save: every tombstone still costs a visit during a search.
HNSW_COMPACT_RATIO = 0.25
# A save by another process can delete the vectors file named by the state row just
# read; reading the state again finds the new one.
LOAD_ATTEMPTS = 3

log = logging.getLogger(__name__)


class SceneIndexError(Exception):
    """A scene index on disk that cannot be used as it is."""


class EmbedderMismatchError(SceneIndexError):
    """Vectors from a different model or dimension than the index was built with."""


class _MissingFile(SceneIndexError):
    pass


class SceneIndex:
    def __init__(self, index_dir: str | Path, *, model_id: str = "", dim: int = 0, kind: str = "flat",
                 params: IndexParams | None = None, catalog_url: str | None = None,
                 index_name: str = DEFAULT_INDEX_NAME, **param_overrides) -> None:
        """An empty index; ``SceneIndex.load`` opens a saved one, ``SceneIndex.open`` either.

        ``params`` (or keyword overrides of its fields, e.g. ``hnsw_min_vectors=``) say
        when to move to which kind and how each kind is built and searched.
        ``catalog_url`` names the metadata database (None: ``index_dir/catalog.sqlite``)
        and ``index_name`` this index's rows in it.
        """
        self.index_dir = Path(index_dir)
        self.catalog_url = catalog_url or default_url(self.index_dir)
        self.index_name = index_name
        self.model_id = model_id
        self.dim = int(dim)
        self.params = (params or IndexParams()).with_overrides(**param_overrides)
        self.kind = check_kind(kind)
        self.pinned = False  # kind chosen by hand (rebuild(kind)): saves keep it whatever the size
        self._store = None  # IndexIDMap2(IndexFlatIP): every live vector, by vector id
        self._ann: AnnIndex | None = None  # the searched index when kind is hnsw or ivfpq
        self._catalog: Catalog | None = None  # opened on first use
        self._committed = False  # the catalog holds a generation of this index
        self._generation = 0
        self._next_id = 0
        self._scripts: dict[str, dict] = {}  # script id -> facts {"title", "source_path", ...}: all, small
        self._files: dict[str, dict] = {}  # source path -> {"hash", "script_id"}: all, small
        self._saved_scripts: set[str] = set()  # scripts whose rows in the catalog are current
        # Unsaved changes, written by save() in one transaction.
        self._new_chunks: dict[int, dict] = {}  # vector id -> chunk record
        self._new_scenes: dict[str, dict] = {}  # scene id -> {"script_id", "scene_index", "heading", "text", "characters"}
        self._removed_scripts: set[str] = set()  # their catalog rows go first
        self._dirty_scripts: set[str] = set()
        self._dirty_files: set[str] = set()

    # -- opening -------------------------------------------------------------------

    @classmethod
    def exists(cls, index_dir: str | Path, *, catalog_url: str | None = None,
               index_name: str = DEFAULT_INDEX_NAME) -> bool:
        index_dir = Path(index_dir)
        if (index_dir / META_FILE).is_file():
            return True  # saved before the catalog: imported on load
        if catalog_url is None and not (index_dir / CATALOG_FILE).is_file():
            return False
        catalog = Catalog(catalog_url or default_url(index_dir), index_name=index_name)
        try:
            return catalog.has_index()
        except SQLAlchemyError as exc:
            raise SceneIndexError(_unreadable(catalog, exc)) from None
        finally:
            catalog.close()

    @classmethod
    def load(cls, index_dir: str | Path, *, params: IndexParams | None = None, catalog_url: str | None = None,
             index_name: str = DEFAULT_INDEX_NAME, **param_overrides) -> "SceneIndex":
        """Open a saved index. Its recorded parameters apply, except where ``params``
        or keyword overrides say otherwise (settings win over what was recorded)."""
        index_dir = Path(index_dir)
        if catalog_url is None and not (index_dir / CATALOG_FILE).is_file() and not (index_dir / META_FILE).is_file():
            raise FileNotFoundError(f"no scene index in {index_dir} (missing {CATALOG_FILE})")
        catalog = Catalog(catalog_url or default_url(index_dir), index_name=index_name)
        try:
            self, state = cls._from_catalog(index_dir, catalog, params=params, catalog_url=catalog_url, **param_overrides)
        except BaseException:
            catalog.close()
            raise
        if self.kind != "flat":
            self._load_ann(state)
        return self

    @classmethod
    def _from_catalog(cls, index_dir: Path, catalog: Catalog, *, params: IndexParams | None, catalog_url: str | None,
                      **param_overrides) -> tuple["SceneIndex", IndexState]:
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            snapshot = _read_or_import(index_dir, catalog)
            state = snapshot.state
            recorded = IndexParams.from_json(state.params)
            chosen = recorded.with_overrides(**(params.as_json() if params else {})).with_overrides(**param_overrides)
            self = cls(index_dir, model_id=state.model_id, dim=state.dim, kind=state.kind, params=chosen,
                       catalog_url=catalog_url, index_name=catalog.index_name)
            try:
                if state.vectors_file:
                    self._store = _read_faiss(index_dir / state.vectors_file)
            except _MissingFile:
                if attempt < LOAD_ATTEMPTS and catalog.generation() != state.generation:
                    continue
                raise
            break
        if self._store is not None and self._store.ntotal != snapshot.chunks:
            raise SceneIndexError(f"{index_dir}: {self._store.ntotal} vectors but {snapshot.chunks} chunk records; rebuild the index")
        self._catalog = catalog
        self._committed = True
        self._scripts, self._files = snapshot.scripts, snapshot.files
        self._saved_scripts = set(snapshot.scripts)
        self._next_id, self._generation, self.pinned = state.next_id, state.generation, state.pinned
        return self, state

    def _load_ann(self, state: IndexState) -> None:
        """The approximate index; if its file is lost or damaged, the store still holds
        every vector, so it is rebuilt from there (slower to open, nothing lost)."""
        path = self.index_dir / state.ann_file
        try:
            self._ann = AnnIndex.from_bytes(self.kind, path.read_bytes(), params=self.params, deleted=state.deleted)
            expected = len(self) + len(self._ann.deleted)
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
             catalog_url: str | None = None, index_name: str = DEFAULT_INDEX_NAME, **param_overrides) -> "SceneIndex":
        """Load the index in ``index_dir`` if there is one, checking it was built with
        this embedder; otherwise start an empty one for it."""
        where = {"catalog_url": catalog_url, "index_name": index_name}
        if not cls.exists(index_dir, **where):
            return cls(index_dir, model_id=model_id, dim=dim, params=params, **where, **param_overrides)
        index = cls.load(index_dir, params=params, **where, **param_overrides)
        index.check_embedder(model_id=model_id, dim=dim)
        return index

    def close(self) -> None:
        """Close the catalog's connections; the index stays usable (they reopen on demand)."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def __enter__(self) -> "SceneIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _db(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self.catalog_url, index_name=self.index_name)
        return self._catalog

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
        saved_scenes = self._saved_scene_ids(chunks)
        for vid, chunk in zip(ids.tolist(), chunks):
            record = asdict(chunk)
            scene_text = record.pop("scene_text")
            title = record.pop("title")
            record["characters"] = list(chunk.characters)
            self._new_chunks[vid] = record
            if chunk.scene_id not in saved_scenes:  # a scene's first chunk brings its text
                self._new_scenes.setdefault(chunk.scene_id, {
                    "script_id": chunk.script_id, "scene_index": chunk.scene_index, "heading": chunk.heading,
                    "text": scene_text, "characters": list(chunk.characters)})
            if chunk.script_id not in self._scripts:
                self._scripts[chunk.script_id] = {"title": title}
                self._dirty_scripts.add(chunk.script_id)
        return ids.tolist()

    def _saved_scene_ids(self, chunks: Sequence[Chunk]) -> set[str]:
        """Scenes of these chunks already in the catalog (more chunks for a saved scene)."""
        wanted = {c.scene_id for c in chunks if c.script_id in self._saved_scripts}
        return set(self._db().scenes(scene_ids=wanted)) if wanted and self._committed else set()

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
        """Record script-level facts (title, authors, licence, source path, genre, show...)."""
        self._scripts.setdefault(script_id, {}).update(info)
        self._dirty_scripts.add(script_id)

    def remove_script(self, script_id: str) -> int:
        """Drop every chunk of a script; returns how many chunks were removed.

        The store and IVF-PQ forget the vectors at once; HNSW marks them deleted (see
        ``AnnIndex.remove``) and they are never returned again. The catalog forgets
        the script at the next save.
        """
        ids = [vid for vid, rec in self._new_chunks.items() if rec["script_id"] == script_id]
        for vid in ids:
            del self._new_chunks[vid]
        if script_id in self._saved_scripts:
            ids += self._db().script_vector_ids(script_id=script_id)
            self._saved_scripts.discard(script_id)
            self._removed_scripts.add(script_id)
        if ids and self._store is not None:
            id_array = np.asarray(ids, dtype=np.int64)
            self._store.remove_ids(id_array)
            if self._ann is not None:
                self._ann.remove(id_array)
        for scene_id in [s for s, scene in self._new_scenes.items() if scene["script_id"] == script_id]:
            del self._new_scenes[scene_id]
        self._scripts.pop(script_id, None)
        self._dirty_scripts.discard(script_id)
        for path in [p for p, f in self._files.items() if f["script_id"] == script_id]:
            del self._files[path]
            self._dirty_files.add(path)
        return len(ids)

    def rebuild(self, kind: str | None = None) -> str:
        """Rebuild the searched index from the stored vectors as ``kind`` (None: the
        kind the thresholds choose). Ids, records and scores do not change; HNSW
        tombstones are dropped. A kind named here is pinned: later saves keep it until
        ``rebuild(None)`` hands the choice back to the thresholds. Returns the kind."""
        pinned = kind is not None
        kind = check_kind(kind) if kind else choose_kind(len(self), self.params)
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

    # -- file hashes and scripts -----------------------------------------------------

    def record_file(self, source_path: str, *, content_hash: str, script_id: str) -> None:
        self._files[source_path] = {"hash": content_hash, "script_id": script_id}
        self._dirty_files.add(source_path)

    def file_record(self, source_path: str) -> dict | None:
        """{"hash", "script_id"} for a file ingested before, else None."""
        record = self._files.get(source_path)
        return dict(record) if record else None

    def script_source(self, script_id: str) -> str | None:
        return next((p for p, f in self._files.items() if f["script_id"] == script_id), None)

    def script_ids(self) -> set[str]:
        return set(self._scripts)

    def script_info(self, script_id: str) -> dict:
        """The facts recorded for a script (title, authors, format, language, genre, ...); {} if unknown."""
        return dict(self._scripts.get(script_id, {}))

    def scripts(self) -> list[dict]:
        """Every script with its title, source and counts, sorted by id (for listings)."""
        counts = self._counts_per_script()
        return [
            {"script_id": sid, "title": info.get("title", ""), "scenes": counts.get(sid, (0, 0))[0],
             "chunks": counts.get(sid, (0, 0))[1], "source_path": self.script_source(sid) or info.get("source_path", "")}
            for sid, info in sorted(self._scripts.items())
        ]

    def _counts_per_script(self) -> dict[str, tuple[int, int]]:
        """Script id -> (scenes, chunks), saved and unsaved together."""
        saved = self._db().counts_per_script() if self._committed else {}
        counts = {sid: list(n) for sid, n in saved.items() if sid not in self._removed_scripts}
        for scene in self._new_scenes.values():
            counts.setdefault(scene["script_id"], [0, 0])[0] += 1
        for record in self._new_chunks.values():
            counts.setdefault(record["script_id"], [0, 0])[1] += 1
        return {sid: (scenes, chunks) for sid, (scenes, chunks) in counts.items()}

    # -- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        # The store holds exactly the live chunks' vectors (load checks it against the catalog).
        return int(self._store.ntotal) if self._store is not None else 0

    def search(self, vector: np.ndarray, k: int, *, scripts: Collection[str] | None = None) -> list[tuple[dict, float]]:
        """The k nearest chunks as (record, cosine score), best first.

        A record holds the chunk fields plus "title", "scene_text" and "scene_id".
        Scores are exact cosines whatever the kind, so they compare across kinds.
        ``scripts``: keep only hits of these scripts (among the k nearest), checked
        before their records are read.
        """
        if self._store is None or not len(self) or k <= 0:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.dim:
            raise EmbedderMismatchError(f"query vector has dimension {query.shape[1]}, index has {self.dim}")
        with omp_threads(self.params.search_threads):
            scores, ids = self._nearest(query, min(k, len(self)))
        hits = [(vid, score) for vid, score in zip(ids, scores) if vid >= 0]
        if scripts is not None:
            owner = self._script_of([vid for vid, _ in hits])
            hits = [(vid, score) for vid, score in hits if owner.get(vid) in scripts]
        records = self.records([vid for vid, _ in hits])
        # A record can be missing only if another process saved a newer generation that
        # removed it since this one was loaded: that chunk is no longer in the library.
        return [(records[vid], score) for vid, score in hits if vid in records]

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

    def records(self, vector_ids: Iterable[int]) -> dict[int, dict]:
        """Vector id -> chunk record (as ``search`` returns them) for the ids in the index."""
        wanted = [int(vid) for vid in vector_ids]
        out = {vid: self._new_chunks[vid] | {} for vid in wanted if vid in self._new_chunks}
        saved = [vid for vid in wanted if vid not in self._new_chunks]
        if saved and self._committed:
            for vid, record in self._db().records(vector_ids=saved).items():
                if record["script_id"] not in self._removed_scripts:  # removed, not saved yet
                    out[vid] = record
        self._fill_unsaved_scenes(out, [vid for vid in wanted if vid in self._new_chunks])
        for record in out.values():
            record["title"] = self._scripts.get(record["script_id"], {}).get("title", "")
            record["characters"] = tuple(record["characters"])
        return out

    def _fill_unsaved_scenes(self, out: dict[int, dict], unsaved: list[int]) -> None:
        """Scene id and text for records not saved yet (their scene may be saved already)."""
        for vid in unsaved:
            out[vid]["scene_id"] = f"{out[vid]['script_id']}#{out[vid]['scene_index']}"
        missing = {out[vid]["scene_id"] for vid in unsaved} - set(self._new_scenes)
        saved = self._db().scenes(scene_ids=missing) if missing and self._committed else {}
        for vid in unsaved:
            scene = self._new_scenes.get(out[vid]["scene_id"]) or saved.get(out[vid]["scene_id"], {})
            out[vid]["scene_text"] = scene.get("text", "")

    def _script_of(self, vector_ids: list[int]) -> dict[int, str]:
        owner = {vid: self._new_chunks[vid]["script_id"] for vid in vector_ids if vid in self._new_chunks}
        saved = [vid for vid in vector_ids if vid not in owner]
        if saved and self._committed:
            owner.update((vid, sid) for vid, sid in self._db().script_of(vector_ids=saved).items()
                         if sid not in self._removed_scripts)
        return owner

    def iter_records(self) -> Iterator[dict]:
        """Every chunk record, ascending vector id, streamed from the catalog."""
        if self._committed:
            for vid, record in self._db().iter_records():
                if record["script_id"] not in self._removed_scripts:
                    record["title"] = self._scripts.get(record["script_id"], {}).get("title", "")
                    record["characters"] = tuple(record["characters"])
                    yield record
        # unsaved ids are all above the saved ones (ids only grow)
        pending = sorted(self._new_chunks)
        for start in range(0, len(pending), 1000):
            batch = self.records(pending[start:start + 1000])
            yield from (batch[vid] for vid in pending[start:start + 1000])

    def iter_chunk_texts(self) -> Iterator[tuple[int, str, str, str]]:
        """(vector id, chunk id, script id, text) of every chunk, ascending id, streamed:
        what a lexical index needs, without reading scene texts."""
        if self._committed:
            for row in self._db().iter_chunk_texts():
                if row[2] not in self._removed_scripts:
                    yield row
        for vid in sorted(self._new_chunks):
            record = self._new_chunks[vid]
            yield vid, record["chunk_id"], record["script_id"], record["text"]

    def stats(self) -> dict:
        """Counts and the index kind; "deleted" counts HNSW tombstones awaiting a rebuild."""
        counts = self._counts_per_script()
        return {
            "scripts": sum(1 for _, chunks in counts.values() if chunks),
            "scenes": sum(scenes for scenes, _ in counts.values()),
            "chunks": sum(chunks for _, chunks in counts.values()),
            "vectors": len(self),
            "type": self.kind,
            "pinned": self.pinned,
            "deleted": len(self._ann.deleted) if self._ann is not None else 0,
            "dim": self.dim,
            "embedder": self.model_id,
        }

    # -- saving ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the vectors files, then commit the metadata and the state row naming
        those files in one catalog transaction (see the module doc). With
        ``auto_rebuild``, first move to the kind the library's size calls for, and
        compact an HNSW graph full of tombstones."""
        import faiss

        self._maybe_rebuild()
        self.index_dir.mkdir(parents=True, exist_ok=True)
        generation = self._generation + 1
        state = IndexState(
            model_id=self.model_id, dim=self.dim, kind=self.kind, params=self.params.as_json(), pinned=self.pinned,
            deleted=sorted(self._ann.deleted) if self._ann is not None else [], generation=generation,
            next_id=self._next_id, vectors_file=f"vectors-{generation}.faiss" if self._store is not None else "",
            ann_file=f"ann-{generation}.faiss" if self._ann is not None else "",
        )
        try:
            # The transaction holds the catalog's write lock from its first statement, so
            # no other save can write files of this generation number meanwhile.
            with self._db().new_generation(state, expected=self._generation if self._committed else None) as writer:
                if state.vectors_file:
                    _atomic_write(self.index_dir / state.vectors_file, faiss.serialize_index(self._store).tobytes())
                if state.ann_file:
                    _atomic_write(self.index_dir / state.ann_file, self._ann.to_bytes())
                writer.apply(self._unsaved_changes())
        except CatalogError as exc:
            raise SceneIndexError(str(exc)) from None
        self._generation, self._committed = generation, True
        self._forget_saved_changes()
        _remove_stale(self.index_dir, keep={state.vectors_file, state.ann_file})

    def _unsaved_changes(self) -> Changes:
        return Changes(
            removed_scripts=set(self._removed_scripts),
            scripts={sid: self._scripts[sid] for sid in self._dirty_scripts if sid in self._scripts},
            files={path: self._files.get(path) for path in self._dirty_files},
            scenes=self._new_scenes,
            chunks=self._new_chunks,
        )

    def _forget_saved_changes(self) -> None:
        self._new_chunks, self._new_scenes = {}, {}
        self._removed_scripts, self._dirty_scripts, self._dirty_files = set(), set(), set()
        self._saved_scripts = set(self._scripts)

    def _maybe_rebuild(self) -> None:
        if not self.params.auto_rebuild or self._store is None:
            return
        target = self.kind if self.pinned else choose_kind(len(self), self.params, current=self.kind)
        if target != self.kind:
            log.info("scene index %s: %d vectors, moving from %s to %s", self.index_dir, len(self), self.kind, target)
            self.rebuild(target)
            self.pinned = False
        elif self._ann is not None and len(self._ann.deleted) > HNSW_COMPACT_RATIO * max(self._ann.ntotal, 1):
            pinned = self.pinned
            self.rebuild(self.kind)
            self.pinned = pinned


def _read_or_import(index_dir: Path, catalog: Catalog) -> Snapshot:
    try:
        snapshot = read_or_import(index_dir, catalog)
    except (LegacyMetaError, CatalogError) as exc:
        raise SceneIndexError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise SceneIndexError(_unreadable(catalog, exc)) from None
    if snapshot is None:
        raise FileNotFoundError(f"no scene index named {catalog.index_name!r} in the catalog of {index_dir}")
    return snapshot


def _unreadable(catalog: Catalog, exc: Exception) -> str:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    where = catalog.engine.url.render_as_string(hide_password=True)
    why = first[0][:200] if first else type(exc).__name__
    if isinstance(exc, OperationalError):  # a server down, a locked or missing file: nothing to rebuild yet
        return f"the index catalog at {where} cannot be read ({why})"
    return f"the index catalog at {where} is unreadable ({why}); remove the index and ingest the library again"


def _read_faiss(path: Path):
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        if not path.is_file():
            raise _MissingFile(f"{path} is missing; remove {path.parent} and ingest the library again") from None
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
    """Every chunk record, ascending vector id (for tools and tests that inspect the index)."""
    return index.iter_records()

"""The kinds of FAISS index a scene library can sit in, and when to use which.

Every kind answers the same question (the k chunks with the highest cosine to a
normalised query, by vector id, with exact cosine scores) but trades memory, build
time and recall differently:

- ``flat``: IndexIDMap2 over IndexFlatIP. Exact; a query reads every vector, which is
  fine up to some tens of thousands of chunks and needs no training.
- ``hnsw``: IndexIDMap2 over IndexHNSWFlat (inner product). A navigable graph: a
  query visits a few thousand vectors whatever the size of the library. Scores are
  exact (it keeps float vectors). FAISS cannot remove from an HNSW graph (see
  ``AnnIndex.remove``).
- ``ivfpq``: IndexIVFPQ with a trained coarse quantizer (nlist ~ 4 sqrt(N) lists) and
  product-quantised codes (m sub-vectors of 8 bits). Small in memory and fast, but PQ
  scores are approximate, so the top ``k * rerank`` candidates are re-scored exactly
  from the stored float vectors (see ``SceneIndex``), which brings recall and scores back.

The index always keeps the float vectors in an exact ``flat`` store as well (the
"store"): it is what lets ``SceneIndex.rebuild`` move between kinds without
re-embedding, what re-ranks IVF-PQ candidates, and what makes a removal exact at
once. For a ``flat`` index the store *is* the searched index (no second copy).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import numpy as np

IndexKind = Literal["flat", "hnsw", "ivfpq"]
KINDS: tuple[str, ...] = ("flat", "hnsw", "ivfpq")

# A library shrinking back under a threshold keeps its kind until it is this much
# smaller, so that adding and removing one script near a threshold does not rebuild
# (and retrain) the index every time.
DOWNGRADE_MARGIN = 0.8


@dataclass(frozen=True)
class IndexParams:
    """How the index chooses its kind and how each kind is built and searched.

    The thresholds choose the kind on ``rebuild(kind=None)`` and when a save finds
    the library has outgrown (or shrunk well below) its kind.
    """

    hnsw_min_vectors: int = 50_000  # from this many vectors on, HNSW instead of Flat
    ivfpq_min_vectors: int = 500_000  # from this many on, IVF-PQ instead of HNSW
    auto_rebuild: bool = True  # save() moves to the kind the thresholds choose
    hnsw_m: int = 32  # graph neighbours per node: recall and memory grow with it
    hnsw_ef_construction: int = 64  # candidate list while building: build time vs graph quality
    hnsw_ef_search: int = 96  # candidate list per query: latency vs recall (raised to k when smaller)
    ivf_nlist: int = 0  # coarse lists; 0 means 4 * sqrt(N), capped so each list trains on 39+ points
    ivf_nprobe: int = 64  # lists visited per query: latency vs recall
    pq_m: int = 48  # sub-vectors per code; the largest divisor of dim not above this is used (384 -> 48)
    pq_nbits: int = 8  # bits per sub-vector code (fewer when the library is too small to train 256 centroids)
    rerank: int = 32  # IVF-PQ: re-score the best k * rerank candidates exactly (10x left recall at ~0.95 on its own)
    train_sample: int = 100_000  # most vectors used to train IVF-PQ (k-means cost grows with it)
    search_threads: int = 1  # OpenMP threads per query: one query is too little work to share (see omp_threads)
    build_threads: int = 0  # OpenMP threads for rebuilds and training; 0 means FAISS's default (all cores)

    def __post_init__(self) -> None:
        if self.hnsw_min_vectors > self.ivfpq_min_vectors:
            raise ValueError(f"hnsw_min_vectors ({self.hnsw_min_vectors}) must not exceed ivfpq_min_vectors ({self.ivfpq_min_vectors})")
        if self.build_threads < 0:
            raise ValueError(f"build_threads must be 0 (all cores) or more, got {self.build_threads}")
        for name in ("search_threads", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe", "pq_m", "pq_nbits", "rerank", "train_sample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None, **overrides) -> "IndexParams":
        """Parameters recorded with an index (unknown keys ignored), then ``overrides``."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides) -> "IndexParams":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@contextmanager
def omp_threads(n: int):
    """Run FAISS with ``n`` OpenMP threads (0: leave as is), then restore.

    One query through a flat or HNSW index is well under a millisecond of work;
    sharing it across threads costs a barrier per query, and on a busy machine a
    barrier waits for a descheduled core: measured on this 2-core host under load,
    a 10k flat search took 57 ms with 2 threads and 0.8 ms with 1. Concurrent
    requests already run on separate threads. omp_set_num_threads sets the calling
    thread's own setting, so this does not disturb other threads.
    """
    import faiss

    if n <= 0:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def choose_kind(n_vectors: int, params: IndexParams, *, current: str | None = None) -> str:
    """The kind the thresholds give ``n_vectors``; with ``current``, shrinking only
    moves down once the library is DOWNGRADE_MARGIN below the threshold."""
    target = "flat"
    if n_vectors >= params.ivfpq_min_vectors:
        target = "ivfpq"
    elif n_vectors >= params.hnsw_min_vectors:
        target = "hnsw"
    if current in KINDS and KINDS.index(target) < KINDS.index(current):
        threshold = params.ivfpq_min_vectors if current == "ivfpq" else params.hnsw_min_vectors
        if n_vectors >= threshold * DOWNGRADE_MARGIN:
            return current
    return target


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def pq_m_for(dim: int, wanted: int) -> int:
    """The largest divisor of ``dim`` not above ``wanted`` (PQ splits the vector evenly)."""
    return max(m for m in range(1, min(dim, wanted) + 1) if dim % m == 0)


def pq_nbits_for(n_train: int, wanted: int) -> int:
    """8 bits needs 256 centroids per sub-quantizer, so at least 256 training vectors."""
    return max(1, min(wanted, int(math.log2(max(n_train, 2)))))


class AnnIndex:
    """An approximate index (HNSW or IVF-PQ) over (vector, id) pairs, next to the store."""

    def __init__(self, kind: str, index, *, params: IndexParams) -> None:
        self.kind = check_kind(kind)
        self.index = index
        self.params = params
        # HNSW only: ids removed from the library but still nodes in the graph.
        self.deleted: set[int] = set()
        self._apply_search_params()

    # -- building ----------------------------------------------------------------

    @classmethod
    def build(cls, kind: str, vectors: np.ndarray, ids: np.ndarray, *, dim: int, params: IndexParams) -> "AnnIndex":
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if kind == "hnsw":
            graph = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = params.hnsw_ef_construction
            index = faiss.IndexIDMap2(graph)
        elif kind == "ivfpq":
            index = _trained_ivfpq(vectors, dim=dim, params=params)
        else:
            raise ValueError(f"AnnIndex builds hnsw or ivfpq, not {kind!r}")
        if len(ids):
            index.add_with_ids(vectors, ids)
        return cls(kind, index, params=params)

    @classmethod
    def from_bytes(cls, kind: str, data: bytes, *, params: IndexParams, deleted=()) -> "AnnIndex":
        import faiss

        ann = cls(kind, faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), params=params)
        ann.deleted = {int(i) for i in deleted}
        return ann

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    def _apply_search_params(self) -> None:
        import faiss

        if self.kind == "ivfpq":
            faiss.extract_index_ivf(self.index).nprobe = self.params.ivf_nprobe

    # -- changing ----------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def live(self) -> int:
        return self.ntotal - len(self.deleted)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        """IVF lists drop the ids for good. An HNSW graph cannot: FAISS has no
        remove_ids for IndexHNSW, because unlinking a node would leave its neighbours
        with holes in their edge lists and cut paths through the graph. So removed ids
        become tombstones: searches skip them (an IDSelector inside the graph walk, so
        a query still gets k live hits), the saved index lists them, and a rebuild
        leaves them out, which compacts the graph."""
        if not len(ids):
            return
        if self.kind == "hnsw":
            self.deleted.update(int(i) for i in ids)
        else:
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    # -- searching ---------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the best ``k`` live candidates; ids of -1 pad a short answer."""
        import faiss

        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.params.hnsw_ef_search, k)
            if self.deleted:
                batch = faiss.IDSelectorBatch(np.fromiter(self.deleted, dtype=np.int64, count=len(self.deleted)))
                selector = faiss.IDSelectorNot(batch)
                params.sel = selector
                # keep the selectors alive for the duration of the call (SWIG holds raw pointers)
                params._keep = (batch, selector)
            return self.index.search(query, k, params=params)
        return self.index.search(query, k)


def _trained_ivfpq(vectors: np.ndarray, *, dim: int, params: IndexParams):
    import faiss

    n = len(vectors)
    if n == 0:
        raise ValueError("an IVF-PQ index is trained on the library's vectors: it cannot be built empty")
    rng = np.random.default_rng(0)
    sample = vectors if n <= params.train_sample else vectors[np.sort(rng.choice(n, params.train_sample, replace=False))]
    # sized by the whole library, but never more lists than the sample can train (39 points each)
    nlist = max(1, min(params.ivf_nlist or int(round(4 * math.sqrt(n))), len(sample) // 39 or 1))
    m = pq_m_for(dim, params.pq_m)
    nbits = pq_nbits_for(len(sample), params.pq_nbits)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # tiny libraries: no warnings, k-means still converges
    index.pq.cp.min_points_per_centroid = 1
    # 48 sub-quantizers x 256 centroids over 8-d slices converge quickly, and the exact
    # re-ranking forgives a slightly worse codebook: fewer iterations on fewer points
    # cut PQ training (the bulk of an IVF-PQ build) several times over.
    index.pq.cp.niter = 12
    index.pq.cp.max_points_per_centroid = 100
    index.train(np.ascontiguousarray(sample))
    return index

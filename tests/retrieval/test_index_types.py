"""Index kinds: the thresholds, the parameter rules, and recall of HNSW and IVF-PQ
against exact search on a library big enough for approximation to matter."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.index import SceneIndex
from retrieval.index_types import IndexParams, choose_kind, pq_m_for, pq_nbits_for

DIM = 384  # MiniLM's dimension: the PQ split (48 x 8 dims) is the real one


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Deterministic timing on a shared 2-core machine: OpenMP spinning costs more than it gives."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def test_thresholds_pick_the_kind_with_a_margin_on_the_way_down():
    params = IndexParams(hnsw_min_vectors=100, ivfpq_min_vectors=1000)
    assert [choose_kind(n, params) for n in (0, 99, 100, 999, 1000)] == ["flat", "flat", "hnsw", "hnsw", "ivfpq"]
    assert choose_kind(900, params, current="ivfpq") == "ivfpq"  # within 80% of the threshold: stay
    assert choose_kind(700, params, current="ivfpq") == "hnsw"
    assert choose_kind(85, params, current="hnsw") == "hnsw" and choose_kind(50, params, current="hnsw") == "flat"
    assert choose_kind(5000, params, current="flat") == "ivfpq"  # growing never waits


def test_parameter_rules():
    assert pq_m_for(384, 48) == 48 and pq_m_for(384, 50) == 48 and pq_m_for(16, 48) == 16 and pq_m_for(7, 3) == 1
    assert pq_nbits_for(100_000, 8) == 8 and pq_nbits_for(40, 8) == 5
    with pytest.raises(ValueError, match="must not exceed"):
        IndexParams(hnsw_min_vectors=10, ivfpq_min_vectors=5)
    with pytest.raises(ValueError, match="ivf_nprobe must be at least 1"):
        IndexParams(ivf_nprobe=0)
    recorded = IndexParams(ivf_nprobe=7).as_json() | {"from_a_newer_version": 1}
    assert IndexParams.from_json(recorded, hnsw_ef_search=20, pq_m=None) == IndexParams(ivf_nprobe=7, hnsw_ef_search=20)
    with pytest.raises(ValueError, match="unknown index kind 'annoy'"):
        SceneIndex("unused").rebuild("annoy")


def planted(seed=0, *, groups=2000, per_group=10, queries=100):
    """groups x per_group unit vectors: each group is near-duplicates of one random
    direction (as drafts of one scene are). A query is a fresh noisy copy of a group's
    direction, so its exact top 10 is its group, well apart from the rest."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.normal(size=(groups, per_group, DIM)).astype(np.float32) * (0.25 / np.sqrt(DIM))
    data = (centres[:, None, :] + noise).reshape(-1, DIM)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    which = rng.choice(groups, queries, replace=False)
    q = centres[which] + rng.normal(size=(queries, DIM)).astype(np.float32) * (0.25 / np.sqrt(DIM))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return data, q


def test_hnsw_and_ivfpq_recall_at_10_against_flat_on_20k_vectors(tmp_path):
    data, queries = planted()
    # Build settings lighter than the defaults, to keep the test short (the benchmark
    # measures the defaults at scale): a sparser graph, a smaller PQ training run.
    index = SceneIndex(tmp_path / "idx", model_id="m", dim=DIM, hnsw_m=16, hnsw_ef_construction=32,
                       train_sample=4000, pq_nbits=6)
    index.add_vectors(data, np.arange(len(data), dtype=np.int64))  # no records: _nearest ranks ids only

    def top10():
        return [index._nearest(q[None, :], 10)[1] for q in queries]

    exact = top10()
    # Recall only: how long builds take is benchmarks/index_scaling.py's to measure (a wall-clock
    # budget here depended on the machine's load and proved nothing about the index).
    for kind in ("hnsw", "ivfpq"):
        index.rebuild(kind)
        found = top10()
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
        assert recall >= 0.95, f"{kind}: recall@10 {recall:.3f}"

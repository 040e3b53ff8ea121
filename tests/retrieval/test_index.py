"""SceneIndex: exact cosine search, removal, atomic persistence, embedder checks."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.chunk import Chunk
from retrieval.index import EmbedderMismatchError, SceneIndex

DIM = 16


def unit(rng, n, dim=DIM):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def chunks_for(script_id, scenes, *, title="T"):
    return [
        Chunk(chunk_id=f"{script_id}#{s}.0", script_id=script_id, scene_index=s, heading=f"INT. ROOM {s} - DAY",
              text=f"scene {s} of {script_id}", characters=("ANA",), location=f"ROOM {s}", time_of_day="DAY",
              title=title, scene_text=f"full text of scene {s}")
        for s in range(scenes)
    ]


@pytest.fixture
def filled(tmp_path):
    rng = np.random.default_rng(0)
    index = SceneIndex(tmp_path / "idx", model_id="m:1", dim=DIM)
    va, vb = unit(rng, 3), unit(rng, 2)
    index.add(chunks_for("alpha", 3, title="Alpha"), va, model_id="m:1")
    index.add(chunks_for("beta", 2, title="Beta"), vb, model_id="m:1")
    return index, va, vb


def test_search_finds_the_nearest_chunk_with_its_metadata(filled):
    index, va, vb = filled
    rec, score = index.search(vb[1], 3)[0]
    assert rec["chunk_id"] == "beta#1.0" and score == pytest.approx(1.0, abs=1e-5)
    assert (rec["title"], rec["scene_id"], rec["scene_text"], rec["location"]) == ("Beta", "beta#1", "full text of scene 1", "ROOM 1")
    scores = [s for _, s in index.search(va[0], 5)]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    assert index.stats() == {"scripts": 2, "scenes": 5, "chunks": 5, "dim": DIM, "embedder": "m:1"}


def test_removed_script_is_no_longer_returned(filled):
    index, va, vb = filled
    assert index.remove_script("alpha") == 3
    assert index.remove_script("alpha") == 0
    hits = index.search(va[0], 10)
    assert {r["script_id"] for r, _ in hits} == {"beta"}
    assert index.stats()["chunks"] == 2 and index.stats()["scenes"] == 2


def test_save_and_load_round_trip(filled, tmp_path):
    index, va, vb = filled
    index.record_file("/lib/beta.fountain", content_hash="abc", script_id="beta")
    index.save()
    index.remove_script("alpha")
    index.save()  # a second generation replaces the first
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert files == ["meta.json", "vectors-2.faiss"]  # no temp files, no stale vectors
    loaded = SceneIndex.load(tmp_path / "idx")
    assert loaded.stats() == index.stats()
    assert loaded.file_record("/lib/beta.fountain") == {"hash": "abc", "script_id": "beta"}
    assert [r["chunk_id"] for r, _ in loaded.search(vb[0], 2)] == [r["chunk_id"] for r, _ in index.search(vb[0], 2)]
    # new ids never collide with old ones after a reload
    loaded.add(chunks_for("gamma", 1), unit(np.random.default_rng(1), 1), model_id="m:1")
    assert loaded.stats()["chunks"] == 3


def test_refuses_vectors_from_another_embedder(filled, tmp_path):
    index, _, _ = filled
    rng = np.random.default_rng(2)
    with pytest.raises(EmbedderMismatchError, match="16-dimensional.*got 8-dimensional"):
        index.add(chunks_for("x", 1), unit(rng, 1, dim=8), model_id="m:1")
    with pytest.raises(EmbedderMismatchError, match="built with embedder 'm:1', not 'other:2'"):
        index.add(chunks_for("x", 1), unit(rng, 1), model_id="other:2")
    index.save()
    with pytest.raises(EmbedderMismatchError):
        SceneIndex.open(tmp_path / "idx", model_id="other:2", dim=DIM)
    assert SceneIndex.open(tmp_path / "idx", model_id="m:1", dim=DIM).stats()["chunks"] == 5


def test_add_needs_one_vector_per_chunk(tmp_path):
    index = SceneIndex(tmp_path, model_id="m", dim=DIM)
    with pytest.raises(ValueError, match="one vector per chunk"):
        index.add(chunks_for("a", 2), unit(np.random.default_rng(3), 3), model_id="m")
    assert index.search(np.ones(DIM, dtype=np.float32), 3) == []

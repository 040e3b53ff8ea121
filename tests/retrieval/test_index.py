"""SceneIndex: exact cosine search, removal, atomic persistence, embedder checks, every index kind.

The catalog itself (other databases, several indexes in one, importing meta.json) is
tested in test_catalog.py."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.chunk import Chunk
from retrieval.index import (
    EmbedderMismatchError,
    SceneIndex,
    SceneIndexError,
    iter_records,
)
from tests.retrieval.legacy_index import write_legacy_index

DIM = 16


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Tiny indexes: OpenMP's thread start-up and spinning cost more than the work,
    badly so on a shared 2-core machine."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


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
    assert index.stats() == {"scripts": 2, "scenes": 5, "chunks": 5, "vectors": 5, "type": "flat", "pinned": False,
                             "deleted": 0, "dim": DIM, "embedder": "m:1"}


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
    index.close()  # SQLite folds its write-ahead log back into the file
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert files == ["catalog.sqlite", "vectors-2.faiss"]  # no temp files, no stale vectors
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


# -- every kind ----------------------------------------------------------------------

KINDS = ["flat", "hnsw", "ivfpq"]


def library(tmp_path, *, scripts=30, scenes=20, seed=0):
    """scripts x scenes chunks; each script's vectors cluster around its own direction,
    so a script's chunks are each other's neighbours, as scenes of one script tend to be."""
    rng = np.random.default_rng(seed)
    index = SceneIndex(tmp_path / "idx", model_id="m:1", dim=DIM)
    vectors = {}
    for n in range(scripts):
        centre = unit(rng, 1)
        v = centre + 0.3 * unit(rng, scenes)
        vectors[f"s{n:02d}"] = v / np.linalg.norm(v, axis=1, keepdims=True)
        index.add(chunks_for(f"s{n:02d}", scenes, title=f"Script {n}"), vectors[f"s{n:02d}"], model_id="m:1")
    return index, vectors


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_finds_the_same_neighbours_as_flat(tmp_path, kind):
    index, vectors = library(tmp_path)
    queries = [vectors["s03"][2], vectors["s17"][5], vectors["s29"][0]]
    exact = [[r["chunk_id"] for r, _ in index.search(q, 5)] for q in queries]
    assert index.rebuild(kind) == kind and index.stats()["type"] == kind and index.pinned
    for q, expected in zip(queries, exact):
        hits = index.search(q, 5)
        assert [r["chunk_id"] for r, _ in hits][0] == expected[0]
        assert hits[0][1] == pytest.approx(1.0, abs=1e-4)  # scores are exact cosines in every kind
        assert len({r["chunk_id"] for r, _ in hits} & set(expected)) >= 4


@pytest.mark.parametrize("kind", KINDS)
def test_removed_script_is_never_returned_by_any_kind(tmp_path, kind):
    index, vectors = library(tmp_path)
    index.rebuild(kind)
    assert index.remove_script("s05") == 20
    query = vectors["s05"][0]

    def scripts_found(idx):
        return {r["script_id"] for r, _ in idx.search(query, 50)}

    assert "s05" not in scripts_found(index) and len(index.search(query, 50)) == 50
    index.save()
    loaded = SceneIndex.load(tmp_path / "idx")
    assert loaded.kind == kind and "s05" not in scripts_found(loaded)
    assert loaded.stats()["chunks"] == loaded.stats()["vectors"] == 580
    if kind == "hnsw":  # tombstones survive a save and are compacted by a rebuild
        assert loaded.stats()["deleted"] == 20
    loaded.rebuild(kind)
    assert loaded.stats()["deleted"] == 0 and "s05" not in scripts_found(loaded)
    assert len(loaded.search(query, 10_000)) == 580


def test_rebuild_moves_between_kinds_keeping_ids_and_metadata(tmp_path):
    index, vectors = library(tmp_path)
    index.set_script_info("s01", title="Script 1", source_path="/lib/s01.fountain")
    index.record_file("/lib/s01.fountain", content_hash="h1", script_id="s01")
    before = list(iter_records(index))
    query = vectors["s11"][4]
    best = index.search(query, 3)
    for kind in ["hnsw", "ivfpq", "flat"]:
        index.rebuild(kind)
        index.save()
        index = SceneIndex.load(tmp_path / "idx")
        assert index.kind == kind and list(iter_records(index)) == before
        record, score = index.search(query, 3)[0]
        assert record == best[0][0] and score == pytest.approx(best[0][1], abs=1e-5)
        assert index.file_record("/lib/s01.fountain") == {"hash": "h1", "script_id": "s01"}
        generation = index._generation
        expected = {"catalog.sqlite", f"vectors-{generation}.faiss"} | (set() if kind == "flat" else {f"ann-{generation}.faiss"})
        index.close()
        assert {p.name for p in (tmp_path / "idx").iterdir()} == expected
    # new chunks go into whatever kind is in use, with fresh ids
    index.rebuild("hnsw")
    ids = index.add(chunks_for("new", 2), unit(np.random.default_rng(9), 2), model_id="m:1")
    assert min(ids) == 600 and index.search(index.stored_vectors()[0][-1], 1)[0][0]["script_id"] == "new"


def test_thresholds_choose_the_kind_on_save_unless_pinned(tmp_path):
    index, _ = library(tmp_path, scripts=10)  # 200 chunks
    index.params = index.params.with_overrides(hnsw_min_vectors=100, ivfpq_min_vectors=150)
    index.save()
    assert SceneIndex.load(tmp_path / "idx").kind == "ivfpq"
    index.rebuild("flat")  # a kind named by hand sticks...
    index.save()
    assert SceneIndex.load(tmp_path / "idx").kind == "flat"
    assert index.rebuild(None) == "ivfpq"  # ...until the thresholds are asked again
    for n in range(4):  # 200 -> 120 chunks: under ivfpq's threshold but within the margin of it
        index.remove_script(f"s{n:02d}")
    index.save()
    assert index.kind == "ivfpq"
    index.remove_script("s04")  # 100: well under it
    index.save()
    assert index.kind == "hnsw"
    # settings passed when loading win over what was recorded
    assert SceneIndex.load(tmp_path / "idx", ivf_nprobe=3).params.ivf_nprobe == 3


def test_index_saved_before_kinds_existed_loads_as_flat(tmp_path):
    chunks = chunks_for("alpha", 3, title="Alpha") + chunks_for("beta", 2, title="Beta")
    vectors = unit(np.random.default_rng(0), 5)
    write_legacy_index(tmp_path / "idx", chunks=chunks, vectors=vectors, model_id="m:1", with_kind=False)
    old = SceneIndex.load(tmp_path / "idx")
    assert old.kind == "flat" and old.search(vectors[4], 1)[0][0]["chunk_id"] == "beta#1.0"


class DiskFull(OSError):
    pass


def _crash_writing_the_ann_file(monkeypatch):
    import retrieval.index as index_module

    real_write = index_module._atomic_write

    def write(path, data):
        if path.name.startswith("ann-"):
            raise DiskFull("disk full")
        real_write(path, data)

    monkeypatch.setattr(index_module, "_atomic_write", write)


def _crash_inside_the_catalog_transaction(monkeypatch):
    """After the removed script's rows were deleted and the new scenes and chunks
    written: the rollback has real work to undo."""
    from retrieval.catalog import GenerationWriter

    real_insert = GenerationWriter.insert_chunks

    def insert_then_crash(self, chunks):
        real_insert(self, chunks)
        raise DiskFull("disk full")

    monkeypatch.setattr(GenerationWriter, "insert_chunks", insert_then_crash)


@pytest.mark.parametrize("crash", [_crash_writing_the_ann_file, _crash_inside_the_catalog_transaction])
def test_a_crash_before_the_commit_leaves_the_previous_index(tmp_path, monkeypatch, crash):
    index, vectors = library(tmp_path, scripts=5)
    index.rebuild("hnsw")
    index.save()
    index.remove_script("s00")
    index.add(chunks_for("s99", 2, title="New"), vectors["s01"][:2], model_id="m:1")
    index.rebuild("ivfpq")
    crash(monkeypatch)
    with pytest.raises(DiskFull):
        index.save()
    monkeypatch.undo()
    survivor = SceneIndex.load(tmp_path / "idx")
    assert survivor.kind == "hnsw" and survivor.stats()["chunks"] == 100 and "s99" not in survivor.script_ids()
    record, _ = survivor.search(vectors["s00"][0], 1)[0]
    assert (record["script_id"], record["title"], record["heading"]) == ("s00", "Script 0", "INT. ROOM 0 - DAY")
    # the same in-memory index still holds the change and saves it whole next time
    index.save()
    saved = SceneIndex.load(tmp_path / "idx")
    assert saved.kind == "ivfpq" and "s00" not in saved.script_ids() and saved.stats()["chunks"] == 82
    assert saved.search(vectors["s00"][0], 1)[0][0]["script_id"] != "s00"
    saved.close(), index.close(), survivor.close()
    assert sorted(p.name for p in (tmp_path / "idx").glob("*.faiss")) == ["ann-2.faiss", "vectors-2.faiss"]


def test_unsaved_changes_are_invisible_to_other_readers(filled, tmp_path):
    index, va, vb = filled
    index.save()
    index.remove_script("alpha")
    index.add(chunks_for("gamma", 1, title="Gamma"), va[:1], model_id="m:1")
    other = SceneIndex.load(tmp_path / "idx")
    assert other.script_ids() == {"alpha", "beta"} and other.search(va[0], 1)[0][0]["title"] == "Alpha"
    assert index.search(va[0], 1)[0][0]["title"] == "Gamma"  # the writer sees its own changes
    index.save()
    assert SceneIndex.load(tmp_path / "idx").search(va[0], 1)[0][0]["title"] == "Gamma"


def test_a_save_from_a_stale_copy_is_refused(filled, tmp_path):
    index, va, _ = filled
    index.save()
    first, second = SceneIndex.load(tmp_path / "idx"), SceneIndex.load(tmp_path / "idx")
    first.remove_script("alpha")
    first.save()
    second.remove_script("beta")
    with pytest.raises(SceneIndexError, match="saved by another process"):
        second.save()
    assert SceneIndex.load(tmp_path / "idx").script_ids() == {"beta"}


def test_a_corrupt_vectors_file_or_catalog_is_a_clear_error(filled, tmp_path):
    index, _, _ = filled
    index.save()
    index.close()
    (tmp_path / "idx" / "vectors-1.faiss").write_bytes(b"\x00" * 10)
    with pytest.raises(SceneIndexError, match=r"vectors-1.faiss is corrupt or truncated.*ingest the library again"):
        SceneIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "catalog.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(SceneIndexError, match="catalog at sqlite:///.*catalog.sqlite is unreadable"):
        SceneIndex.load(tmp_path / "idx")


def test_a_damaged_ann_file_is_rebuilt_from_the_stored_vectors(tmp_path, caplog):
    index, vectors = library(tmp_path, scripts=5)
    index.rebuild("hnsw")
    index.save()
    ann = next((tmp_path / "idx").glob("ann-*.faiss"))
    ann.write_bytes(ann.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        loaded = SceneIndex.load(tmp_path / "idx")
    assert "rebuilding it from the stored vectors" in caplog.text
    assert loaded.kind == "hnsw" and loaded.pinned
    assert loaded.search(vectors["s02"][3], 1)[0][0]["chunk_id"] == "s02#3.0"

"""Hybrid (dense + BM25) search, script-level results, the BM25 cache and reranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.fusion import aggregate_scripts, reciprocal_rank_fusion
from retrieval.index import SceneIndex
from retrieval.ingest import ingest_paths
from retrieval.search import SceneSearcher
from tests.retrieval.hybrid_support import fountain, write_library

# The embedder's WordPiece vocabulary was trained on English screenplays, so every Greek
# word is [UNK] to it: dense search cannot tell one Greek word from another, while BM25
# indexes each like any other word. The library holds an English scene that mentions a
# Greek name once, and a short play in Greek that never does.
RARE = "Καλλιόπη"
RARE_SCRIPT = fountain("Recital", "Recital Writer", [
    ("INT. CONSERVATORY - EVENING", "PIANIST",
     "Rows of chairs and a grand piano. The pianist tunes the strings while the audience murmurs and the "
     "conductor raises a baton over the orchestra pit as the lights dim in the hall.",
     "Tonight the orchestra plays the overture, then the concerto, then the encore."),
    ("INT. CONSERVATORY - LATER", "PIANIST",
     "Applause fades. Backstage the pianist finds a note on the music stand, signed " + RARE + ".",
     "Who left this on the piano?"),
])
GREEK_SCRIPT = fountain("Σπίτι", "Συγγραφέας", [
    ("INT. ΣΠΙΤΙ - ΝΥΧΤΑ", "ΜΑΡΙΑ", "Η Μαρία ανοίγει το παράθυρο.", "Πού είναι ο Νίκος;"),
    ("INT. ΚΟΥΖΙΝΑ - ΠΡΩΙ", "ΝΙΚΟΣ", "Ο Νίκος φτιάχνει καφέ.", "Καλημέρα, Μαρία."),
    ("EXT. ΛΙΜΑΝΙ - ΒΡΑΔΥ", "ΜΑΡΙΑ", "Τα καράβια φεύγουν.", "Αντίο, θάλασσα."),
])


@pytest.fixture
def library(tmp_path):
    return write_library(tmp_path / "lib", extra={"recital.fountain": RARE_SCRIPT, "greek.fountain": GREEK_SCRIPT})


@pytest.fixture
def searcher(library, tmp_path, tiny_embedder):
    report = ingest_paths([library], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    assert report.errors == [] and report.scripts_added == 5
    return SceneSearcher(tmp_path / "idx", tiny_embedder)


def test_a_rare_exact_word_is_found_by_bm25_and_hybrid_but_missed_by_dense(searcher):
    target = "recital#1"
    dense = [h.scene_id for h in searcher.search(RARE, k=3, mode="dense")]
    bm25 = [h.scene_id for h in searcher.search(RARE, k=3, mode="bm25")]
    hybrid = [h.scene_id for h in searcher.search(RARE, k=3)]  # hybrid is the default
    assert target not in dense and {sid.split("#")[0] for sid in dense} == {"greek"}  # all [UNK] to it
    assert bm25 == [target]  # the only scene holding the word
    # every other scene gets at most 1/61 (from dense alone); the target gets 1/61 from
    # BM25 plus its dense share, so fusion puts it first whatever dense thought
    assert hybrid[0] == target


def test_each_mode_is_selectable_and_scores_its_own_way(searcher):
    query = "the captain coils rope on the fishing boat in the harbour"
    for mode in ("dense", "bm25", "hybrid"):
        hits = searcher.search(query, k=3, mode=mode)
        assert hits and hits[0].script_id == "harbour", mode
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len({h.scene_id for h in hits}) == len(hits)
    dense = searcher.search(query, k=1, mode="dense")[0]
    assert 0 < dense.score <= 1.0001  # cosine
    assert searcher.search(query, k=1, mode="bm25")[0].score > 1  # BM25 sums idf-weighted words
    assert searcher.search(query, k=1, mode="hybrid")[0].score <= 2 / 61 + 1e-9  # RRF, k=60, weights <= 1
    with pytest.raises(ValueError, match="mode"):
        searcher.search(query, mode="sparse")
    with pytest.raises(ValueError, match="level"):
        searcher.search(query, level="act")


def test_existing_callers_passing_only_query_and_k_still_work(searcher):
    hits = searcher.search("judge jury verdict witness gavel", k=2)
    assert len(hits) == 2 and hits[0].script_id == "courtroom"


def test_script_level_returns_one_hit_per_script_best_first_with_its_best_scene(searcher):
    query = "the baker pulls warm bread from the oven at dawn"
    for mode in ("dense", "bm25", "hybrid"):
        scripts = searcher.search(query, k=4, mode=mode, level="script")
        ids = [h.script_id for h in scripts]
        assert len(ids) == len(set(ids)) and ids[0] == "bakery", mode
        assert [h.score for h in scripts] == sorted((h.score for h in scripts), reverse=True)
        scenes = searcher.search(query, k=50, mode=mode)
        best_scene_of = {}
        for hit in scenes:  # best first, so the first hit of each script is its best scene
            best_scene_of.setdefault(hit.script_id, hit.scene_id)
        assert all(h.scene_id == best_scene_of[h.script_id] for h in scripts), mode


def test_script_score_is_the_sum_of_its_two_best_scene_scores():
    scenes = [("a", "a#0", 0.9), ("b", "b#0", 0.5), ("b", "b#1", 0.45), ("b", "b#2", 0.4), ("b", "b#3", 0.4), ("c", "c#0", 0.2)]
    out = aggregate_scripts(scenes)
    assert [(sid, best) for sid, best, _ in out] == [("b", "b#0"), ("a", "a#0"), ("c", "c#0")]
    assert out[0][2] == pytest.approx(0.95)  # 0.5 + 0.45: the rest do not count
    assert out[1][2] == pytest.approx(0.9)
    assert aggregate_scripts(scenes, top=1)[0][0] == "a"  # max would pick a single strong scene


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d", "a"]], k=60)
    assert [item for item, _ in fused] == ["b", "a", "d", "c"]  # in both lists beats first in one
    assert dict(fused)["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert dict(fused)["a"] == pytest.approx(1 / 61 + 1 / 63)
    weighted = reciprocal_rank_fusion([["a"], ["d"]], k=60, weights=[1.0, 2.0])
    assert [item for item, _ in weighted] == ["d", "a"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 1.0])


def _cache_dirs(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.glob("bm25-*"))


def test_bm25_cache_is_reused_until_the_index_changes(library, tmp_path, tiny_embedder):
    index_dir = tmp_path / "idx"
    ingest_paths([library], index_dir=index_dir, embedder=tiny_embedder, progress=False)
    first = SceneSearcher(index_dir, tiny_embedder)
    first.search("bread", mode="bm25")
    assert first.bm25_status == "built" and len(_cache_dirs(index_dir)) == 1
    cached = _cache_dirs(index_dir)

    again = SceneSearcher(index_dir, tiny_embedder)
    assert again.search("bread", mode="bm25")[0].script_id == "bakery"
    assert again.bm25_status == "loaded" and _cache_dirs(index_dir) == cached

    # a new script: the cache key changes, it is rebuilt and the new words are searchable
    (library / "observatory.fountain").write_text(fountain("Stars", "Star Writer", [
        ("INT. OBSERVATORY - NIGHT", "ASTRONOMER", "The astronomer polishes the telescope lens under the dome.",
         "The comet returns tonight.")]), encoding="utf-8")
    ingest_paths([library], index_dir=index_dir, embedder=tiny_embedder, progress=False)
    added = SceneSearcher(index_dir, tiny_embedder)
    assert added.search("comet telescope", mode="bm25")[0].script_id == "observatory"
    assert added.bm25_status == "built"
    assert len(_cache_dirs(index_dir)) == 1 and _cache_dirs(index_dir) != cached  # the stale cache is gone
    after_add = _cache_dirs(index_dir)

    # a removed script: rebuilt again, and it is no longer found
    index = SceneIndex.load(index_dir)
    index.remove_script("observatory")
    index.save()
    removed = SceneSearcher(index_dir, tiny_embedder)
    assert removed.search("comet telescope", mode="bm25") == []
    # keyed by content: back to the first library's key (its folder was deleted as stale, so built anew)
    assert removed.bm25_status == "built" and _cache_dirs(index_dir) == cached != after_add


def test_a_damaged_bm25_cache_is_rebuilt(searcher, tmp_path, tiny_embedder):
    searcher.search("bread", mode="bm25")
    (folder,) = (tmp_path / "idx").glob("bm25-*")
    for file in folder.glob("*.npy"):
        file.write_bytes(b"garbage")
    fresh = SceneSearcher(tmp_path / "idx", tiny_embedder)
    assert fresh.search("bread", mode="bm25")[0].script_id == "bakery" and fresh.bm25_status == "built"


def test_queries_with_no_known_word_find_nothing_lexically(searcher):
    assert searcher.search("qqqq zzzz", mode="bm25") == []
    assert searcher.search("   ", mode="hybrid") == []
    assert searcher.search("!!! ???", mode="bm25") == []


# -- reranking --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_reranker_dir(tmp_path_factory):
    from tests.retrieval.tiny_cross_encoder import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-reranker"))


def test_reranking_orders_the_top_results_by_the_cross_encoders_scores(library, tmp_path, tiny_embedder, tiny_reranker_dir):
    from sentence_transformers import CrossEncoder

    ingest_paths([library], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    plain = SceneSearcher(tmp_path / "idx", tiny_embedder)
    reranked = SceneSearcher(tmp_path / "idx", tiny_embedder, reranker_dir=tiny_reranker_dir, rerank_top_n=8)
    assert reranked.reranker is not None and reranked.reranker._model is None  # loaded lazily
    query = "the orchestra and the bread"
    candidates = plain.search(query, k=8)
    hits = reranked.search(query, k=8)
    assert {h.scene_id for h in hits} == {h.scene_id for h in candidates}  # the same top 8, re-scored

    model = CrossEncoder(str(tiny_reranker_dir), device="cpu")
    expected = {h.scene_id: float(model.predict([(query, h.scene.text)])[0]) for h in candidates}
    assert [h.scene_id for h in hits] == sorted(expected, key=lambda sid: -expected[sid])
    assert [h.score for h in hits] == pytest.approx([expected[h.scene_id] for h in hits], rel=1e-4, abs=1e-5)
    assert [h.scene_id for h in hits] != [h.scene_id for h in candidates]  # the reranker really changed the order


def test_a_missing_reranker_directory_is_refused(tmp_path, tiny_embedder):
    with pytest.raises(FileNotFoundError, match="cross-encoder"):
        SceneSearcher(tmp_path / "idx", tiny_embedder, reranker_dir=tmp_path / "nope")


def test_bm25_tokens_are_lowercase_words_and_cjk_character_pairs():
    from retrieval.bm25 import tokenize

    assert tokenize("HAMLET. To be, or not to be: act 3, a") == ["hamlet", "to", "be", "or", "not", "to", "be", "act", "3"]
    assert tokenize("Fröken JULIE, Καλλιόπη") == ["fröken", "julie", "καλλιόπη"]
    assert tokenize("東京タワー") == ["東京", "京タ", "タワ", "ワー"]  # no spaces to split on

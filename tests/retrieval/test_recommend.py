"""Recommendations over a real tiny index, with the tiny embedder (no store: the bot
side is tested in tests/bot/core/test_recommend_style.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.index import SceneIndex, iter_records
from retrieval.ingest import ingest_paths
from retrieval.recommend import LikedScene, recommend, scene_key, script_of

DRAGON = ("The dragon circles the castle tower at night. The knight raises his shield and the dragon "
          "breathes fire on the castle wall. Fire and smoke fill the tower.")

LIBRARY = {
    # alpha: the scene the room approved (X), and an unrelated second scene
    "alpha.fountain": f"INT. CASTLE TOWER - NIGHT\n\n{DRAGON}\n\nKNIGHT\nThe dragon burns the castle!\n\n"
                      "EXT. BEACH - DAY\n\nChildren build sand houses by the sea with buckets and spades.\n\n"
                      "MOTHER\nTime for lunch, come out of the water.\n",
    # bravo: unseen, the closest to X
    "bravo.fountain": "EXT. CASTLE WALL - NIGHT\n\nThe dragon breathes fire on the castle tower. The knight lifts his "
                      "shield against the dragon fire and smoke.\n\nKNIGHT\nHold the castle wall!\n",
    # charlie: unseen, unlike X
    "charlie.fountain": "INT. OFFICE - DAY\n\nPhones ring. Clerks type reports at their desks under a humming light.\n\n"
                        "CLERK\nThe quarterly numbers are due by five.\n",
    # delta: seen (a generation cited its first scene); its second scene is also close to X
    "delta.fountain": f"INT. CASTLE HALL - NIGHT\n\n{DRAGON}\n\nKING\nCall the knight.\n\n"
                      "EXT. CASTLE GATE - NIGHT\n\nThe knight rides out. The dragon circles the castle tower, "
                      "fire on the wall.\n\nKNIGHT\nFor the castle!\n",
}


def build_library(root: Path, embedder) -> tuple[Path, dict[str, str]]:
    """Write and ingest the four scripts; returns (index dir, {"alpha#castle": scene id, ...})."""
    source = root / "scripts"
    source.mkdir(parents=True, exist_ok=True)
    for name, text in LIBRARY.items():
        (source / name).write_text(text, encoding="utf-8")
    index_dir = root / "index"
    report = ingest_paths([source], index_dir=index_dir, embedder=embedder, progress=False)
    assert not report.failed
    ids: dict[str, str] = {}
    for record in iter_records(SceneIndex.load(index_dir)):
        place = record["heading"].split(".", 1)[1].split("-")[0].strip().split()[-1].lower()
        ids[f"{record['script_id']}#{place}"] = record["scene_id"]
    return index_dir, ids


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_embedder):
    index_dir, ids = build_library(tmp_path_factory.mktemp("recommend"), tiny_embedder)
    return SceneIndex.load(index_dir), ids


def test_unseen_script_closest_to_the_liked_scene_comes_first_with_a_reason(library, tiny_embedder):
    index, ids = library
    x = ids["alpha#tower"]
    result = recommend(index, tiny_embedder, liked=[LikedScene(x + ".0", 7)],
                       seen_scene_ids=[x + ".0", ids["delta#hall"]], k=5)
    order = [item.script_id for item in result.items]
    assert order[0] == "bravo"
    first = result.items[0]
    assert not first.seen and first.because_scene_id == x and first.because_generation_id == 7
    assert "INT. CASTLE TOWER - NIGHT" in first.reason and "generation 7" in first.reason
    assert result.liked_used == (x,)


def test_seen_scripts_come_after_unseen_ones_and_never_offer_a_cited_scene(library, tiny_embedder):
    index, ids = library
    x = ids["alpha#tower"]
    result = recommend(index, tiny_embedder, liked=[LikedScene(x, 3)], seen_scene_ids=[x, ids["delta#hall"]], k=5)
    seen_flags = [item.seen for item in result.items]
    assert seen_flags == sorted(seen_flags)  # all False before any True
    assert {item.script_id for item in result.items if item.seen} == {"alpha", "delta"}
    assert [item.script_id for item in result.items if not item.seen] == ["bravo", "charlie"]
    cited = {x, ids["delta#hall"]}
    assert not cited & {item.scene_id for item in result.items}
    assert {item.scene_id for item in result.items if item.script_id == "delta"} == {ids["delta#gate"]}
    scores = [item.score for item in result.items if not item.seen]
    assert scores == sorted(scores, reverse=True)
    assert len(recommend(index, tiny_embedder, liked=[LikedScene(x, 3)], seen_scene_ids=[x], k=1).items) == 1


def test_each_recommendation_names_the_liked_scene_it_is_closest_to(library, tiny_embedder):
    index, ids = library
    castle, office = ids["alpha#tower"], ids["charlie#office"]
    result = recommend(index, tiny_embedder, liked=[LikedScene(castle, 2), LikedScene(office, 1)],
                       seen_scene_ids=[castle, office], k=5)
    by_script = {item.script_id: item for item in result.items}
    assert by_script["bravo"].because_scene_id == castle
    assert not by_script["bravo"].seen
    assert "charlie" not in by_script  # its only scene is the cited one: nothing new to offer


def test_missing_liked_scenes_and_empty_taste(library, tiny_embedder):
    index, _ = library
    result = recommend(index, tiny_embedder, liked=[LikedScene("gone#4.0", 1)], seen_scene_ids=[], k=5)
    assert result.items == () and result.liked_used == () and result.liked_missing == ("gone#4",)
    assert recommend(index, tiny_embedder, liked=[], seen_scene_ids=[], k=5).items == ()


def test_json_shape(library, tiny_embedder):
    index, ids = library
    data = recommend(index, tiny_embedder, liked=[LikedScene(ids["alpha#tower"], 1)], seen_scene_ids=[], k=2).as_json()
    assert set(data) == {"recommendations", "liked_scenes", "liked_missing"}
    item = data["recommendations"][0]
    assert set(item) == {"script_id", "title", "score", "seen", "scene", "because", "reason"}
    assert set(item["because"]) == {"scene_id", "heading", "title", "generation_id"}


def test_stored_vectors_line_up_with_records_as_reembedding_would(library, tiny_embedder):
    """The liked scenes' vectors come from the index when it offers them; they must be the
    vectors of the records they are matched with (else re-embedding is the fallback)."""
    from retrieval.recommend import _stored_rows

    index, _ = library
    texts = [record["text"] for record in iter_records(index)]
    stored = _stored_rows(index, list(range(len(texts))), n_records=len(texts))
    if stored is None:
        pytest.skip("this index offers no stored_vectors(): recommendations re-embed")
    assert stored == pytest.approx(tiny_embedder.encode(texts), abs=1e-4)
    assert _stored_rows(index, [0], n_records=len(texts) + 1) is None  # counts disagree: fall back


def test_scene_ids_normalise():
    assert scene_key("cyber-bob-ep00001#0.0") == "cyber-bob-ep00001#0"
    assert scene_key("a#b#12") == "a#b#12" and script_of("a#b#12.3") == "a#b"

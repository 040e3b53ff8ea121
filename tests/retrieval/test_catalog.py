"""The index catalog: metadata in SQL (SQLite, and PostgreSQL when a server is there),
as seen through SceneIndex by a later process: results after reopening, removals,
crashes before the commit, several indexes in one database, importing meta.json."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event, update

from retrieval.catalog import (
    GenerationWriter,
    make_engine,
    script_facts,
    script_row,
    state_table,
)
from retrieval.chunk import Chunk
from retrieval.index import SceneIndex, SceneIndexError, iter_records
from tests.retrieval.legacy_index import write_legacy_index

DIM = 16


def unit(rng, n):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scenes_of(script_id: str, n: int, *, title: str) -> list[Chunk]:
    return [Chunk(chunk_id=f"{script_id}#{s}.0", script_id=script_id, scene_index=s, heading=f"INT. {script_id.upper()} {s} - NIGHT",
                  text=f"chunk {s} of {script_id}", characters=("MAYA", "COLE"), location=f"{script_id.upper()} {s}",
                  time_of_day="NIGHT", title=title, scene_text=f"the whole of scene {s} of {title}")
            for s in range(n)]


@pytest.fixture
def vectors():
    rng = np.random.default_rng(7)
    return {"heist": unit(rng, 4), "ghost": unit(rng, 3)}


def build(index_dir, vectors, **where) -> SceneIndex:
    index = SceneIndex(index_dir, model_id="m:1", dim=DIM, **where)
    index.add(scenes_of("heist", 4, title="The Heist"), vectors["heist"], model_id="m:1")
    index.add(scenes_of("ghost", 3, title="Lighthouse Ghost"), vectors["ghost"], model_id="m:1")
    index.set_script_info("heist", authors=["Ana Reyes"], genre="Thriller", show="Night Shift", draft=3)
    index.record_file("/lib/heist.fountain", content_hash="h1", script_id="heist")
    return index


def top(index: SceneIndex, vector, k=1) -> list[tuple[str, str, str]]:
    return [(r["title"], r["heading"], r["scene_text"]) for r, _ in index.search(vector, k)]


def test_results_titles_and_facts_survive_reopening(tmp_path, catalog_url, vectors):
    index = build(tmp_path / "idx", vectors, catalog_url=catalog_url)
    index.save()
    index.close()
    reopened = SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url)
    assert top(reopened, vectors["ghost"][2]) == [("Lighthouse Ghost", "INT. GHOST 2 - NIGHT", "the whole of scene 2 of Lighthouse Ghost")]
    record, score = reopened.search(vectors["heist"][1], 1)[0]
    assert score == pytest.approx(1.0, abs=1e-5)
    assert (record["scene_id"], record["characters"], record["location"]) == ("heist#1", ("MAYA", "COLE"), "HEIST 1")
    assert reopened.script_info("heist") == {"title": "The Heist", "authors": ["Ana Reyes"], "genre": "Thriller",
                                             "show": "Night Shift", "draft": 3}
    assert reopened.file_record("/lib/heist.fountain") == {"hash": "h1", "script_id": "heist"}
    assert reopened.stats() == index.stats() and list(iter_records(reopened)) == list(iter_records(index))
    assert [(s["script_id"], s["scenes"], s["chunks"]) for s in reopened.scripts()] == [("ghost", 3, 3), ("heist", 4, 4)]


def test_a_removal_reaches_other_readers_only_once_saved(tmp_path, catalog_url, vectors):
    build(tmp_path / "idx", vectors, catalog_url=catalog_url).save()
    writer = SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url)
    assert writer.remove_script("heist") == 4
    assert top(SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url), vectors["heist"][0])[0][0] == "The Heist"
    writer.save()
    after = SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url)
    assert {r["script_id"] for r, _ in after.search(vectors["heist"][0], 10)} == {"ghost"}
    assert after.script_ids() == {"ghost"} and after.file_record("/lib/heist.fountain") is None
    assert after.stats()["chunks"] == 3 and after.stats()["scenes"] == 3
    # the script comes back under the same id with new text, as a changed file does at ingest
    after.add(scenes_of("heist", 2, title="The Heist II"), vectors["heist"][:2], model_id="m:1")
    after.save()
    assert top(SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url), vectors["heist"][1])[0][0] == "The Heist II"


def test_a_crash_inside_the_save_transaction_keeps_the_old_results(tmp_path, catalog_url, vectors, monkeypatch):
    build(tmp_path / "idx", vectors, catalog_url=catalog_url).save()
    index = SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url)
    index.remove_script("ghost")
    index.set_script_info("heist", title="Renamed")

    def crash(self, chunks):
        raise OSError("disk full")

    monkeypatch.setattr(GenerationWriter, "insert_chunks", crash)  # after the deletes and the new facts
    with pytest.raises(OSError, match="disk full"):
        index.save()
    monkeypatch.undo()
    survivor = SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url)
    assert top(survivor, vectors["ghost"][0])[0][0] == "Lighthouse Ghost"
    assert survivor.script_info("heist")["title"] == "The Heist" and survivor.stats()["chunks"] == 7


def test_two_indexes_share_one_database_without_seeing_each_other(tmp_path, catalog_url, vectors):
    drama = SceneIndex(tmp_path / "drama", model_id="m:1", dim=DIM, catalog_url=catalog_url, index_name="drama")
    drama.add(scenes_of("heist", 4, title="The Heist"), vectors["heist"], model_id="m:1")
    drama.save()
    comedy = SceneIndex(tmp_path / "comedy", model_id="m:1", dim=DIM, catalog_url=catalog_url, index_name="comedy")
    comedy.add(scenes_of("ghost", 3, title="Lighthouse Ghost"), vectors["ghost"], model_id="m:1")
    comedy.add(scenes_of("heist", 1, title="Heist Parody"), vectors["heist"][:1], model_id="m:1")
    comedy.save()

    drama = SceneIndex.load(tmp_path / "drama", catalog_url=catalog_url, index_name="drama")
    comedy = SceneIndex.load(tmp_path / "comedy", catalog_url=catalog_url, index_name="comedy")
    assert drama.script_ids() == {"heist"} and comedy.script_ids() == {"ghost", "heist"}
    assert top(drama, vectors["heist"][0]) == [("The Heist", "INT. HEIST 0 - NIGHT", "the whole of scene 0 of The Heist")]
    assert top(comedy, vectors["heist"][0])[0][0] == "Heist Parody"
    comedy.remove_script("heist")  # same script id, other index: drama's rows stay
    comedy.save()
    assert SceneIndex.load(tmp_path / "drama", catalog_url=catalog_url, index_name="drama").stats()["chunks"] == 4
    assert not SceneIndex.exists(tmp_path / "drama", catalog_url=catalog_url, index_name="thriller")
    with pytest.raises(SceneIndexError, match="already exists"):  # a new index may not overwrite a saved one
        SceneIndex(tmp_path / "other", catalog_url=catalog_url, index_name="drama").save()


def test_an_old_meta_json_index_is_imported_once_with_the_same_hits(tmp_path, catalog_url, vectors):
    chunks = scenes_of("heist", 4, title="The Heist") + scenes_of("ghost", 3, title="Lighthouse Ghost")
    stacked = np.vstack([vectors["heist"], vectors["ghost"]])
    write_legacy_index(tmp_path / "old", chunks=chunks, vectors=stacked, model_id="m:1",
                       scripts={"heist": {"authors": ["Ana Reyes"], "format": "fountain"}},
                       files={"/lib/heist.fountain": {"hash": "h1", "script_id": "heist"}})
    current = SceneIndex(tmp_path / "new", model_id="m:1", dim=DIM)
    current.add(chunks, stacked, model_id="m:1")

    imported = SceneIndex.load(tmp_path / "old", catalog_url=catalog_url)
    assert not (tmp_path / "old" / "meta.json").exists() and (tmp_path / "old" / "meta.json.imported").is_file()
    for query in (vectors["heist"][2], vectors["ghost"][0], vectors["heist"][0] + vectors["ghost"][1]):
        assert imported.search(query, 5) == current.search(query, 5)
    assert imported.script_info("heist") == {"title": "The Heist", "authors": ["Ana Reyes"], "format": "fountain"}
    assert imported.file_record("/lib/heist.fountain") == {"hash": "h1", "script_id": "heist"}
    # from now on the catalog is the index: a save moves to generation 2 and new ids follow the old ones
    assert imported.add(scenes_of("storm", 1, title="Storm"), vectors["ghost"][:1], model_id="m:1") == [7]
    imported.save()
    imported.close()
    again = SceneIndex.load(tmp_path / "old", catalog_url=catalog_url)
    assert again.script_ids() == {"heist", "ghost", "storm"} and again.stats()["chunks"] == 8
    assert sorted(p.name for p in (tmp_path / "old").glob("*.faiss")) == ["vectors-2.faiss"]


def test_an_interrupted_import_leaves_meta_json_to_import_again(tmp_path, vectors, monkeypatch):
    chunks = scenes_of("heist", 4, title="The Heist")
    write_legacy_index(tmp_path / "old", chunks=chunks, vectors=vectors["heist"], model_id="m:1")

    def crash(self, chunks):
        raise OSError("killed")

    monkeypatch.setattr(GenerationWriter, "insert_chunks", crash)
    with pytest.raises(OSError, match="killed"):
        SceneIndex.load(tmp_path / "old")
    monkeypatch.undo()
    assert (tmp_path / "old" / "meta.json").is_file()  # one transaction: nothing half-imported
    assert top(SceneIndex.load(tmp_path / "old"), vectors["heist"][3])[0][0] == "The Heist"


def test_a_stop_between_the_import_and_the_rename_is_finished_on_the_next_load(tmp_path, vectors, monkeypatch):
    write_legacy_index(tmp_path / "old", chunks=scenes_of("heist", 4, title="The Heist"), vectors=vectors["heist"], model_id="m:1")

    def killed(path):
        raise OSError("killed")

    monkeypatch.setattr("retrieval.legacy_meta.mark_imported", killed)
    with pytest.raises(OSError, match="killed"):
        SceneIndex.load(tmp_path / "old")
    monkeypatch.undo()
    assert top(SceneIndex.load(tmp_path / "old"), vectors["heist"][1])[0][0] == "The Heist"
    assert (tmp_path / "old" / "meta.json.imported").is_file() and not (tmp_path / "old" / "meta.json").exists()


def test_an_old_index_is_not_paired_with_another_index_of_its_name(tmp_path, catalog_url, vectors):
    build(tmp_path / "new", vectors, catalog_url=catalog_url).save()  # takes the name "default"
    write_legacy_index(tmp_path / "old", chunks=scenes_of("heist", 4, title="Old Heist"), vectors=vectors["heist"],
                       model_id="m:1")
    with pytest.raises(SceneIndexError, match="already holds another index named 'default'"):
        SceneIndex.load(tmp_path / "old", catalog_url=catalog_url)
    assert (tmp_path / "old" / "meta.json").is_file()
    old = SceneIndex.load(tmp_path / "old", catalog_url=catalog_url, index_name="old")
    assert top(old, vectors["heist"][0])[0][0] == "Old Heist"


def test_a_catalog_of_another_format_asks_for_a_rebuild(tmp_path, catalog_url, vectors):
    build(tmp_path / "idx", vectors, catalog_url=catalog_url).save()
    engine = make_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(update(state_table).values(format_version=99))
    engine.dispose()
    with pytest.raises(SceneIndexError, match="format 99, expected 1; rebuild the index"):
        SceneIndex.load(tmp_path / "idx", catalog_url=catalog_url)


def test_opening_reads_no_chunk_or_scene_texts(tmp_path, vectors, monkeypatch):
    """The point of the catalog: opening a large index does not read every text; a
    search reads the records of its hits, by id."""
    import retrieval.catalog as catalog_module

    build(tmp_path / "idx", vectors).save()
    statements: list[str] = []

    def recording_engine(url):
        engine = make_engine(url)
        event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: statements.append(statement))
        return engine

    monkeypatch.setattr(catalog_module, "make_engine", recording_engine)
    index = SceneIndex.load(tmp_path / "idx")
    opening = " ".join(statements)
    assert "scene_index_state" in opening and "scene_index_scripts" in opening
    assert "scene_index_chunks.text" not in opening and "scene_index_scenes.text" not in opening
    statements.clear()
    assert top(index, vectors["ghost"][0])[0][0] == "Lighthouse Ghost"
    assert any("scene_index_chunks.text" in s and " IN (" in s for s in statements)


def test_script_facts_round_trip_through_columns_and_extra():
    info = {"title": "T", "authors": ["A", "B"], "genre": ["Comedy", "Drama"], "language": "en", "season": 2}
    row = script_row(info)
    assert row["genre"] is None and row["extra"] == {"genre": ["Comedy", "Drama"], "season": 2}
    assert script_facts(row) == info

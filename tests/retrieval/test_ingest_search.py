"""Ingest a library and search it, with the tiny embedder: what a writer would notice."""

from __future__ import annotations

import shutil

import pytest

from retrieval.bundled import bundled_corpus_dir
from retrieval.index import SceneIndex
from retrieval.ingest import ingest_paths
from retrieval.parse import parse_file
from retrieval.search import EXCERPT_CHARS, SceneSearcher

CORPUS = bundled_corpus_dir()


@pytest.fixture
def library(tmp_path):
    """A writable copy of a few bundled screenplays and two plays."""
    lib = tmp_path / "lib"
    shutil.copytree(CORPUS / "screenplays", lib / "screenplays")
    (lib / "plays").mkdir()
    for name in ("amdracor/tyler-the-contrast.xml", "amdracor/sutherland-a-bit-of-instruction.xml"):
        shutil.copy(CORPUS / "plays" / name, lib / "plays")
    return lib


def ingest(library, index_dir, embedder):
    return ingest_paths([library], index_dir=index_dir, embedder=embedder, progress=False)


def test_ingest_then_find_a_scene_by_its_content(library, tmp_path, tiny_embedder):
    report = ingest(library, tmp_path / "idx", tiny_embedder)
    assert report.errors == []
    assert report.files_seen == report.scripts_added == 15  # 13 .fountain + 2 .xml; LICENSE .txt files skipped
    searcher = SceneSearcher(tmp_path / "idx", tiny_embedder)
    assert not searcher.is_empty

    pulpit = parse_file(library / "screenplays" / "the_pulpit" / "pulpit__fire.fountain")
    query = pulpit.scenes[0].text()[:400]
    hits = searcher.search(query, k=5)
    assert hits[0].script_id == "pulpit-fire" and hits[0].scene_id == "pulpit-fire#0"
    assert hits[0].scene.heading == "INT. SUPERNACLE--DAY"
    assert len({h.scene_id for h in hits}) == len(hits) == 5  # one hit per scene
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits[0].scene.excerpt) <= EXCERPT_CHARS + 2
    assert hits[0].scene.text.startswith("INT. SUPERNACLE--DAY") and len(hits[0].scene.text) > len(hits[0].scene.excerpt)
    assert hits[0].as_json()["scene"]["heading"] == "INT. SUPERNACLE--DAY"


def test_a_long_play_scene_is_found_by_a_passage_from_its_middle(library, tmp_path, tiny_embedder):
    ingest(library, tmp_path / "idx", tiny_embedder)
    play = parse_file(library / "plays" / "tyler-the-contrast.xml")
    scene = play.scenes[2]
    words = scene.text().split()
    passage = " ".join(words[len(words) // 2 : len(words) // 2 + 120])
    hit = SceneSearcher(tmp_path / "idx", tiny_embedder).search(passage, k=1)[0]
    assert (hit.script_id, hit.scene.index, hit.title) == ("am000716", 2, "The Contrast")


def test_unchanged_files_are_not_embedded_again(library, tmp_path, counting_embedder):
    first = ingest(library, tmp_path / "idx", counting_embedder)
    embedded = counting_embedder.texts_encoded
    assert embedded == first.chunks > 0
    again = ingest(library, tmp_path / "idx", counting_embedder)
    assert counting_embedder.texts_encoded == embedded  # nothing embedded
    assert (again.scripts_added, again.scripts_unchanged, again.chunks) == (0, 15, 0)
    assert SceneIndex.load(tmp_path / "idx").stats()["chunks"] == first.chunks


def test_changed_file_replaces_its_script(library, tmp_path, tiny_embedder):
    ingest(library, tmp_path / "idx", tiny_embedder)
    before = SceneIndex.load(tmp_path / "idx").stats()
    path = library / "screenplays" / "the_pulpit" / "pulpit__fire.fountain"
    path.write_text(
        "INT. SUBMARINE GALLEY - NIGHT\n\nCAPTAIN ZORBA stirs a pot of octopus stew under flickering sonar light.\n\n"
        "ZORBA\nNobody leaves this galley until the stew is finished.\n",
        encoding="utf-8",
    )
    report = ingest(library, tmp_path / "idx", tiny_embedder)
    assert (report.scripts_added, report.scripts_unchanged, report.scenes) == (1, 14, 1)
    after = SceneIndex.load(tmp_path / "idx").stats()
    assert after["scripts"] == before["scripts"]
    hits = SceneSearcher(tmp_path / "idx", tiny_embedder).search("captain zorba octopus stew in the submarine galley", k=3)
    assert hits[0].scene_id == "pulpit-fire#0" and hits[0].scene.heading == "INT. SUBMARINE GALLEY - NIGHT"
    assert all(h.scene.heading != "INT. SUPERNACLE--DAY" for h in hits)  # the old version is gone
    assert hits[0].characters == ("ZORBA",)


def test_malformed_file_is_reported_and_the_rest_ingested(library, tmp_path, tiny_embedder):
    (library / "plays" / "broken.xml").write_text("<TEI xmlns='http://www.tei-c.org/ns/1.0'><text><body>", encoding="utf-8")
    report = ingest(library, tmp_path / "idx", tiny_embedder)
    assert len(report.errors) == 1 and "broken.xml" in report.errors[0] and "malformed XML" in report.errors[0]
    assert report.scripts_added == 15 and report.files_seen == 16


def test_removed_script_is_no_longer_returned(library, tmp_path, tiny_embedder):
    ingest(library, tmp_path / "idx", tiny_embedder)
    query = parse_file(library / "screenplays" / "the_pulpit" / "pulpit__fire.fountain").scenes[0].text()[:400]
    index = SceneIndex.load(tmp_path / "idx")
    assert index.remove_script("pulpit-fire") > 0
    index.save()
    hits = SceneSearcher(tmp_path / "idx", tiny_embedder).search(query, k=10)
    assert hits and "pulpit-fire" not in {h.script_id for h in hits}


def test_same_file_name_in_two_folders_keeps_both(tmp_path, tiny_embedder):
    for folder, heading in (("a", "INT. BAKERY - DAY"), ("b", "EXT. HARBOUR - NIGHT")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "draft.fountain").write_text(f"{heading}\n\nSomething happens at the {folder}.\n", encoding="utf-8")
    report = ingest_paths([tmp_path / "a", tmp_path / "b"], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    assert report.scripts_added == 2
    ids = SceneIndex.load(tmp_path / "idx").script_ids()
    assert len(ids) == 2 and "draft" in ids


def test_search_on_an_empty_index(tmp_path, tiny_embedder):
    searcher = SceneSearcher(tmp_path / "nothing-here", tiny_embedder)
    assert searcher.is_empty and searcher.search("a heist in a bakery") == []


def test_missing_path_is_an_error_not_a_crash(tmp_path, tiny_embedder):
    report = ingest_paths([tmp_path / "nope"], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    assert report.files_seen == 0 and "no such file" in report.errors[0]


def test_importing_retrieval_does_not_pull_in_torch():
    """bot.core imports retrieval; the bot process must stay free of torch."""
    import subprocess
    import sys

    code = (
        "import sys, retrieval.search, retrieval.ingest, retrieval.embed, retrieval.index, retrieval.parse;"
        "bad = {'torch', 'sentence_transformers', 'transformers'} & set(sys.modules);"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

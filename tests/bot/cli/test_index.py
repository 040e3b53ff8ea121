"""`writersroom index stats|list|remove|rebuild` on a small library embedded with the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.index import index_app
from retrieval.bundled import bundled_corpus_dir
from retrieval.index import SceneIndex

SAMPLE = ["screenplays/the_pulpit/pulpit__fire.fountain", "screenplays/cyber_bob/Cyber_Bob_ep00001.fountain",
          "screenplays/various/ASCENT_TO_GURU_PEAK.fountain"]

runner = CliRunner()


@pytest.fixture(scope="module")
def built_index(tmp_path_factory) -> Path:
    """Ingested once per module; each test works on its own copy."""
    from retrieval.embed import Embedder
    from retrieval.ingest import ingest_paths
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    root = tmp_path_factory.mktemp("cli-index")
    library = root / "library"
    library.mkdir()
    for relative in SAMPLE:
        shutil.copy(bundled_corpus_dir() / relative, library)
    embedder = Embedder(build_tiny_embedder(root / "tiny"), batch_size=64)
    report = ingest_paths([library], index_dir=root / "index", embedder=embedder, progress=False)
    assert report.scripts_added == 3
    return root / "index"


@pytest.fixture
def index_dir(built_index, isolated_home) -> Path:
    """A copy where the settings put the index (HOME/index), so --index is optional."""
    target = isolated_home / "index"
    shutil.copytree(built_index, target)
    return target


def invoke(*args: str):
    return runner.invoke(index_app, list(args))


def test_stats_json_and_text(index_dir):
    result = invoke("stats", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    expected = SceneIndex.load(index_dir).stats()
    assert {k: info[k] for k in expected} == expected
    assert info["scripts"] == 3 and info["type"] == "flat" and info["vectors"] == info["chunks"] > 0
    assert info["size_bytes"] == sum(p.stat().st_size for p in index_dir.iterdir()) and info["index_dir"] == str(index_dir)
    text = invoke("stats").output
    assert "type:         flat" in text and f"chunks:       {info['chunks']}" in text and "size on disk:" in text


def test_list_shows_scripts_with_titles_and_counts(index_dir):
    scripts = json.loads(invoke("list", "--json").output)
    assert [s["script_id"] for s in scripts] == sorted(s["script_id"] for s in scripts) and len(scripts) == 3
    pulpit = next(s for s in scripts if "pulpit" in s["script_id"].lower())
    assert pulpit["scenes"] > 0 and pulpit["chunks"] >= pulpit["scenes"] and pulpit["source_path"].endswith("pulpit__fire.fountain")
    text = invoke("list").output
    assert pulpit["script_id"] in text and "3 scripts" in text


def test_remove_a_script_and_an_unknown_one(index_dir):
    scripts = json.loads(invoke("list", "--json").output)
    victim = scripts[0]
    result = invoke("remove", victim["script_id"])
    assert result.exit_code == 0, result.output
    assert f"removed {victim['script_id']}" in result.output and f"{victim['scenes']} scenes, {victim['chunks']} chunks" in result.output
    assert victim["script_id"] not in SceneIndex.load(index_dir).script_ids()
    missing = invoke("remove", victim["script_id"])
    assert missing.exit_code == 1 and "no script" in missing.output and "index list" in missing.output


def test_rebuild_between_kinds_keeps_search_results(index_dir):
    before = SceneIndex.load(index_dir)
    query = before.stored_vectors()[0][7].copy()
    expected = before.search(query, 5)
    for kind in ("hnsw", "ivfpq", "flat"):
        result = invoke("rebuild", "--kind", kind)
        assert result.exit_code == 0, result.output
        assert f"-> {kind}" in result.output
        after = SceneIndex.load(index_dir)
        (record, score), = after.search(query, 1)
        assert after.kind == kind and record == expected[0][0] and score == pytest.approx(expected[0][1], abs=1e-5)
    assert "chosen by size" in invoke("rebuild").output and SceneIndex.load(index_dir).kind == "flat"
    bad = invoke("rebuild", "--kind", "annoy")
    assert bad.exit_code == 2 and "--kind must be one of" in bad.output


def test_index_option_overrides_settings_and_missing_index_is_explained(index_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(index_dir), elsewhere)
    assert json.loads(invoke("stats", "--json", "--index", str(elsewhere)).output)["scripts"] == 3
    result = invoke("stats")
    assert result.exit_code == 1 and "no scene index at" in result.output and "writersroom ingest" in result.output


def test_a_corrupt_index_is_reported_not_a_traceback(index_dir):
    for vectors in index_dir.glob("vectors-*.faiss"):
        vectors.write_bytes(b"not faiss")
    result = invoke("stats")
    assert result.exit_code == 1 and "corrupt or truncated" in result.output

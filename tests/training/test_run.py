"""A whole training run on a tiny Llama built from a config: dataset from the store, LoRA,
the evaluation gate on the backend's engine, the registry, the run row and the report.

The tiny model learns one repeated scene within a few steps, so "better" is real here:
a candidate is promoted because its perplexity on the held-out examples fell, and kept
when the margin asked for cannot be met.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from config.settings import load_settings
from registry import versions as registry
from tests.training.run_support import TRAIN_ENV, import_scenes, run_rows

pytestmark = pytest.mark.usefixtures("tiny_training_env")


def test_a_better_candidate_is_published_promoted_recorded_and_reported(tmp_path):
    from training.run import run_training

    import_scenes(12)
    settings = load_settings()
    result = run_training(settings, trigger="test", progress=False)

    assert result.status == "succeeded" and result.promoted, result.summary()
    assert result.examples == 12 and result.train_examples + result.validation_examples == 12
    # The registry: a complete version with the manifest the issue lists, and it serves.
    version = registry.get_version(settings.adapter_dir, result.version)
    manifest = version.manifest
    assert manifest.base_model == "tiny-chat" and manifest.example_count == 12 and len(manifest.data_hash) == 64
    assert manifest.training["lora_r"] == 4 and manifest.training["learning_rate"] == pytest.approx(0.05)
    assert manifest.metrics["promote"] is True and manifest.metrics["candidate"]["validation_ppl"] > 0
    assert registry.serving(settings.adapter_dir).default == result.version
    # Perplexity fell on the validation split and on the corpus screenplays, by the margin or more.
    candidate, serving = result.metrics["candidate"], result.metrics["serving"]
    assert serving["label"] == "base model"
    assert candidate["validation_ppl"] < 0.98 * serving["validation_ppl"]
    assert candidate["screenplay_ppl"] < 0.98 * serving["screenplay_ppl"]
    assert candidate["sampled"] == serving["sampled"] == 2
    assert any("validation perplexity" in reason for reason in result.reasons)
    # The report: a PNG and the JSON with the loss curve.
    assert result.report_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((result.report_png.parent / "report.json").read_text())
    assert report["verdict"]["promote"] is True and len(report["losses"]) == 8
    # the curve ends with the finished adapter, as the gate measured it on the validation split
    assert report["eval_losses"][-1][0] == 8
    assert report["eval_losses"][-1][1] == pytest.approx(math.log(candidate["validation_ppl"]), rel=1e-3)
    # The run row.
    [row] = run_rows()
    assert row["status"] == "succeeded" and row["adapter_version"] == result.version
    assert row["metrics"]["promoted"] is True and row["example_count"] == 12
    # The work directory (checkpoints) is gone once the version is published.
    assert not any((settings.home / "training" / "work").iterdir())


def test_a_candidate_that_is_not_better_by_the_margin_is_kept_and_the_report_says_why(monkeypatch):
    from training.run import run_training

    import_scenes(12)
    monkeypatch.setenv("WRITERSROOM_TRAINING_PROMOTE_MARGIN", "0.99")  # nobody gets 99% lower perplexity
    settings = load_settings()
    result = run_training(settings, trigger="test", progress=False)

    assert result.status == "rejected" and not result.promoted
    assert any("< the 99% needed" in reason for reason in result.reasons), result.reasons
    assert registry.serving(settings.adapter_dir).default is None  # the base model still serves
    kept = registry.get_version(settings.adapter_dir, result.version)  # kept, not thrown away
    assert kept.manifest.metrics["promote"] is False
    [row] = run_rows()
    assert row["status"] == "rejected" and "99% needed" in row["notes"]
    report = json.loads((result.report_png.parent / "report.json").read_text())
    assert report["verdict"]["promote"] is False


def test_the_next_candidate_is_measured_against_the_serving_adapter():
    from training.run import run_training

    import_scenes(12)
    settings = load_settings()
    first = run_training(settings, trigger="test", progress=False)
    import_scenes(4, start=100)
    second = run_training(settings, trigger="test", progress=False)

    assert first.promoted and second.version != first.version
    assert second.metrics["serving"]["label"] == first.version
    current = registry.serving(settings.adapter_dir).default
    assert current == (second.version if second.promoted else first.version)


def test_too_few_examples_is_a_clear_message_and_no_run():
    from typer.testing import CliRunner

    from bot.cli.main import app

    import_scenes(3)
    outcome = CliRunner().invoke(app, ["train", "--now", "--quiet"])
    assert outcome.exit_code == 3
    assert "3 approved scene(s); training needs at least 6" in outcome.output
    assert "writersroom feedback import" in outcome.output
    assert run_rows() == []


def test_train_now_prints_the_run_as_json():
    from typer.testing import CliRunner

    from bot.cli.main import app

    import_scenes(12)
    outcome = CliRunner().invoke(app, ["train", "--now", "--json", "--quiet"])
    assert outcome.exit_code == 0, outcome.output
    printed = json.loads(outcome.stdout[outcome.stdout.index("{"):])
    assert printed["run_id"] == 1 and printed["examples"] == 12 and printed["status"] in ("succeeded", "rejected")
    assert printed["why"] and printed["metrics"]["candidate"]["validation_ppl"] > 0
    assert Path(printed["report_png"]).is_file()


def test_a_run_that_fails_is_recorded_with_its_error(monkeypatch):
    from training.run import run_training

    import_scenes(12)
    monkeypatch.setenv("WRITERSROOM_TRAINING_TARGET_MODULES", '["no_such_proj"]')  # PEFT finds no layer to adapt
    settings = load_settings()
    result = run_training(settings, trigger="test", progress=False)

    assert result.status == "failed" and "no_such_proj" in result.error
    [row] = run_rows()
    assert row["status"] == "failed" and "no_such_proj" in row["notes"]
    assert registry.list_versions(settings.adapter_dir) == []
    assert registry.serving(settings.adapter_dir).default is None


def test_runs_left_running_by_a_dead_process_are_closed_by_the_next_run():
    from store.db import session_scope
    from store.training_runs import start_training_run
    from training.run import _sessions, run_training

    import_scenes(12)
    settings = load_settings()
    sessions = _sessions(settings)
    with session_scope(sessions) as session:
        start_training_run(session, base_model="tiny-chat", dataset_hash="x", example_count=1)
    run_training(settings, trigger="test", progress=False, sessions=sessions)

    dead, finished = run_rows()
    assert dead["status"] == "failed" and "interrupted" in dead["notes"]
    assert finished["status"] in ("succeeded", "rejected")


def test_settings_used_by_the_tests_are_the_documented_ones():
    # TRAIN_ENV must only name real settings: a typo would silently train with defaults.
    settings = load_settings()
    dumped = settings.training.model_dump()
    for name in TRAIN_ENV:
        if name.startswith("WRITERSROOM_TRAINING_"):
            assert name.removeprefix("WRITERSROOM_TRAINING_").lower() in dumped, name

"""SIGKILL a `writersroom train --now` at every phase of its run: the serving adapter and the
registry stay intact, and the next run succeeds (resuming from the last checkpoint when
the kill landed in training)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.settings import load_settings
from registry import versions as registry
from tests.training.run_support import import_scenes, run_rows

pytestmark = pytest.mark.usefixtures("tiny_training_env")

# The progress lines `train --now` writes to standard error as it enters each phase.
PHASES = ["building the dataset", "training on", "checkpoint", "evaluating", "publishing", "promoting",
          "recording the outcome"]


def _train_until(phase: str, work_root: Path) -> list[str] | None:
    """Start `train --now` and SIGKILL it when it reaches `phase`; None if it got there, else
    what it wrote to standard error."""
    process = subprocess.Popen([sys.executable, "-m", "bot.cli.main", "train", "--now"], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    seen: list[str] = []
    try:
        if phase == "checkpoint":  # mid-training, once a checkpoint is on disk
            while time.monotonic() < deadline and not list(work_root.glob("*/checkpoints/checkpoint-*/trainer_state.json")):
                if process.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            for line in process.stderr:
                seen.append(line)
                if f"training: {phase}" in line:
                    break
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        return None if killed else [*seen, process.stderr.read(), f"exit {process.returncode}"]
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()


def _assert_registry_intact(adapters: Path, allowed_serving: set[str | None]) -> None:
    complete = {v.version for v in registry.list_versions(adapters)}
    visible = {p.name for p in adapters.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert visible == complete, f"half-written versions: {visible - complete}"
    pointer = registry.serving(adapters)  # parses: never torn
    assert pointer.default in allowed_serving
    assert pointer.default is None or pointer.default in complete


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_at_any_phase_leaves_serving_and_registry_intact_and_the_next_run_succeeds(phase, monkeypatch):
    from training.run import run_training

    monkeypatch.setenv("WRITERSROOM_TRAINING_MAX_STEPS", "3")  # a first adapter that a longer run beats
    # Judged on the validation split only: the point here is surviving kills, and the repeated
    # test scene says little about the corpus screenplays.
    monkeypatch.setenv("WRITERSROOM_TRAINING_EVAL_SCREENPLAY_SCENES", "0")
    settings = load_settings()
    import_scenes(12)
    first = run_training(settings, trigger="test", progress=False)
    assert first.promoted, first.summary()
    import_scenes(4, start=100)  # new data: the next run trains a new candidate...
    monkeypatch.setenv("WRITERSROOM_TRAINING_MAX_STEPS", "24")  # ...for longer, so it beats the first

    outcome = _train_until(phase, settings.home / "training" / "work")
    assert outcome is None, f"the run finished before reaching {phase!r}: {''.join(outcome[-20:])}"
    # A kill before the promotion leaves the first version serving; after it, the new one.
    new_versions = {v.version for v in registry.list_versions(settings.adapter_dir)} - {first.version}
    _assert_registry_intact(settings.adapter_dir, {first.version, *new_versions})
    if phase in PHASES[: PHASES.index("publishing")]:
        assert registry.serving(settings.adapter_dir).default == first.version
        assert not new_versions
    rows = run_rows()
    started = len(rows) == 2  # the run row is written once the dataset is known
    assert started == (phase != "building the dataset")
    # Nobody was left to close the row (unless the kill came as the outcome was being written).
    left_running = started and rows[-1]["status"] == "running"
    assert left_running or phase == "recording the outcome" or not started

    time.sleep(float(os.environ["WRITERSROOM_TRAINING_LOCK_STALE_S"]) + 0.5)  # the dead run's lock goes stale
    again = run_training(load_settings(), trigger="test", progress=False)
    assert again.status in ("succeeded", "rejected"), again.summary()
    if left_running:
        killed = run_rows()[1]
        assert killed["status"] == "failed" and "interrupted" in killed["notes"]
    _assert_registry_intact(settings.adapter_dir, {first.version, *new_versions, again.version})
    if phase == "checkpoint":
        assert again.metrics["training"]["resumed_from"], "the next run should resume from the checkpoint"

"""`writersroom trainer`: the threshold of new approvals, the cron schedule, one run at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from config.settings import load_settings
from registry import versions as registry
from tests.training.run_support import import_scenes, run_rows

pytestmark = pytest.mark.usefixtures("tiny_training_env")


def test_the_threshold_counts_approvals_since_the_last_run(monkeypatch):
    from training.triggers import Trainer

    monkeypatch.setenv("WRITERSROOM_TRAINING_THRESHOLD", "10")
    results = []
    trainer = Trainer(load_settings(), on_result=results.append)
    import_scenes(8)
    assert trainer.new_approvals() == 8 and trainer.check_threshold() is None  # 8 < 10: no run
    assert run_rows() == []
    import_scenes(4, start=50)
    result = trainer.check_threshold()
    assert result is not None and result.trigger == "threshold: 12 new approvals" and results == [result]
    assert trainer.new_approvals() == 0 and trainer.check_threshold() is None  # counted from that run on
    import_scenes(3, start=90)
    assert trainer.new_approvals() == 3


def test_one_run_at_a_time_in_a_process_and_too_few_examples_is_no_run():
    from training.triggers import Trainer

    started, release = threading.Event(), threading.Event()

    def slow_run(settings, **kwargs):
        started.set()
        release.wait(10)
        raise AssertionError("not reached in this test")

    trainer = Trainer(load_settings(), run=slow_run)
    worker = threading.Thread(target=lambda: pytest.raises(AssertionError, trainer.attempt, "first"))
    worker.start()
    assert started.wait(10)
    assert trainer.attempt("second") is None  # skipped while the first is going
    release.set()
    worker.join(10)

    import_scenes(2)  # fewer than training.min_examples: logged and waited out, no run
    assert Trainer(load_settings()).attempt("cron") is None and run_rows() == []


@pytest.mark.parametrize("schedule, days", [
    ("30 4 * * 1", ["Mon"]),  # cron counts weekdays from Sunday = 0; APScheduler 3 from Monday = 0
    ("0 4 * * 0-3", ["Sun", "Mon", "Tue", "Wed"]),
    ("0 4 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0 4 * * 0,6", ["Sat", "Sun"]),
    ("0 4 * * 7", ["Sun"]),
])
def test_the_cron_job_fires_when_cron_would(monkeypatch, schedule, days):
    from training.triggers import Trainer, build_scheduler

    monkeypatch.setenv("WRITERSROOM_TRAINING_SCHEDULE", schedule)
    scheduler = build_scheduler(load_settings(), Trainer(load_settings()))
    cron = scheduler.get_job("cron").trigger
    fired, moment = [], datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)  # a Monday noon
    while moment < datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc):
        moment = cron.get_next_fire_time(None, moment + timedelta(minutes=1))
        fired.append(moment)
    fired.pop()  # the first firing after the week
    assert sorted({f.strftime("%a") for f in fired}) == sorted(days)
    assert all((f.hour, f.minute) == (4, int(schedule.split()[0])) for f in fired)


def test_a_bad_schedule_is_refused_at_start(monkeypatch):
    from typer.testing import CliRunner

    from bot.cli.main import app

    monkeypatch.setenv("WRITERSROOM_TRAINING_SCHEDULE", "every night")
    outcome = CliRunner().invoke(app, ["trainer"])
    assert outcome.exit_code == 2 and "is not a cron expression" in outcome.output


def test_the_trainer_process_trains_once_the_threshold_is_crossed_and_stops_on_sigterm(monkeypatch):
    monkeypatch.setenv("WRITERSROOM_TRAINING_THRESHOLD", "10")
    monkeypatch.setenv("WRITERSROOM_TRAINING_POLL_S", "0.5")
    process = subprocess.Popen([sys.executable, "-m", "bot.cli.main", "trainer"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        time.sleep(2)
        assert run_rows() == []  # nothing to do yet
        import_scenes(12)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not [r for r in run_rows() if r["status"] != "running"]:
            time.sleep(0.5)
        [row] = run_rows()
        assert row["status"] in ("succeeded", "rejected") and row["notes"]
        assert registry.get_version(load_settings().adapter_dir, row["adapter_version"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()


def test_a_retrain_requested_from_chat_is_run_by_the_trainer_under_its_request_id():
    from store.db import session_scope
    from store.training_runs import request_training_run
    from training.run import _sessions
    from training.triggers import Trainer

    import_scenes(12)
    with session_scope(_sessions(load_settings())) as session:
        request_id = request_training_run(session, note="requested by ana in T1:C1").id
    result = Trainer(load_settings()).check_threshold()  # 12 approvals: under the threshold of 50

    assert result is not None and result.run_id == request_id
    [row] = run_rows()
    assert row["status"] in ("succeeded", "rejected") and "requested by ana" in row["notes"]


def _sample(name: str, **labels: str) -> float:
    from observability.metrics import REGISTRY

    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def test_runs_are_counted_by_trigger_and_outcome_for_metrics():
    from training.run import NotEnoughExamples, RunResult
    from training.triggers import Trainer

    outcomes = iter([RunResult(run_id=1, status="succeeded", trigger="t", promoted=True),
                     RunResult(run_id=2, status="rejected", trigger="t"),
                     NotEnoughExamples("3 approved examples; 20 needed")])

    def run(settings, **kwargs):
        assert _sample("writersroom_trainer_run_active") == 1  # visible while it runs
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    before = {key: _sample("writersroom_trainer_runs_total", trigger=trigger, outcome=outcome)
              for key, (trigger, outcome) in {"promoted": ("threshold", "promoted"), "kept": ("chat", "kept"),
                                              "few": ("schedule", "too_few_examples")}.items()}
    trainer = Trainer(load_settings(), run=run)
    attempted_at = time.time()
    assert trainer.attempt("threshold: 60 new approvals").promoted
    assert trainer.attempt("requested from chat", request_id=7).status == "rejected"
    assert trainer.attempt("schedule 0 4 * * *") is None
    assert _sample("writersroom_trainer_runs_total", trigger="threshold", outcome="promoted") == before["promoted"] + 1
    assert _sample("writersroom_trainer_runs_total", trigger="chat", outcome="kept") == before["kept"] + 1
    assert _sample("writersroom_trainer_runs_total", trigger="schedule",
                   outcome="too_few_examples") == before["few"] + 1
    assert _sample("writersroom_trainer_run_active") == 0
    # stamped by this run (not "within the last minute", which a slow machine could miss)
    assert _sample("writersroom_trainer_last_run_timestamp_seconds", outcome="promoted") >= attempted_at


def test_trainer_probes_follow_its_scheduler_and_store(monkeypatch):
    import httpx

    from emulators.servers import free_port
    from training.triggers import Trainer, build_scheduler, start_ops_server

    port = free_port()
    monkeypatch.setenv("WRITERSROOM_OPS_TRAINER_PORT", str(port))
    settings = load_settings()
    trainer = Trainer(settings, run=lambda *a, **k: None)
    scheduler = build_scheduler(settings, trainer)
    ops = start_ops_server(settings, trainer, scheduler)
    url = f"http://127.0.0.1:{port}"
    try:
        stopped = httpx.get(f"{url}/readyz")
        assert stopped.status_code == 503 and stopped.json()["checks"]["scheduler"]["detail"] == "the scheduler has stopped"
        scheduler.start()
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["store"]["ok"]
        assert httpx.get(f"{url}/healthz").status_code == 200
        import_scenes(3)
        trainer.check_threshold()  # below the threshold: counted, no run
        assert "writersroom_trainer_pending_approvals 3.0" in httpx.get(f"{url}/metrics").text
    finally:
        scheduler.shutdown(wait=False)
        ops.close()
    monkeypatch.setenv("WRITERSROOM_OPS_TRAINER_PORT", "0")
    assert start_ops_server(load_settings(), trainer, scheduler) is None

"""Training runs and queued requests (store/training_runs.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import session_scope, training_runs
from store.models import TrainingRun, TrainingStatus


def test_training_run_lifecycle(session_factory: sessionmaker[Session]) -> None:
    metrics = {"eval_loss": 1.25, "win_rate": 0.6, "per_task": {"dialogue": [0.5, 0.7]}}
    with session_scope(session_factory) as session:
        run = training_runs.start_training_run(
            session, base_model="smollm2-135m", dataset_hash="sha256:ab12", example_count=40
        )
        assert run.status is TrainingStatus.RUNNING and run.started_at is not None
        run_id = run.id
    with session_scope(session_factory) as session:
        training_runs.finish_training_run(
            session, run_id=run_id, status="succeeded", adapter_version="room-v4",
            metrics=metrics,
            notes="beat room-v3 on held-out scenes",
        )
    with session_scope(session_factory) as session:
        stored = session.get(TrainingRun, run_id)
        assert stored.status == "succeeded" and stored.adapter_version == "room-v4"
        assert stored.metrics == metrics
        assert stored.finished_at.tzinfo == UTC and stored.finished_at >= stored.started_at
        with pytest.raises(ValueError, match="a run finishes as one of"):
            training_runs.finish_training_run(session, run_id=run_id, status="running")
        with pytest.raises(ValueError, match="training run 999 does not exist"):
            training_runs.finish_training_run(session, run_id=999, status="failed")


def test_a_request_is_queued_claimed_then_listed(session: Session) -> None:
    assert training_runs.pending_training_request(session) is None
    first = training_runs.request_training_run(session, note="from chat")
    second = training_runs.request_training_run(session, note="again")
    assert first.status is TrainingStatus.QUEUED and first.notes == "from chat"
    assert training_runs.pending_training_request(session).id == first.id  # oldest first
    assert training_runs.latest_training_run(session) is None  # a request is not a run yet
    run = training_runs.claim_training_request(session, run_id=first.id, base_model="m", dataset_hash="h",
                                               example_count=3)
    assert (run.status, run.base_model, run.example_count) == (TrainingStatus.RUNNING, "m", 3)
    assert run.started_at is not None
    assert training_runs.pending_training_request(session).id == second.id
    assert training_runs.latest_training_run(session).id == first.id
    with pytest.raises(ValueError, match=f"training request {first.id} is not queued"):
        training_runs.claim_training_request(session, run_id=first.id, base_model="m", dataset_hash="h",
                                             example_count=3)
    assert [r.id for r in training_runs.recent_runs(session)] == [second.id, first.id]
    assert [r.id for r in training_runs.recent_runs(session, limit=1)] == [second.id]


def test_interrupt_running_runs_fails_only_running_ones(session: Session) -> None:
    running = training_runs.start_training_run(session, base_model="m", dataset_hash="h", example_count=1)
    done = training_runs.start_training_run(session, base_model="m", dataset_hash="h", example_count=1)
    training_runs.finish_training_run(session, run_id=done.id, status="succeeded", notes="fine")
    queued = training_runs.request_training_run(session, note="later")
    closed = training_runs.interrupt_running_runs(session, note="interrupted")
    assert [r.id for r in closed] == [running.id]
    assert (running.status, running.notes) == (TrainingStatus.FAILED, "interrupted")
    assert running.finished_at is not None
    assert (done.status, done.notes, queued.status) == (TrainingStatus.SUCCEEDED, "fine", TrainingStatus.QUEUED)
    assert training_runs.interrupt_running_runs(session, note="again") == []

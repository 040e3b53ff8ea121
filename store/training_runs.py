"""Training runs, and runs asked for from chat before they start.

A run's life: ``queued`` (a request from ``/room retrain``, no data yet) -> ``running``
(claimed by the trainer, or started directly) -> ``succeeded``, ``failed`` or
``rejected`` (by the evaluation gate). Only one run trains at a time: the trainer holds
the store lock for it (``store.locks``), which is what makes ``interrupt_running_runs``
safe. What the trainer's threshold counts is ``store.feedback.approvals_since``.

Like every store module: the session first, keyword-only arguments after it; functions
flush but never commit (the caller owns the transaction, see ``session_scope``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._shared import choice
from .models import TrainingRun, TrainingStatus, utcnow

FINISHED_STATUSES = frozenset(
    {TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.REJECTED}
)


def start_training_run(
    session: Session, *, base_model: str, dataset_hash: str, example_count: int
) -> TrainingRun:
    """Record a run that starts now (status ``running``)."""
    run = TrainingRun(
        status=TrainingStatus.RUNNING,
        base_model=base_model,
        dataset_hash=dataset_hash,
        example_count=int(example_count),
        metrics={},
        started_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def finish_training_run(
    session: Session,
    *,
    run_id: int,
    status: str,
    adapter_version: str | None = None,
    metrics: dict[str, Any] | None = None,
    notes: str | None = None,
) -> TrainingRun:
    """Close a run as succeeded, failed or rejected (by the evaluation gate)."""
    status_ = choice(TrainingStatus, status, "training status")
    if status_ not in FINISHED_STATUSES:
        allowed = ", ".join(sorted(s.value for s in FINISHED_STATUSES))
        raise ValueError(f"a run finishes as one of: {allowed}; got {status_.value!r}")
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise ValueError(f"training run {run_id} does not exist")
    run.status = status_
    run.finished_at = utcnow()
    if adapter_version is not None:
        run.adapter_version = adapter_version
    if metrics is not None:
        run.metrics = dict(metrics)
    if notes is not None:
        run.notes = notes
    session.flush()
    return run


def interrupt_running_runs(session: Session, *, note: str) -> list[TrainingRun]:
    """Close every run still marked running as failed. Call it only while holding the
    training lock: a run can be running only under the lock, so these died mid-way."""
    runs = list(session.scalars(select(TrainingRun).where(TrainingRun.status == TrainingStatus.RUNNING)))
    for run in runs:
        run.status = TrainingStatus.FAILED
        run.finished_at = utcnow()
        run.notes = f"{run.notes}; {note}" if run.notes else note
    session.flush()
    return runs


def latest_training_run(session: Session) -> TrainingRun | None:
    """The newest run that started (queued requests are not runs yet)."""
    return session.scalars(select(TrainingRun).where(TrainingRun.status != TrainingStatus.QUEUED)
                           .order_by(TrainingRun.id.desc()).limit(1)).first()


def claim_training_request(session: Session, *, run_id: int, base_model: str, dataset_hash: str,
                           example_count: int) -> TrainingRun:
    """Turn a queued request into the running run that serves it."""
    run = session.get(TrainingRun, run_id)
    if run is None or run.status != TrainingStatus.QUEUED:
        raise ValueError(f"training request {run_id} is not queued")
    run.status, run.started_at = TrainingStatus.RUNNING, utcnow()
    run.base_model, run.dataset_hash, run.example_count = base_model, dataset_hash, int(example_count)
    session.flush()
    return run


def recent_runs(session: Session, *, limit: int = 20) -> list[TrainingRun]:
    """The newest runs first, queued requests included."""
    return list(session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)))


def request_training_run(session: Session, *, note: str) -> TrainingRun:
    """A run asked for from chat (``/room retrain``), queued for `writersroom trainer`."""
    run = TrainingRun(status=TrainingStatus.QUEUED, base_model="", dataset_hash="", example_count=0, metrics={},
                      notes=note)
    session.add(run)
    session.flush()
    return run


def pending_training_request(session: Session) -> TrainingRun | None:
    """The oldest queued request, if any."""
    return session.scalars(select(TrainingRun).where(TrainingRun.status == TrainingStatus.QUEUED)
                           .order_by(TrainingRun.id).limit(1)).first()

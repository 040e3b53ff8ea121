"""`writersroom trainer`: run training on a cron expression and whenever enough new approvals arrive.

APScheduler drives two jobs in one process:

- **cron** (`training.schedule`, UTC): a run at the set times, e.g. nightly;
- **threshold**: every `training.poll_s` seconds, count approvals and edits recorded since
  the last run started (``store.feedback.approvals_since``); at `training.threshold`
  or more, run now.

Both call the same `attempt()`, which runs at most one training at a time in this process
(a run that is due while another is going is skipped, not queued: the next poll sees the
approvals again) and, through the store lock in training.run, across processes. Too few
examples or another process training is logged and waited out, not an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from config.settings import Settings
from observability import metrics
from training.announce import Notifier

log = logging.getLogger(__name__)


class Trainer:
    """The decision of when to train; `run` is training.run.run_training (a parameter for tests)."""

    def __init__(self, settings: Settings, *, sessions: Any = None, run: Callable[..., Any] | None = None,
                 on_result: Callable[[Any], None] | None = None, notifiers: Sequence[Notifier] = ()) -> None:
        from training.run import _sessions, run_training

        self.settings = settings
        self.sessions = sessions or _sessions(settings)
        self._run = run or run_training
        self._on_result = on_result or (lambda result: None)
        self._notifiers = list(notifiers)
        self._busy = threading.Lock()

    def new_approvals(self) -> int:
        from store.db import session_scope
        from store.feedback import approvals_since
        from store.training_runs import latest_training_run

        with session_scope(self.sessions) as session:
            last = latest_training_run(session)
            since = (last.started_at or last.created_at) if last is not None else None
            return approvals_since(session, since=since)

    def check_threshold(self) -> Any:
        """The poll job: a run asked for from chat (/room retrain), else one when enough approvals
        arrived since the last run."""
        if self._busy.locked():  # a run is going; the approvals are counted again after it
            return None
        request = self.pending_request()
        if request is not None:
            return self.attempt(request[1], request_id=request[0])
        count = self.new_approvals()
        metrics.PENDING_APPROVALS.set(count)
        if count < self.settings.training.threshold:
            log.debug("%d new approval(s); the threshold is %d", count, self.settings.training.threshold)
            return None
        return self.attempt(f"threshold: {count} new approvals")

    def pending_request(self) -> tuple[int, str] | None:
        from store.db import session_scope
        from store.training_runs import pending_training_request

        with session_scope(self.sessions) as session:
            request = pending_training_request(session)
            return (request.id, request.notes or "requested from chat") if request is not None else None

    def attempt(self, trigger: str, *, request_id: int | None = None) -> Any:
        """One run unless one is going; returns its RunResult, or None when none ran."""
        from training.lock import TrainingBusy
        from training.run import NotEnoughExamples

        if not self._busy.acquire(blocking=False):
            log.info("%s: a run is already going in this process; skipped", trigger)
            return None
        kind = trigger_kind(trigger, requested=request_id is not None)
        started = time.perf_counter()
        metrics.TRAINING_ACTIVE.set(1)
        try:
            log.info("training run starting (%s)", trigger)
            result = self._run(self.settings, trigger=trigger, sessions=self.sessions, progress=False,
                               request_id=request_id, notifiers=self._notifiers)
        except TrainingBusy as exc:
            log.info("%s: %s; skipped", trigger, exc)
            metrics.TRAINING_RUNS.labels(kind, "busy").inc()
            return None
        except NotEnoughExamples as exc:
            log.info("%s: %s", trigger, exc)
            metrics.TRAINING_RUNS.labels(kind, "too_few_examples").inc()
            return None
        finally:
            metrics.TRAINING_ACTIVE.set(0)
            self._busy.release()
        outcome = run_outcome(result)
        metrics.TRAINING_RUNS.labels(kind, outcome).inc()
        metrics.TRAINING_SECONDS.observe(time.perf_counter() - started)
        metrics.LAST_RUN_TIMESTAMP.labels(outcome).set_to_current_time()
        log.info("%s", result.summary())
        self._on_result(result)
        return result


def trigger_kind(trigger: str, *, requested: bool) -> str:
    """A metric label from a trigger's wording: chat, threshold, schedule or manual."""
    if requested:
        return "chat"
    for kind in ("threshold", "schedule"):
        if trigger.startswith(kind):
            return kind
    return "manual"


def run_outcome(result: Any) -> str:
    """promoted, kept (evaluated, not better) or failed."""
    if result.promoted:
        return "promoted"
    return "kept" if result.status == "rejected" else result.status


def build_scheduler(settings: Settings, trainer: Trainer) -> Any:
    """The two jobs on an APScheduler BackgroundScheduler (not started yet)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    t = settings.training
    # Two instances: a job that comes due while a run is going returns at once (attempt() and
    # check_threshold() see the run), instead of APScheduler warning about it every poll.
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 2,
                                                                  "misfire_grace_time": 3600})
    scheduler.add_job(trainer.attempt, cron_trigger(t.schedule), args=[f"schedule {t.schedule}"], id="cron")
    # The first check at once: approvals that piled up while the trainer was down count.
    scheduler.add_job(trainer.check_threshold, "interval", seconds=t.poll_s, id="threshold", next_run_time=_now())
    return scheduler


def run_forever(settings: Settings, *, stop: threading.Event | None = None,
                notifiers: Sequence[Notifier] = ()) -> None:
    """Block, running the cron and threshold jobs until `stop` is set (the CLI sets it on SIGINT/SIGTERM);
    each run's outcome is posted through ``notifiers``."""
    stop = stop or threading.Event()
    trainer = Trainer(settings, notifiers=notifiers)
    scheduler = build_scheduler(settings, trainer)
    scheduler.start()
    ops = start_ops_server(settings, trainer, scheduler)
    t = settings.training
    log.info("trainer running: schedule %r (UTC), threshold %d new approvals, checked every %.0f s",
             t.schedule, t.threshold, t.poll_s)
    try:
        stop.wait()
    finally:
        log.info("trainer stopping (a run in progress finishes first; SIGKILL is safe too)")
        scheduler.shutdown(wait=True)
        if ops is not None:
            ops.close()


def start_ops_server(settings: Settings, trainer: Trainer, scheduler: Any):
    """/healthz (the scheduler runs), /readyz (and the store answers), /metrics on ops.trainer_port; None when 0."""
    from observability.ops_server import OpsServer
    from observability.readiness import expect, store_check

    if not settings.ops.trainer_port:
        return None

    def scheduling() -> str:
        return expect(scheduler.running, "the scheduler has stopped", "scheduler running")

    return OpsServer(host=settings.ops.host, port=settings.ops.trainer_port, role="trainer",
                     live_checks={"scheduler": scheduling},
                     ready_checks={"scheduler": scheduling, "store": lambda: store_check(trainer.sessions)}).start()


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def cron_trigger(expression: str) -> Any:
    """A CronTrigger (UTC) for a standard 5-field cron expression.

    APScheduler 3 numbers weekdays from Monday = 0, cron from Sunday = 0 (7 too), so
    `0 4 * * 1` would fire on Tuesdays: numeric weekdays are turned into names first,
    which both read the same way."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    fields[4] = ",".join(_weekday_names(part) for part in fields[4].split(","))
    return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")


def _weekday_names(part: str) -> str:
    span, _, step = part.partition("/")
    bounds = span.split("-")
    if not all(b.isdigit() and int(b) <= 7 for b in bounds):
        return part  # "*", names, or something APScheduler will refuse with its own message
    days, suffix = [int(b) for b in bounds], (f"/{step}" if step else "")
    if len(days) == 1:
        return _WEEKDAYS[days[0]] + suffix
    first, last = days
    if first == 0 and last > 0 and not step:  # a range from Sunday wraps APScheduler's Monday-first week
        return "sun," + (f"mon-{_WEEKDAYS[last]}" if last > 1 else "mon")
    return f"{_WEEKDAYS[first]}-{_WEEKDAYS[last]}{suffix}"


def check_schedule(expression: str) -> None:
    """Raise ValueError naming the problem when `expression` is not a 5-field cron expression."""
    cron_trigger(expression)

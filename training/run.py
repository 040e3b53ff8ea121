"""One training run from start to finish: the approved scenes in, an adapter version out.

    result = run_training(settings, trigger="manual")       # `writersroom train --now`
    print(result.as_json())

Order, and why it is safe to SIGKILL at any point:

1. take the store's training lock (one run at a time across processes and hosts), and
   close runs a dead process left marked running;
2. build the dataset (consent rule, dedupe, split by content hash); too few examples:
   NotEnoughExamples, with a message that says what to do, and no run;
3. record the run (status running) and train in a work directory keyed by the data and
   the settings, so a run killed mid-way is resumed from its last complete checkpoint;
4. evaluate the candidate against what serves (training.gate) and write the report;
5. publish the candidate as a new immutable registry version (atomic rename) whatever
   the verdict: a worse candidate is kept, not promoted, and the report says why;
6. promote it by the atomic pointer swap when the gate passed and the lock was never lost
   (the backend's watcher then serves it under its own name, no restart);
7. record the outcome and announce it in chat.

A kill before 5 leaves the registry as it was; between 5 and 6 an extra unpromoted
version; between 6 and 7 a promoted version whose run row still says running, which
the next run closes as interrupted. The serving pointer is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from training.announce import Notifier
from training.base import FINAL_EVAL, base_model, training_settings_json

log = logging.getLogger(__name__)

Phase = Callable[[str], None]


class NotEnoughExamples(Exception):
    """Too few approved examples to train on; the message says how many and what to do."""


@dataclass
class RunResult:
    run_id: int
    status: str  # succeeded (promoted) | rejected (kept, not promoted) | failed
    trigger: str
    examples: int = 0
    train_examples: int = 0
    validation_examples: int = 0
    version: str | None = None
    promoted: bool = False
    room: str | None = None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    report_png: Path | None = None
    seconds: float = 0.0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "trigger": self.trigger, "examples": self.examples,
                "train_examples": self.train_examples, "validation_examples": self.validation_examples,
                "version": self.version, "promoted": self.promoted, "room": self.room, "why": self.reasons,
                "metrics": self.metrics, "report_png": str(self.report_png) if self.report_png else None,
                "seconds": round(self.seconds, 1), "error": self.error}

    def summary(self) -> str:
        """A few lines for a terminal or a chat message."""
        head = {"succeeded": f"run {self.run_id}: adapter {self.version} promoted",
                "rejected": f"run {self.run_id}: adapter {self.version} kept, not promoted",
                "failed": f"run {self.run_id} failed: {self.error}"}[self.status]
        where = f" for room {self.room}" if self.room else ""
        lines = [head + where, f"{self.examples} approved scenes ({self.train_examples} train, "
                               f"{self.validation_examples} validation), {self.seconds / 60:.1f} min"]
        lines += [f"- {reason}" for reason in self.reasons]
        if self.report_png:
            lines.append(f"report: {self.report_png}")
        return "\n".join(lines)


def _sessions(settings: Settings):
    from store.db import make_engine, make_session_factory, upgrade

    upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def work_dir_for(settings: Settings, *, data_hash: str, base_name: str, room: str | None) -> Path:
    """Same data, settings and base model: the same directory, so a killed run resumes."""
    key = json.dumps([data_hash, base_name, room, training_settings_json(settings)], sort_keys=True)
    return settings.home / "training" / "work" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _print_phase(text: str) -> None:
    log.info("training: %s", text)


def run_training(settings: Settings, *, trigger: str = "manual", room: str | None = None,
                 progress: bool = True, phase: Phase = _print_phase, notifiers: Sequence[Notifier] = (),
                 sessions: Any = None, request_id: int | None = None) -> RunResult | None:
    """Run once; raises TrainingBusy (another process trains) or NotEnoughExamples (no run).

    Under a multi-process launcher only the main process returns a RunResult; the others
    train beside it (training.distributed) and return None. ``request_id``: a queued
    request from chat (/room retrain) that this run serves; its row becomes the run's."""
    from training.distributed import Crew, follow
    from training.lock import default_holder, training_lock
    from training.ranks import is_main_process

    if not is_main_process():
        follow(settings, progress=False)
        return None
    crew = Crew()
    sessions = sessions or _sessions(settings)
    try:
        with training_lock(sessions, holder=default_holder(), stale_after_s=settings.training.lock_stale_s) as held:
            _close_interrupted(sessions, phase)
            return _run_locked(settings, sessions, held, crew, trigger=trigger, room=room, progress=progress,
                               phase=phase, notifiers=notifiers, request_id=request_id)
    finally:
        crew.release("the main process did not train")  # no-op once the examples were handed over


def _close_interrupted(sessions: Any, phase: Phase) -> None:
    from store.db import session_scope
    from store.training_runs import interrupt_running_runs

    with session_scope(sessions) as session:
        closed = interrupt_running_runs(session, note="interrupted: the process ended before the run finished "
                                                      "(its adapter, if published, is in `writersroom adapters list`)")
        for run in closed:
            phase(f"run {run.id} was interrupted earlier; marked failed")


def _run_locked(settings: Settings, sessions: Any, held: Any, crew: Any, *, trigger: str, room: str | None, progress: bool,
                phase: Phase, notifiers: Sequence[Notifier], request_id: int | None) -> RunResult:
    from store.db import session_scope
    from store.training_runs import (
        claim_training_request,
        finish_training_run,
        start_training_run,
    )
    from training.dataset import build_dataset
    from training.exemplars import catalog_exemplars

    phase("building the dataset")
    data = build_dataset(sessions, validation_share=settings.training.validation_share, room=room,
                         exemplar_text=catalog_exemplars(settings), exemplar_chars=settings.generation.exemplar_chars)
    needed = settings.training.min_examples
    if data.size < needed:
        where = f" in room {room}" if room else ""
        problem = NotEnoughExamples(
            f"{data.size} approved scene(s){where}; training needs at least {needed} (training.min_examples). "
            "Approve more scenes in chat, or import a room's past pages with `writersroom feedback import FILE`.")
        if request_id is not None:
            with session_scope(sessions) as session:
                finish_training_run(session, run_id=request_id, status="failed", notes=str(problem))
        raise problem
    model_dir, base_name = base_model(settings)
    with session_scope(sessions) as session:
        if request_id is not None:
            run = claim_training_request(session, run_id=request_id, base_model=base_name,
                                         dataset_hash=data.data_hash, example_count=data.size)
        else:
            run = start_training_run(session, base_model=base_name, dataset_hash=data.data_hash,
                                     example_count=data.size)
        run.notes = f"trigger: {trigger}" + (f"; room {room}" if room else "")
        run_id = run.id
    result = RunResult(run_id=run_id, status="failed", trigger=trigger, examples=data.size,
                       train_examples=len(data.train), validation_examples=len(data.validation), room=room)
    started = time.perf_counter()
    try:
        _train_evaluate_publish(settings, data, result, held, crew, model_dir=model_dir, base_name=base_name,
                                progress=progress, phase=phase)
    except Exception as exc:
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("training run %s failed", run_id)
    result.seconds = time.perf_counter() - started
    phase("recording the outcome")
    _record(sessions, result)
    if notifiers:
        _announce(settings, notifiers, result)
    phase(f"done: {result.status}")
    return result


def _train_evaluate_publish(settings: Settings, data: Any, result: RunResult, held: Any, crew: Any, *, model_dir: Path,
                            base_name: str, progress: bool, phase: Phase) -> None:
    from registry import versions as registry
    from training.trainer import train_adapter

    t = settings.training
    from training.house import house_start

    house = house_start(settings, base_name=base_name)
    # Started from another adapter, the checkpoints are another run's: keyed apart.
    work_dir = work_dir_for(settings, data_hash=data.data_hash + (f"+{house.version}" if house else ""),
                            base_name=base_name, room=result.room)
    phase(f"training on {len(data.train)} examples in {work_dir}"
          + (f", starting from the house adapter {house.version}" if house else ""))
    train_chats, validation_chats = [e.messages for e in data.train], [e.messages for e in data.validation]
    crew.send(train_chats, validation_chats, str(work_dir))
    outcome = train_adapter(train_chats, validation_chats,
                            base_model_dir=model_dir, work_dir=work_dir, settings=t, device=settings.model.device,
                            progress=progress, on_step=_StepReport(phase), final_eval=FINAL_EVAL,
                            start_from=house.path if house else None)
    phase("evaluating the candidate against what serves")
    candidate, serving, verdict, serving_label = _evaluate(settings, data, outcome, model_dir=model_dir,
                                                           base_name=base_name, work_dir=work_dir, room=result.room)
    version = f"r{result.run_id:04d}-{data.data_hash[:8]}"
    result.version = version
    result.reasons = list(verdict.reasons)
    run_dir = settings.home / "training" / "runs" / f"run-{result.run_id:04d}"
    from training.report import write_report

    eval_losses = list(outcome.eval_losses)
    if candidate.validation_ppl and (not eval_losses or eval_losses[-1][0] < outcome.steps):
        # The gate's validation perplexity is the finished adapter's validation loss (ln ppl).
        eval_losses.append((outcome.steps, math.log(candidate.validation_ppl)))
    _, png = write_report(run_dir, title=f"training run {result.run_id} ({version})", losses=outcome.losses,
                          eval_losses=eval_losses, candidate=candidate, serving=serving, verdict=verdict,
                          extra={"training": outcome.as_json(), "run_id": result.run_id, "version": version})
    result.report_png = png
    result.metrics = {"candidate": candidate.as_json(), "serving": serving.as_json(), "verdict": verdict.as_json(),
                      "training": {k: v for k, v in outcome.as_json().items() if k not in ("losses", "eval_losses")},
                      "report_png": str(png)}
    phase(f"publishing {version} to the registry")
    registry.write_adapter_version(
        settings.adapter_dir, version, source=outcome.adapter_dir, base_model=base_name,
        training={**training_settings_json(settings), **({"started_from": house.version} if house else {})},
        data_hash=data.data_hash, example_count=data.size,
        metrics={"candidate": candidate.as_json(), "serving": serving.as_json(), "promote": verdict.promote,
                 "reasons": verdict.reasons, "run_id": result.run_id, "report_png": str(png)},
        room=result.room)
    promote = verdict.promote
    if promote and held.lost.is_set():
        promote = False
        result.reasons.append("the training lock was taken over while this run was paused; not promoted")
    if promote:
        phase(f"promoting {version}" + (f" for room {result.room}" if result.room else ""))
        registry.promote(settings.adapter_dir, version, room=result.room)
    result.promoted = promote
    result.status = "succeeded" if promote else "rejected"
    shutil.rmtree(work_dir, ignore_errors=True)  # published: the checkpoints are no longer needed


class _StepReport:
    """Progress in the phase log every tenth of the run (bars are for terminals; `writersroom
    trainer` writes a log), with the time left at the pace so far."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase
        self.started = time.monotonic()
        self.next_share = 0.1

    def __call__(self, step: int, total: int) -> None:
        if total <= 0 or step / total + 1e-9 < self.next_share:
            return
        elapsed = time.monotonic() - self.started
        left = elapsed / step * (total - step) if step else 0.0
        self.phase(f"step {step}/{total}, {elapsed / 60:.1f} min so far, about {left / 60:.1f} min left")
        while self.next_share <= step / total + 1e-9:
            self.next_share += 0.1


def _evaluate(settings: Settings, data: Any, outcome: Any, *, model_dir: Path, base_name: str, work_dir: Path,
              room: str | None) -> tuple[Any, Any, Any, str]:
    from registry import versions as registry
    from training.gate import run_gate

    serving_version = registry.serving(settings.adapter_dir).version_for(room)
    serving_dir = None
    if serving_version:
        try:
            serving_dir = registry.get_version(settings.adapter_dir, serving_version).path
        except registry.RegistryError:
            log.warning("the serving version %s is not in the registry; comparing against the base model",
                        serving_version)
            serving_version = None
    label = serving_version or "base model"
    screenplay_chats = heldout_screenplay_chats(settings.training.eval_screenplay_scenes,
                                                exemplar_chars=settings.generation.exemplar_chars)
    candidate, serving, verdict = run_gate(
        settings, model_dir=model_dir, base_name=base_name, candidate_dir=outcome.adapter_dir, serving_dir=serving_dir,
        serving_label=label, validation_chats=[e.messages for e in data.validation],
        screenplay_chats=screenplay_chats, work_dir=work_dir)
    return candidate, serving, verdict, label


def heldout_screenplay_chats(limit: int, *, exemplar_chars: int) -> list[list[dict[str, str]]]:
    """The first ``limit`` held-out corpus scenes as chats asked the way training asks (the gate's
    screenplay perplexity set)."""
    if not limit:
        return []
    from screenplay.prompting import build_messages, parse_dialogue_request
    from training.corpus_scenes import heldout_scenes

    chats = []
    for scene in heldout_scenes(limit):
        messages = build_messages(parse_dialogue_request(scene.prompt), [], exemplar_chars=exemplar_chars,
                                  worked_example=False)
        chats.append([*messages, {"role": "assistant", "content": scene.text}])
    return chats


def _record(sessions: Any, result: RunResult) -> None:
    from store.db import session_scope
    from store.training_runs import finish_training_run

    # The trigger leads so `train`/`/room status` readers see why the run happened as well as its outcome.
    outcome = "; ".join(result.reasons) if result.status != "failed" else result.error
    notes = "; ".join(part for part in (f"trigger: {result.trigger}", outcome) if part)
    with session_scope(sessions) as session:
        finish_training_run(session, run_id=result.run_id, status=result.status, adapter_version=result.version,
                            metrics={**result.metrics, "trigger": result.trigger, "room": result.room,
                                     "seconds": round(result.seconds, 1), "promoted": result.promoted},
                            notes=notes)


def _announce(settings: Settings, notifiers: Sequence[Notifier], result: RunResult) -> None:
    from training.announce import RunAnnouncement, announce

    kind = {"succeeded": "promoted", "rejected": "kept", "failed": "failed"}[result.status]
    announce(notifiers, RunAnnouncement(kind=kind, summary=result.summary(), run_id=result.run_id,
                                        version=result.version, room=result.room, report_png=result.report_png),
             admins=settings.room.admins)

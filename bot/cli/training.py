"""`writersroom train --now` and `writersroom trainer`: retraining from the command line.

    writersroom train --now [--room ROOM] [--json] [--quiet]
    writersroom train --house [--no-promote] [--json] [--quiet]
    writersroom trainer

`train --now` runs once and prints the run: id, examples, metrics, promoted or not and
why (JSON with --json; the progress goes to standard error either way). Exit codes:
0 the run finished (promoted or kept), 1 it failed, 3 too few approved examples (no
run), 4 another process is training. `train --house` trains the house adapter on the
bundled public-domain corpus (training.house): published whatever its scores, promoted for
every room without its own version only when it beats the base model. `trainer` stays up
and trains on `training.schedule` and whenever `training.threshold` new approvals have arrived.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from typing import Optional

import typer

from bot.cli.common import fail, settings_or_exit

EXIT_FAILED, EXIT_TOO_FEW, EXIT_BUSY = 1, 3, 4


def train_command(
    now: bool = typer.Option(False, "--now", help="Run one training now (the scheduler is `writersroom trainer`)."),
    room: Optional[str] = typer.Option(None, "--room", help="Train on one room's scenes only, for that room "
                                                            "(its platform id, e.g. T1:C42)."),
    house: bool = typer.Option(False, "--house", help="Train the house adapter on the bundled public-domain corpus "
                                                      "instead (every room's starting point when it pays)."),
    promote: bool = typer.Option(True, "--promote/--no-promote",
                                 help="With --house: promote it when it beats the base model."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress on standard error."),
) -> None:
    """Fine-tune a LoRA adapter on the approved scenes, evaluate it, and promote it if it is better."""
    from bot.cli.announcers import chat_notifiers
    from training.lock import TrainingBusy
    from training.run import NotEnoughExamples, run_training

    if not (now or house):
        fail("say --now to train once; `writersroom trainer` trains on the schedule and the threshold", code=2)
    settings = settings_or_exit()
    _log_to_stderr(settings, quiet=quiet)

    def phase(text: str) -> None:
        if not quiet:
            typer.echo(f"training: {text}", err=True)

    if house:
        _house(settings, promote=promote, as_json=as_json, quiet=quiet, phase=phase)
        return

    try:
        # Standard output is the result's alone (JSON a script can read); the trainer's and
        # its libraries' progress goes to standard error.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_training(settings, trigger="manual (train --now)", room=room, progress=not quiet,
                                  phase=phase, notifiers=chat_notifiers(settings))
    except NotEnoughExamples as exc:
        fail(str(exc), code=EXIT_TOO_FEW)
    except TrainingBusy as exc:
        fail(f"{exc}; try again when it has finished", code=EXIT_BUSY)
    if result is None:  # a helper process of a multi-process run: the main process reports
        return
    typer.echo(json.dumps(result.as_json(), indent=2) if as_json else result.summary())
    if result.status == "failed":
        raise typer.Exit(EXIT_FAILED)


def _house(settings, *, promote: bool, as_json: bool, quiet: bool, phase) -> None:
    from training.house import build_house_adapter

    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = build_house_adapter(settings, promote=promote, progress=not quiet, phase=phase)
    except ValueError as exc:
        fail(str(exc), code=EXIT_FAILED)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    verdict = "promoted: rooms without their own version now start from it" if result.promoted else "not promoted"
    typer.echo(f"{result.version}: {result.examples} corpus scenes ({result.train_examples} trained on), {verdict}")
    for reason in result.reasons:
        typer.echo(f"  {reason}")


def trainer_command() -> None:
    """Stay up and train on `training.schedule` (UTC) and at `training.threshold` new approvals."""
    from bot.cli.announcers import chat_notifiers
    from training.triggers import check_schedule, run_forever

    settings = settings_or_exit()
    try:
        check_schedule(settings.training.schedule)
    except ValueError as exc:
        fail(f"training.schedule {settings.training.schedule!r} is not a cron expression: {exc}", code=2)
    _log_to_stderr(settings, quiet=False)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run_forever(settings, stop=stop, notifiers=chat_notifiers(settings))


def _log_to_stderr(settings, *, quiet: bool) -> None:
    from observability.logs import configure_logging

    configure_logging("WARNING" if quiet else settings.general.log_level, settings.general.log_format)

"""`writersroom feedback ...`: approved scenes in and out of the store, as JSONL.

    writersroom feedback import FILE.jsonl [--room ROOM] [--json] [--quiet]
    writersroom feedback export [--out FILE] [--room ROOM] [--include-rejected]

The format is documented in docs/feedback-format.md. Import checks every line first,
stores the good ones and reports each bad one as `line N: reason`; it exits 1 when any
line was bad (the good ones are stored all the same, and importing the fixed file again
adds only what is new). Export writes what training would use now: the consent rule
applied, edits in place of generated text, duplicates once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from bot.cli.common import fail
from bot.cli.common import settings_or_exit as _settings
from config.settings import Settings

feedback_app = typer.Typer(help="Import and export approved scenes (JSONL) for training.", no_args_is_help=True)

ROOM_HELP = "A room's platform id (e.g. T1:C42, local:terminal), as `adapters promote --room` takes it."


def _sessions(settings: Settings, *, read_only: bool = False):
    """The store, migrated to the newest schema first (as `writersroom start` does)."""
    from store.db import make_engine, make_session_factory, upgrade

    upgrade(settings.database_url)
    # A long read must not hold SQLite's write lock (see store/db.py).
    return make_session_factory(make_engine(settings.database_url, sqlite_immediate=not read_only))


@feedback_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="A JSONL file: one {\"prompt\": ..., \"text\": ...} per line."),
    room: Optional[str] = typer.Option(None, "--room", help=f"Put every line in this room. {ROOM_HELP}"),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Store approved scenes from a file, as if the room had approved them in chat."""
    from training.feedback_format import read_feedback
    from training.feedback_import import import_lines

    if not file.is_file():
        fail(f"no such file: {file}", code=2)
    settings = _settings()
    good, bad = read_feedback(file, max_prompt_chars=settings.generation.max_prompt_chars)
    result = import_lines(_sessions(settings), good, source=file.name, room=room, progress=not (quiet or as_json))
    if as_json:
        typer.echo(json.dumps({"file": str(file), "lines": len(good) + len(bad), "imported": result.imported,
                               "already_there": result.already, "rooms": result.rooms,
                               "bad": [{"line": b.line, "reason": b.reason} for b in bad]}, indent=2))
    else:
        already = f" ({result.already} already there)" if result.already else ""
        typer.echo(f"imported {result.imported} of {len(good) + len(bad)} lines from {file}{already}")
        for bad_line in bad:
            typer.echo(str(bad_line), err=True)
    if bad:
        if not as_json:
            typer.echo(f"writersroom: {len(bad)} bad line(s) not imported; fix them and import the file again",
                       err=True)
        raise typer.Exit(1)


@feedback_app.command("export")
def export_command(
    out: Optional[Path] = typer.Option(None, "--out", help="Write here (default: standard output)."),
    room: Optional[str] = typer.Option(None, "--room", help=f"Only this room's scenes. {ROOM_HELP}"),
    include_rejected: bool = typer.Option(False, "--include-rejected",
                                          help="Add rejected and superseded outputs, labelled, for preference data."),
) -> None:
    """Write the approved scenes training would use now, one JSON object per line."""
    from training.dataset import build_dataset, write_jsonl

    settings = _settings()
    data = build_dataset(_sessions(settings, read_only=True), validation_share=settings.training.validation_share,
                         room=room)
    items: list = [*data.examples, *(data.rejected if include_rejected else [])]
    count = write_jsonl(out if out is not None else sys.stdout, items)
    left_out = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(data.excluded.items()) if n)
    rejected = f" and {len(data.rejected)} rejected/superseded" if include_rejected else ""
    typer.echo(f"exported {data.size} approved scenes{rejected} ({count} lines) to {out or 'standard output'}"
               + (f"; left out: {left_out}" if left_out else ""), err=True)

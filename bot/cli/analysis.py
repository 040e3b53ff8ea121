"""`writersroom style` and `writersroom recommend`: analysis commands of the CLI.

    writersroom style FILE [--json]                       # cast, pages, dialogue/action, INT/EXT, day/night
    writersroom recommend --room ROOM [--k 5] [--json]    # unseen scripts close to what ROOM approved
    writersroom recommend --room T1:C1 --platform slack   # ROOM: external id, room name or "platform/external_id"

Registered on the main app by bot/cli/main.py (``app.command("style")(style_command)``).
The main module is imported inside the functions, when it is fully loaded, to reuse
its settings loading (the global --index option, one clear message for a bad value).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from bot.cli.common import fail, settings


def style_command(file: Path = typer.Argument(..., help="A script: Fountain, FDX, PDF, TEI XML or plain-text script."),
                  as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Style report of one script: scenes, pages, cast lines, dialogue/action, INT/EXT and day/night."""
    from retrieval.parse import ParseError
    from retrieval.style import analyze_file

    if not file.is_file():
        fail(f"no such file: {file}")
    try:
        report = analyze_file(file)
    except ParseError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        typer.echo(report.as_text(cast_limit=25))


ROOM_OPTION = typer.Option(..., "--room", help="The room: external id (T1:C1), name, or platform/external_id.")
PLATFORM_OPTION = typer.Option(None, "--platform", help="Only rooms of this platform (local, slack, discord).")
INDEX_OPTION = typer.Option(None, "--index", help="Directory of the FAISS index and its metadata.")


def recommend_command(room: str = ROOM_OPTION,
                      k: int = typer.Option(5, "--k", min=1, max=50, help="How many scripts."),
                      platform: Optional[str] = PLATFORM_OPTION,
                      as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                      index: Optional[Path] = INDEX_OPTION) -> None:
    """Scripts a room has not drawn on yet, closest to the library scenes its approved generations cited."""
    from bot.cli.runtime import make_searcher, open_store
    from bot.core.recommend import (
        RoomHistory,
        compute,
        reply_for,
        room_history,
    )
    from store import rooms
    from store.db import session_scope
    from store.models import Platform

    if platform is not None and platform not in {p.value for p in Platform}:
        fail(f"unknown platform {platform!r}: one of {', '.join(p.value for p in Platform)}")
    loaded = settings(index)
    with session_scope(open_store(loaded)) as session:
        matches = rooms.rooms_named(session, name=room, platform=platform)
        if len(matches) > 1:
            names = ", ".join(f"{r.platform.value}/{r.external_id}" for r in matches)
            fail(f"{room!r} names several rooms ({names}); pass one as platform/external_id")
        history = room_history(session, room=matches[0]) if matches else RoomHistory()
    result = compute(make_searcher(loaded), history, k=k) if history.liked else None
    if as_json:
        empty = {"recommendations": [], "liked_scenes": [], "liked_missing": []}
        payload = result.as_json() if result is not None else empty
        payload.update(room=room, found=bool(matches), approved_generations=history.approved_generations)
        if result is None or not result.items:
            payload["message"] = reply_for(history, result).text
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    if not matches:
        typer.echo(f"No room {room!r} in the store yet.", err=True)
    typer.echo(reply_for(history, result).text)



"""`writersroom adapters ...`: the adapter registry (HOME/adapters) from the command line.

    writersroom adapters list [--json] [--room ROOM]
    writersroom adapters promote VERSION [--room ROOM]
    writersroom adapters rollback [--room ROOM] [--json]
    writersroom adapters vllm-sync [--url URL] [--adapter-root PATH] [--watch SECONDS] [--max-lora-rank N] [--json]

A room is its platform id (e.g. T1:C42), the name the serving pointer uses. Without
--room, promote and rollback change the default: what every room without a version of
its own is served. The backend picks a change up within backend.adapter_poll_s.
Refusals (unknown version, nothing to roll back, a room's adapter promoted elsewhere)
exit 2 with one line. registry.versions is standard library only: no torch is loaded.

vllm-sync is for a vLLM server instead of our backend: it loads every registry version
into vLLM as a LoRA under its version name and unloads the ones it loaded that left the
registry (see backend/vllm_sync.py). Run once, it exits 0 when vLLM matches the registry, 1
with one line per problem (vLLM unreachable, an adapter refused); --watch repeats it
every SECONDS, printing only what changed, until interrupted.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from bot.cli.common import fail, settings_or_exit

adapters_app = typer.Typer(help="List, promote and roll back LoRA adapter versions.", no_args_is_help=True)

ROOM_OPTION_HELP = "A room's platform id (e.g. T1:C42); without it, the default for every room."
BASE = "the base model"


def _registry() -> Path:
    return Path(settings_or_exit().adapter_dir)


def _where(room: str | None) -> str:
    return f"room {room}" if room is not None else "the default (every room without its own version)"


@adapters_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print a JSON list, oldest first."),
                 room: Optional[str] = typer.Option(None, "--room", help="Only versions this room may be served.")
                 ) -> None:
    """The versions in the registry and which of them are being served."""
    from registry.versions import RegistryError, list_versions, serving

    registry = _registry()
    try:
        pointer = serving(registry)
    except RegistryError as exc:
        fail(str(exc), code=2)
    versions = [v for v in list_versions(registry) if room is None or v.manifest.room in (None, room)]
    rows = [_row(v, pointer, room) for v in versions]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"No adapter versions{f' for room {room}' if room else ''} in {registry}: "
                   f"{'that room is' if room else 'every room is'} served {BASE}. `writersroom train` adds one.")
        return
    typer.echo(_pointer_summary(pointer, room))
    for row in rows:
        typer.echo("")
        typer.echo(_describe(row))


def _row(version: Any, pointer: Any, room: str | None) -> dict[str, Any]:
    manifest = version.manifest
    row = {
        "version": version.version,
        "directory": str(version.path),
        "base_model": manifest.base_model,
        "created_at": manifest.created_at,
        "example_count": manifest.example_count,
        "data_hash": manifest.data_hash,
        "metrics": manifest.metrics,
        "trained_on_room": manifest.room,
        "serving": {"default": pointer.default == version.version,
                    "rooms": sorted(r for r, v in pointer.rooms.items() if v == version.version)},
    }
    if room is not None:
        row["serving_room"] = pointer.version_for(room) == version.version
    return row


def _pointer_summary(pointer: Any, room: str | None) -> str:
    if room is not None:
        return f"Room {room} is served {pointer.version_for(room) or BASE}."
    lines = [f"Default: {pointer.default or BASE}."]
    lines += [f"Room {r}: {v}." for r, v in sorted(pointer.rooms.items())]
    return "\n".join(lines)


def _describe(row: dict[str, Any]) -> str:
    serving = (["default"] if row["serving"]["default"] else []) + [f"room {r}" for r in row["serving"]["rooms"]]
    head = row["version"] + (f"  (serving: {', '.join(serving)})" if serving else "")
    details = [("directory", row["directory"]), ("base model", row["base_model"]), ("created", row["created_at"]),
               ("examples", f"{row['example_count']}" + (f" (data {row['data_hash'][:12]})" if row["data_hash"] else "")),
               ("metrics", _metrics(row["metrics"]))]
    if row["trained_on_room"]:
        details.append(("trained on", f"room {row['trained_on_room']} only"))
    return "\n".join([head, *(f"    {label + ':':<12}{value}" for label, value in details)])


def _metrics(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "none recorded"
    shown = [f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={json.dumps(value)}"
             for name, value in sorted(metrics.items())]
    return ", ".join(shown)


@adapters_app.command("promote")
def promote_command(version: str = typer.Argument(..., help="The version to serve (see `adapters list`)."),
                    room: Optional[str] = typer.Option(None, "--room", help=ROOM_OPTION_HELP)) -> None:
    """Serve VERSION by default, or to one room; `rollback` undoes it."""
    from registry.versions import RegistryError, promote, serving

    registry = _registry()
    try:
        current = serving(registry)
        own = current.rooms.get(room) if room is not None else current.default
        promote(registry, version, room=room)
    except RegistryError as exc:
        fail(str(exc), code=2)
    if own == version:
        typer.echo(f"{_where(room)} is already served {version}; nothing changed")
    else:
        typer.echo(f"{_where(room)} is now served {version} (was {current.version_for(room) or BASE})")


@adapters_app.command("rollback")
def rollback_command(room: Optional[str] = typer.Option(None, "--room", help=ROOM_OPTION_HELP),
                     as_json: bool = typer.Option(False, "--json", help="Print JSON: room, serving, was.")) -> None:
    """Undo the latest promotion of the default (or of one room); repeat to go further back."""
    from registry.versions import RegistryError, rollback, serving

    registry = _registry()
    try:
        was = serving(registry).version_for(room)
        now = rollback(registry, room=room).version_for(room)
    except RegistryError as exc:
        fail(str(exc), code=2)
    if as_json:
        typer.echo(json.dumps({"room": room, "serving": now, "was": was}))
    else:
        typer.echo(f"{_where(room)} rolled back to {now or BASE} (was {was or BASE})")


@adapters_app.command("vllm-sync")
def vllm_sync_command(
    url: Optional[str] = typer.Option(None, "--url", help="vLLM's OpenAI base URL (.../v1); default: the "
                                      "backend_url setting."),
    adapter_root: Optional[str] = typer.Option(None, "--adapter-root", help="The registry directory as vLLM's "
                                               "container sees it; default: this machine's registry path."),
    watch_s: Optional[float] = typer.Option(None, "--watch", min=0.1, metavar="SECONDS",
                                            help="Sync again every SECONDS until interrupted."),
    max_lora_rank: Optional[int] = typer.Option(None, "--max-lora-rank", min=1, help="vLLM's --max-lora-rank: "
                                                "versions of a higher rank are reported, not loaded."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per round."),
) -> None:
    """Load the registry's versions into a vLLM server as LoRAs; unload the ones removed."""
    from backend.vllm_sync import VllmClient, sync_once, watch

    settings = settings_or_exit()
    client = VllmClient(url or settings.backend_url, api_key=settings.backend_api_key)
    registry = Path(settings.adapter_dir)
    try:
        if watch_s is None:
            report = sync_once(client, registry, adapter_root=adapter_root, max_lora_rank=max_lora_rank)
            _say_round(report, as_json=as_json, stamped=False)
            if not report.ok:
                raise typer.Exit(1)
            return
        try:
            watch(client, registry, interval_s=watch_s, adapter_root=adapter_root, max_lora_rank=max_lora_rank,
                  emit=lambda report: _say_round(report, as_json=as_json, stamped=True))
        except KeyboardInterrupt:  # the way a watcher is stopped
            pass
    finally:
        client.close()


def _say_round(report: Any, *, as_json: bool, stamped: bool) -> None:
    """One round: JSON on one line (JSON lines under --watch), or changes on stdout and
    problems on stderr, time-stamped under --watch where rounds run for days."""
    if as_json:
        typer.echo(json.dumps(report.as_json()))
        return
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} " if stamped else ""
    for line in report.lines():
        typer.echo(stamp + line)
    for problem in report.problems:
        typer.echo(f"{stamp}writersroom: {problem}", err=True)

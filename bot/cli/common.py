"""What every `writersroom` sub-command does the same way: fail with one line, load settings.

Exit codes: 2 for a bad setting or a refused request (the message says which), other
codes as each command documents.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, Optional

import typer

from config.settings import SERVICE_SECTIONS, Settings, SettingsError, load_settings
from observability.logs import configure_logging


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"writersroom: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the setting's own message."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), code=2)


class _State:
    index: Optional[Path] = None  # the global --index option, for every sub-command


state = _State()


def settings(index: Optional[Path] = None, *, service: str | None = None) -> Settings:
    """Effective settings (with --index applied) and logging configured, or exit 2 naming the bad value.

    ``service``: load only that service's sections (config.settings.SERVICE_SECTIONS)."""
    state.index = index or state.index
    overrides = {"general": {"index_dir": state.index}} if state.index else {}
    try:
        loaded = load_settings(sections=SERVICE_SECTIONS[service] if service else None, **overrides)
    except SettingsError as exc:
        fail(str(exc), code=2)
    configure_logging(loaded.general.log_level, loaded.general.log_format)
    return loaded

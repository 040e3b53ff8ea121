"""What every `writersroom` sub-command does the same way: fail with one line, load settings.

Exit codes: 2 for a bad setting or a refused request (the message says which), other
codes as each command documents.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from bot.settings import Settings, SettingsError, load_settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"writersroom: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the setting's own message."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), code=2)

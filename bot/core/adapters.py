"""What the use cases need of the LoRA adapter registry, as one interface.

Core never reads the registry's files: the entry point hands it an `AdapterCatalog`
(bot.cli.runtime.RegistryAdapters over registry.versions), so the registry's layout can
change, or move behind a service, without touching a command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class AdapterError(Exception):
    """The registry cannot do what was asked; the message is fit for a room admin."""


@dataclass(frozen=True)
class Rollback:
    was: str | None  # the version that served the room before (None: the base model)
    now: str | None  # the version that serves it now
    own: bool  # the room's own adapter rolled back (else the default that rooms share)


class AdapterCatalog(Protocol):
    def serving_version(self, room_id: str) -> str | None:
        """The adapter version that should serve ``room_id`` (its own, else the default), or None."""

    def roll_back(self, room_id: str) -> Rollback:
        """Undo the latest promotion for the room's own adapter, else the shared default;
        raises AdapterError when there is nothing to roll back to."""


class NoAdapters:
    """A deployment without a registry: every room is served the base model."""

    def serving_version(self, room_id: str) -> str | None:
        return None

    def roll_back(self, room_id: str) -> Rollback:
        raise AdapterError("no adapter registry is configured here")

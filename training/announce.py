"""Tell the room how a training run ended: promotions (with the report plot) and failures.

    announce(notifiers, RunAnnouncement(kind="promoted", summary=..., version="r0007-ab12cd",
                                        report_png=Path(".../report.png")), admins=settings.room.admins)

Where posts go is the caller's: the notifiers are built by the entry point (bot.cli.announcers,
from `training.announce_slack_channel`/`announce_discord_channel` and the bot tokens), so
training depends on the `Notifier` interface and never on a chat SDK or the bot. A failure
mentions the room admins of the platform it is posted to (`room.admins` mixes Slack and
Discord ids). Chat is a courtesy here, not part of the run: an outage is logged
as a warning and `announce` returns normally, so a promotion is never undone by a post
that could not be made.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

log = logging.getLogger(__name__)

KINDS = ("promoted", "kept", "failed")

_SLACK_USER = re.compile(r"[UW][A-Z0-9]+")
_DISCORD_USER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class RunAnnouncement:
    kind: str  # "promoted" | "kept" | "failed"
    summary: str  # one short paragraph written by the caller (run id, version, metrics, reason)
    run_id: int | None = None
    version: str | None = None
    room: str | None = None  # the room's platform id when the adapter is a room's own, else None
    report_png: Path | None = None  # the report plot, attached when present

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")


class Notifier(Protocol):
    """Somewhere a run's outcome can be posted: one chat channel. The chat adapters implement
    it (bot.slack.announcer, bot.discord.announcer); training never imports a chat SDK."""

    platform: str  # "slack" | "discord": picks the admins to mention
    channel: str

    def post(self, text: str, png: Path | None) -> None: ...


def announce(notifiers: Sequence[Notifier], announcement: RunAnnouncement, *,
             admins: Sequence[str] = ()) -> list[str]:
    """Post to every notifier; returns where it was posted, e.g. ["slack:C123", "discord:456"].

    Never raises: a notifier that fails is logged (exception type and channel, never a token).
    ``admins`` mixes platforms' user ids; each post mentions its own platform's on a failure.
    """
    png = announcement.report_png if announcement.report_png and announcement.report_png.is_file() else None
    if announcement.report_png and png is None:
        log.warning("report plot %s is missing; announcing without it", announcement.report_png)
    posted: list[str] = []
    for notifier in notifiers:
        text = message_text(announcement, admins_on(notifier.platform, list(admins)))
        try:
            notifier.post(text, png)
        except Exception as exc:  # noqa: BLE001 - whatever the platform does, the run still counts
            log.warning("could not announce training run %s on %s channel %s: %s%s", announcement.run_id,
                        notifier.platform, notifier.channel, type(exc).__name__, _error_code(exc))
            continue
        posted.append(f"{notifier.platform}:{notifier.channel}")
    return posted


def headline(announcement: RunAnnouncement) -> str:
    run = f"Training run {announcement.run_id}" if announcement.run_id is not None else "A training run"
    if announcement.kind == "promoted":
        text = f"Adapter {announcement.version} promoted" if announcement.version else f"{run} promoted its adapter"
    elif announcement.kind == "kept":
        # "Kept" in the registry, not served: the serving adapter stays as it was.
        text = f"{run}: candidate {announcement.version or ''} not promoted; the serving adapter stays".replace("  ", " ")
    else:
        text = f"{run} failed"
    return f"{text} (room {announcement.room})" if announcement.room else text


def admins_on(platform: str, admins: list[str]) -> list[str]:
    """The admin ids that belong to `platform`: Slack's are U…/W…, Discord's are all digits."""
    pattern = _SLACK_USER if platform == "slack" else _DISCORD_USER
    return [admin for admin in admins if pattern.fullmatch(admin)]


def message_text(announcement: RunAnnouncement, admins: list[str]) -> str:
    # Mentions come right under the headline so that cutting a long summary never drops them.
    lines = [headline(announcement)]
    if announcement.kind == "failed" and admins:
        lines.append("Room admins: " + " ".join(f"<@{admin}>" for admin in admins))
    return "\n".join(lines) + "\n\n" + announcement.summary.strip()


def _error_code(exc: Exception) -> str:
    """The platform's own short error name, which says what to fix (e.g. not_in_channel, 404)."""
    response = getattr(exc, "response", None)
    slack_error = response.get("error") if hasattr(response, "get") else None
    if isinstance(slack_error, str):
        return f" ({slack_error})"
    status = getattr(exc, "status", None)
    return f" (HTTP {status})" if isinstance(status, int) else ""

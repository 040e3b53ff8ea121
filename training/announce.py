"""Tell the room how a training run ended: promotions (with the report plot) and failures.

    announce(settings, RunAnnouncement(kind="promoted", summary=..., version="r0007-ab12cd",
                                       report_png=Path(".../report.png")))

Posts go to `training.announce_slack_channel` and `training.announce_discord_channel`, each
with its platform's bot token; a platform without a channel or a token is skipped. A
failure mentions the room admins of the platform it is posted to (`room.admins` mixes
Slack and Discord ids). Chat is a courtesy here, not part of the run: an outage is logged
as a warning and `announce` returns normally, so a promotion is never undone by a post
that could not be made.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("promoted", "kept", "failed")
DISCORD_MAX_CHARS = 2000
# A post must not hold the trainer up for long when a platform hangs.
TIMEOUT_S = 30.0

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


def announce(settings: "Settings", announcement: RunAnnouncement) -> list[str]:
    """Post to every configured platform; returns where it was posted, e.g. ["slack:C123", "discord:456"].

    Never raises: a platform that fails is logged (exception type and channel, never a token).
    """
    png = announcement.report_png if announcement.report_png and announcement.report_png.is_file() else None
    if announcement.report_png and png is None:
        log.warning("report plot %s is missing; announcing without it", announcement.report_png)
    posted: list[str] = []
    for platform, channel, token, post in (
        ("slack", settings.training.announce_slack_channel, settings.slack.bot_token, _post_slack),
        ("discord", settings.training.announce_discord_channel, settings.discord.bot_token, _post_discord),
    ):
        if not channel or token is None:
            log.info("not announcing training runs on %s: no announce channel or no bot token set", platform)
            continue
        text = message_text(announcement, admins_on(platform, settings.room.admins))
        try:
            post(settings, channel, token.get_secret_value(), text, png)
        except Exception as exc:  # noqa: BLE001 - whatever the platform does, the run still counts
            log.warning("could not announce training run %s on %s channel %s: %s%s", announcement.run_id,
                        platform, channel, type(exc).__name__, _error_code(exc))
            continue
        posted.append(f"{platform}:{channel}")
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


def _post_slack(settings: "Settings", channel: str, token: str, text: str, png: Path | None) -> None:
    # slack_sdk joins base_url and the method name, so the base must end with a slash (as in
    # bot.slack.app, which is not imported here: it loads Bolt and every listener).
    api_url = settings.slack.api_url if settings.slack.api_url.endswith("/") else settings.slack.api_url + "/"
    client = WebClient(token=token, base_url=api_url, timeout=int(TIMEOUT_S))
    if png is None:
        client.chat_postMessage(channel=channel, text=text)
        return
    try:
        client.files_upload_v2(channel=channel, file=str(png), filename=png.name, title=png.name,
                               initial_comment=text)
    except SlackApiError as exc:  # e.g. no files:write scope: the news matters more than the plot
        log.warning("could not upload the report plot to Slack channel %s (%s); posting the text alone",
                    channel, exc.response.get("error"))
        client.chat_postMessage(channel=channel, text=text)


def _post_discord(settings: "Settings", channel: str, token: str, text: str, png: Path | None) -> None:
    _run_coroutine(lambda: asyncio.wait_for(_send_discord(settings.discord.api_url, channel, token, text, png),
                                            TIMEOUT_S))


async def _send_discord(api_url: str, channel_id: str, token: str, text: str, png: Path | None) -> None:
    # Imported here: discord.py and the bot's cog take about a second to load, which a trainer
    # that does not announce on Discord should not pay.
    import discord

    from bot.discord.client import configure_rest

    configure_rest(api_url)
    if len(text) > DISCORD_MAX_CHARS:
        text = text[: DISCORD_MAX_CHARS - 1] + "…"
    # REST only: login checks the token and fetches what send needs; no gateway connection is
    # opened, so intents ask for nothing. The guilds flag only quiets discord.py's warning that
    # state may be incomplete without it, which would otherwise reach the trainer's log each time.
    client = discord.Client(intents=discord.Intents(guilds=True))
    try:
        await client.login(token)
        channel = await client.fetch_channel(int(channel_id))
        await channel.send(content=text, file=discord.File(png) if png else None,
                           allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True))
    finally:
        await client.close()


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion from sync code, even when this thread already runs a loop
    (asyncio.run refuses that), by giving it a thread and a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="announce-discord")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def _error_code(exc: Exception) -> str:
    """The platform's own short error name, which says what to fix (e.g. not_in_channel, 404)."""
    response = getattr(exc, "response", None)
    slack_error = response.get("error") if hasattr(response, "get") else None
    if isinstance(slack_error, str):
        return f" ({slack_error})"
    status = getattr(exc, "status", None)
    return f" (HTTP {status})" if isinstance(status, int) else ""

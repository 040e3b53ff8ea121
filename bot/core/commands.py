"""The one command table every platform dispatches through."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from bot.core import dialogue, recommend, room_admin, similar, style
from bot.core.ratelimit_reply import rate_limited
from bot.core.replies import Invocation, Reply, Section, SectionKind
from bot.core.services import CoreServices
from observability import metrics
from observability.request_id import request_scope

log = logging.getLogger(__name__)

Handler = Callable[[CoreServices, Invocation], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Handler
    writes_scene: bool = False  # costly: counts against the writer's rate limit


async def _help(services: CoreServices, invocation: Invocation) -> Reply:
    lines = [f"`{command.usage}` — {command.summary}" for command in COMMANDS.values()]
    lines.append("Approve, reject, regenerate or edit a scene with the buttons under it.")
    return Reply(title="writersroom commands", sections=(Section(SectionKind.TEXT, "\n".join(lines)),))


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command("dialogue", "/dialogue <situation> [characters: A, B] [tone: …]",
                "write a scene in screenplay format, grounded in the library", dialogue.dialogue, writes_scene=True),
        Command("similar", "/similar <logline or pasted scene>",
                "find the closest scenes and scripts in the library", similar.similar),
        Command("recommend", recommend.USAGE,
                "scripts this room has not drawn on yet, close to the scenes it approved", recommend.recommend),
        Command("style", style.USAGE,
                "style report of a pasted scene or script: cast lines, pages, dialogue/action, INT/EXT, day/night",
                style.style),
        Command("room", f"{room_admin.USAGE}", "this room's status, model, and your training consent",
                room_admin.room),
        Command("help", "/help", "show this list", _help),
    )
}


def refusal(services: CoreServices, invocation: Invocation) -> Reply | None:
    """Why this invocation is not served here (a channel outside the allowlist), or None.

    `dispatch` applies it to every command; an adapter that serves a command another way
    (Slack's /style on a shared file) calls it first.
    """
    return services.policy.channel_refusal(invocation)


async def dispatch(services: CoreServices, name: str, invocation: Invocation) -> Reply:
    """Run a command by name; an unknown name gets the help text.

    Every command runs under a request id (logs, and the backend's logs through the chat
    client's header) and is counted and timed by outcome for /metrics.
    """
    command_name = name.lstrip("/").lower()
    label = command_name if command_name in COMMANDS else "unknown"
    platform = invocation.platform
    with request_scope():
        started = time.perf_counter()
        metrics.COMMANDS_IN_PROGRESS.labels(platform).inc()
        outcome = "failed"
        try:
            outcome, reply = await _dispatch(services, command_name, invocation)
            return reply
        finally:
            seconds = time.perf_counter() - started
            metrics.COMMANDS_IN_PROGRESS.labels(platform).dec()
            metrics.COMMANDS.labels(platform, label, outcome).inc()
            metrics.COMMAND_SECONDS.labels(platform, label).observe(seconds)
            log.info("/%s from %s:%s in %s answered %s in %.2f s", label, platform, invocation.user_id,
                     invocation.room_id, outcome, seconds)


async def _dispatch(services: CoreServices, name: str, invocation: Invocation) -> tuple[str, Reply]:
    refused = refusal(services, invocation)
    if refused:
        return "refused", refused
    command = COMMANDS.get(name)
    if command is None:
        reply = await _help(services, invocation)
        note = Section(SectionKind.ERROR, f"Unknown command `/{name}`.")
        return "unknown", Reply(title=reply.title, sections=(note, *reply.sections), is_error=True)
    if command.writes_scene and invocation.text.strip():
        limited = rate_limited(services, invocation)
        if limited:
            return "rate_limited", limited
    reply = await command.handler(services, invocation)
    return ("error" if reply.is_error else "ok"), reply

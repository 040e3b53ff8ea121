"""The one command table every platform dispatches through (each command runs in bot.core.pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from bot.core import dialogue, recommend, room_admin, similar, style
from bot.core.pipeline import serve
from bot.core.replies import Invocation, Reply, Section, SectionKind
from bot.core.services import CoreServices

Handler = Callable[[CoreServices, Invocation], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Handler


async def _help(services: CoreServices, invocation: Invocation) -> Reply:
    lines = [f"`{command.usage}` — {command.summary}" for command in COMMANDS.values()]
    lines.append("Approve, reject, regenerate or edit a scene with the buttons under it.")
    return Reply(title="writersroom commands", sections=(Section(SectionKind.TEXT, "\n".join(lines)),))


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command("dialogue", "/dialogue <situation> [characters: A, B] [tone: …]",
                "write a scene in screenplay format, grounded in the library", dialogue.dialogue),
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


async def dispatch(services: CoreServices, name: str, invocation: Invocation) -> Reply:
    """Run a command by name through the pipeline; an unknown name gets the help text."""
    command_name = name.lstrip("/").lower()
    command = COMMANDS.get(command_name)
    if command is None:
        return await serve(services, invocation, "unknown", lambda: _unknown(services, invocation, command_name))
    return await serve(services, invocation, command.name, lambda: command.handler(services, invocation))


async def _unknown(services: CoreServices, invocation: Invocation, name: str) -> Reply:
    reply = await _help(services, invocation)
    note = Section(SectionKind.ERROR, f"Unknown command `/{name}`.")
    return Reply(title=reply.title, sections=(note, *reply.sections), is_error=True)

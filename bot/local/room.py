"""The local room: the bot's commands in a terminal, through the same core as Slack and Discord.

    writersroom room

Type `/dialogue …` or `/similar …`; then `/approve`, `/reject`, `/regenerate` or
`/edit` act on the last scene (or on `/approve 12` for generation 12).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable, Iterable

from bot.core.commands import COMMANDS, dispatch
from bot.core.feedback import record
from bot.core.replies import ActionKind, Invocation, Reply, error_reply
from bot.core.services import CoreServices
from bot.local.console import Console
from bot.local.render import render_text

ROOM_ID = "local:terminal"
EDIT_END = "."
_ACTIONS = {kind.value: kind for kind in ActionKind}


class LocalRoom:
    def __init__(self, services: CoreServices, *, user_id: str | None = None,
                 notify: Callable[[str], Awaitable[None]] | None = None) -> None:
        """``notify`` shows the writer a line while a command is still working (a queued scene)."""
        self.services = services
        self.user_id = user_id or getpass.getuser()
        self.last_generation: int | None = None
        self.notify = notify

    def invocation(self, text: str) -> Invocation:
        return Invocation(platform="local", room_id=ROOM_ID, user_id=self.user_id, user_name=self.user_id,
                          room_name="terminal", text=text, notify=self.notify)

    async def handle(self, line: str, *, read_more: Callable[[], Iterable[str]] = lambda: ()) -> Reply | None:
        """One line typed in the room; read_more supplies the edited text for /edit."""
        line = line.strip()
        if not line:
            return None
        name, _, rest = line.lstrip("/").partition(" ")
        name = name.lower()
        if name in _ACTIONS:
            return await self._act(_ACTIONS[name], rest.strip(), read_more)
        reply = await dispatch(self.services, name, self.invocation(rest))
        if reply.generation_id is not None:
            self.last_generation = reply.generation_id
        return reply

    async def _act(self, kind: ActionKind, argument: str, read_more: Callable[[], Iterable[str]]) -> Reply:
        target = int(argument) if argument.isdigit() else self.last_generation
        if target is None:
            return error_reply(f"/{kind.value}", "No scene yet: write one with /dialogue first.")
        # Typing the edited scene takes minutes: read it in a worker, never on the event loop.
        edited = await asyncio.to_thread(lambda: "\n".join(read_more())) if kind is ActionKind.EDIT else None
        reply = await record(self.services, self.invocation(""), generation_id=target, kind=kind, edited_text=edited)
        if reply.generation_id is not None and kind is ActionKind.REGENERATE:
            self.last_generation = reply.generation_id
        return reply


def _read_edit(console: Console) -> Callable[[], Iterable[str]]:
    def lines() -> Iterable[str]:
        console.show(f"Type the edited scene; end with a line holding only '{EDIT_END}'.")
        while (line := console.read_line()) != EDIT_END:
            yield line

    return lines


async def run_room(services: CoreServices, *, console: Console | None = None,
                   on_open: Callable[[Console], None] | None = None) -> None:
    """The interactive loop (stdin/stdout). ``on_open`` runs once the room is open, with the
    console that notices from elsewhere (the library loading beside the room) go to."""
    console = console or Console()

    async def notify(text: str) -> None:
        console.notice(text)

    room = LocalRoom(services, notify=notify)
    names = ", ".join(f"/{name}" for name in COMMANDS)
    console.show(f"writersroom local room. Commands: {names}, /approve, /reject, /regenerate, /edit, /quit")
    if on_open is not None:
        on_open(console)
    while True:
        try:
            line = await asyncio.to_thread(console.read_line)
        except EOFError:
            break
        if line.strip() in ("/quit", "/exit"):
            break
        if line.strip().lower().startswith("/dialogue") or line.strip().lower().startswith("/regenerate"):
            console.show("writing the scene …")
        reply = await room.handle(line, read_more=_read_edit(console))
        if reply is not None:
            console.show(render_text(reply))

"""Running the real bot against the emulator: shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from bot.discord.client import build_bot
from emulators.core_services import make_core_services
from emulators.discord import DiscordEmulator
from emulators.openai_backend import FakeBackend
from store import feedback
from store.db import session_scope

TOKEN = "emulator.bot.token"
SITUATION = "a detective corners her former partner in a rainy alley"


@asynccontextmanager
async def running_bot(emulator: DiscordEmulator, services):
    """A fresh bot instance (one 'process'), logged in and identified on the gateway; closed on exit.

    It waits for IDENTIFY rather than on_ready: discord.py holds on_ready back ~2 s waiting for
    guilds, but it handles interactions as soon as READY has arrived.
    """
    bot = build_bot(services.settings, services)
    identified = emulator.identifies
    task = asyncio.create_task(bot.start(TOKEN))
    try:
        waiter = asyncio.create_task(emulator.wait_for(lambda: emulator.identifies > identified, timeout=15))
        done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()  # start() ended early: raise its error
            raise AssertionError("the bot stopped before identifying")
        waiter.result()
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def discord_room(tmp_path: Path, backend: FakeBackend, *, discord: dict | None = None, **overrides):
    """The emulator and core services pointed at it and at `backend`; settings `overrides` by section."""
    async with DiscordEmulator() as emulator:
        services = make_core_services(tmp_path, backend.url,
                                      discord={"api_url": emulator.api_url, "guild_id": emulator.guild_id,
                                               **(discord or {})}, **overrides)
        yield emulator, services
        assert emulator.unhandled == []  # every route discord.py called is one the emulator knows
        assert emulator.refused_callbacks == []  # no second or late acknowledgement


def button_ids(message: dict) -> list[str]:
    return [component["custom_id"] for row in message["components"] for component in row["components"]]


def summary(services, generation_id: int):
    with session_scope(services.sessions) as session:
        return feedback.feedback_summary(session, generation_id=generation_id)

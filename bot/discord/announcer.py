"""Training announcements on Discord: the `Notifier` that training's `announce` posts through."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Callable, Coroutine

DISCORD_MAX_CHARS = 2000
# A post must not hold the trainer up for long when Discord hangs.
TIMEOUT_S = 30.0


class DiscordAnnouncer:
    """Posts to one channel over REST with the bot token (no gateway connection)."""

    platform = "discord"

    def __init__(self, *, api_url: str, token: str, channel: str) -> None:
        self._api_url = api_url
        self._token = token
        self.channel = channel

    def post(self, text: str, png: Path | None) -> None:
        _run_coroutine(lambda: asyncio.wait_for(self._send(text, png), TIMEOUT_S))

    async def _send(self, text: str, png: Path | None) -> None:
        # Imported here: discord.py takes about a second to load, which a trainer that does not
        # announce on Discord should not pay.
        import discord

        from bot.discord.client import configure_rest

        configure_rest(self._api_url)
        if len(text) > DISCORD_MAX_CHARS:
            text = text[: DISCORD_MAX_CHARS - 1] + "…"
        # REST only: login checks the token and fetches what send needs; no gateway connection is
        # opened, so intents ask for nothing. The guilds flag only quiets discord.py's warning that
        # state may be incomplete without it, which would otherwise reach the trainer's log each time.
        client = discord.Client(intents=discord.Intents(guilds=True))
        try:
            await client.login(self._token)
            channel = await client.fetch_channel(int(self.channel))
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

"""The Discord bot: a discord.py client with the writersroom cog and persistent buttons.

    writersroom discord        (DISCORD_BOT_TOKEN in the environment)

Endpoints are configurable for proxies (GovCloud-like setups) and the test emulator:
`discord.api_url` replaces discord.py's REST base (`discord.http.Route.BASE`), and the
gateway is `discord.gateway_url` or, when that is empty, the URL the REST API announces
at GET /gateway/bot. discord.py keeps both as class attributes, so they are set for the
whole process, just before the client logs in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.discord.cog import WritersRoomCog
from bot.discord.views import FeedbackButton

if TYPE_CHECKING:
    from bot.core.services import CoreServices
    from config.settings import DiscordSettings, Settings

log = logging.getLogger(__name__)


class MissingTokenError(RuntimeError):
    """The bot cannot start without DISCORD_BOT_TOKEN."""


def configure_rest(api_url: str) -> None:
    """Point discord.py's REST routes (bot API, interaction callbacks, followups) at `api_url`."""
    Route.BASE = api_url.rstrip("/")


def configure_gateway(gateway_url: str) -> None:
    """Make `gateway_url` the websocket discord.py connects (and falls back) to."""
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class WritersRoomBot(commands.Bot):
    """A commands.Bot that carries the core services its cog and buttons use."""

    def __init__(self, discord_settings: "DiscordSettings", services: "CoreServices") -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         help_command=None)
        self.discord_settings = discord_settings
        self.services = services

    async def login(self, token: str) -> None:
        configure_rest(self.discord_settings.api_url)
        await super().login(token)

    async def setup_hook(self) -> None:
        await self.add_cog(WritersRoomCog(self.services))
        # Registered by class, so a click on a message sent before a restart still lands.
        self.add_dynamic_items(FeedbackButton)
        if self.discord_settings.sync_on_start:
            await self.sync_commands(self.discord_settings.guild_id)

    async def connect(self, *, reconnect: bool = True) -> None:
        await self._choose_gateway()  # only a bot that connects needs the gateway (not `--sync`)
        await super().connect(reconnect=reconnect)

    async def sync_commands(self, guild_id: int | None) -> list:
        """Publish the slash commands to one guild (at once) or globally (Discord takes up to an hour)."""
        if guild_id is None:
            return await self.tree.sync()
        guild = discord.Object(id=guild_id)
        self.tree.copy_global_to(guild=guild)
        return await self.tree.sync(guild=guild)

    async def _choose_gateway(self) -> None:
        url = self.discord_settings.gateway_url
        if not url:
            _, url, _ = await self.http.get_bot_gateway()
        configure_gateway(url)
        log.info("discord gateway: %s", url)


def build_bot(settings: "Settings", services: "CoreServices") -> WritersRoomBot:
    """A bot ready to `start(token)`: no privileged intents, slash commands and buttons only."""
    return WritersRoomBot(settings.discord, services)


def bot_token(settings: "Settings") -> str:
    token = settings.discord.bot_token
    if token is None:
        raise MissingTokenError("DISCORD_BOT_TOKEN is not set: create a bot at "
                                "https://discord.com/developers/applications and export its token")
    return token.get_secret_value()


async def sync_only(settings: "Settings", services: "CoreServices", *, guild_id: int | None) -> list[str]:
    """Log in over REST, publish the slash commands to ``guild_id`` (None: globally) and
    leave; the names synced. For deployments that start many replicas with sync_on_start off."""
    bot = WritersRoomBot(settings.discord.model_copy(update={"sync_on_start": False}), services)
    try:
        await bot.login(bot_token(settings))
        return [command.name for command in await bot.sync_commands(guild_id)]
    finally:
        await bot.close()


def run_bot(settings: "Settings", services: "CoreServices") -> None:
    """Run until interrupted (blocking); logging is left to the caller's configuration."""
    build_bot(settings, services).run(bot_token(settings), log_handler=None)

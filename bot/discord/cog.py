"""Slash commands: /dialogue, /similar and /wr-help, each a thin call into the core.

Discord wants an answer to an interaction within 3 seconds and a scene takes longer,
so every command defers at once ("… is thinking") and sends the reply as a followup. While
a scene waits in the backend's queue, the "thinking" message says where it stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.commands import dispatch
from bot.discord.invocation import ThinkingNotice, invocation_from
from bot.discord.views import send_reply

if TYPE_CHECKING:
    from bot.core.services import CoreServices


def dialogue_text(situation: str, characters: str | None = None, tone: str | None = None) -> str:
    """The options as the one line the core parses: `<situation> characters: A, B tone: …`."""
    parts = [situation.strip()]
    if characters and characters.strip():
        parts.append(f"characters: {characters.strip()}")
    if tone and tone.strip():
        parts.append(f"tone: {tone.strip()}")
    return " ".join(parts)


class WritersRoomCog(commands.Cog, name="writersroom"):
    def __init__(self, services: "CoreServices") -> None:
        self.services = services

    async def _run(self, interaction: discord.Interaction, command: str, text: str) -> None:
        await interaction.response.defer(thinking=True)
        notice = ThinkingNotice(interaction)  # a queued scene shows its place on the "thinking" message
        reply = await dispatch(self.services, command, invocation_from(interaction, text, notify=notice))
        await send_reply(interaction, reply)
        await notice.clear()

    @app_commands.command(name="dialogue", description="Write a scene in screenplay format, grounded in the library")
    @app_commands.describe(situation="What happens, e.g. a detective corners her former partner in a rainy alley",
                           characters="Who speaks, comma-separated (optional)",
                           tone="e.g. noir, farce, quiet menace (optional)")
    async def dialogue(self, interaction: discord.Interaction, situation: str, characters: str | None = None,
                       tone: str | None = None) -> None:
        await self._run(interaction, "dialogue", dialogue_text(situation, characters, tone))

    @app_commands.command(name="similar", description="Find the closest scenes and scripts in the library")
    @app_commands.describe(text="A logline or a pasted scene")
    async def similar(self, interaction: discord.Interaction, text: str) -> None:
        await self._run(interaction, "similar", text)

    @app_commands.command(name="recommend", description="Scripts this room has not drawn on yet, close to what it approved")
    @app_commands.describe(count="How many (1-20, optional)")
    async def recommend(self, interaction: discord.Interaction, count: int | None = None) -> None:
        await self._run(interaction, "recommend", str(count) if count else "")

    @app_commands.command(name="style", description="Style report of a pasted scene: cast lines, pages, INT/EXT")
    @app_commands.describe(text="Fountain text of a scene or script")
    async def style(self, interaction: discord.Interaction, text: str) -> None:
        await self._run(interaction, "style", text)

    @app_commands.command(name="room", description="This room's status, model and your training consent; admin actions")
    @app_commands.describe(action="status | model | consent on | consent off | retrain | rollback | help")
    async def room(self, interaction: discord.Interaction, action: str = "help") -> None:
        await self._run(interaction, "room", action)

    @app_commands.command(name="wr-help", description="What the writersroom bot can do")
    async def help(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "help", "")

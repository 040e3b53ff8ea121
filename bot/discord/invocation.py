"""From a Discord interaction to a core Invocation, and a guard that always yields a Reply."""

from __future__ import annotations

import logging
from typing import Awaitable

import discord

from bot.core.replies import Invocation, Reply, error_reply

log = logging.getLogger(__name__)

PLATFORM = "discord"


def room_id(interaction: discord.Interaction) -> str:
    """`<guild id>:<channel id>`; direct messages have no guild and become `dm:<channel id>`."""
    guild = interaction.guild_id if interaction.guild_id is not None else "dm"
    return f"{guild}:{interaction.channel_id}"


def invocation_from(interaction: discord.Interaction, text: str) -> Invocation:
    user = interaction.user
    channel = interaction.channel
    return Invocation(
        platform=PLATFORM,
        room_id=room_id(interaction),
        user_id=str(user.id),
        user_name=getattr(user, "display_name", None) or getattr(user, "name", None),
        room_name=getattr(channel, "name", None),
        text=text,
        delivery_id=str(interaction.id),
    )


async def safely(call: Awaitable[Reply]) -> Reply:
    """Any failure becomes an error reply: a deferred interaction must always get its followup."""
    try:
        return await call
    except Exception as exc:  # noqa: BLE001 - shown to the writer, logged in full
        log.exception("command failed")
        return error_reply("Something went wrong", f"{type(exc).__name__}: {exc}"[:500])

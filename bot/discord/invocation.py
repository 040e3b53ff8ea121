"""From a Discord interaction to a core Invocation, and a guard that always yields a Reply."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot.core.replies import Invocation

log = logging.getLogger(__name__)

PLATFORM = "discord"


def in_dm(interaction: discord.Interaction) -> bool:
    """A direct message with the bot (no guild)."""
    return interaction.guild_id is None


def room_id(interaction: discord.Interaction) -> str:
    """`<guild id>:<channel id>`; direct messages have no guild and become `dm:<channel id>`.

    A thread belongs to the room of the channel it was opened in: its scenes count toward
    that room, and the channel allowlist (`[room] channels`) covers its threads.
    """
    if in_dm(interaction):
        return f"dm:{interaction.channel_id}"
    return f"{interaction.guild_id}:{_thread_parent(interaction) or interaction.channel_id}"


def _thread_parent(interaction: discord.Interaction) -> int | None:
    channel = interaction.channel
    return getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None


def role_ids(user: discord.abc.User) -> tuple[str, ...]:
    """The ids of the roles a guild member holds, as the interaction listed them.

    Member.roles resolves ids through the guild's role cache and leaves out any it has
    not seen (a guild still loading, a role made a second ago); the interaction's own
    list is what Discord says the member holds now, so the policy reads that.
    """
    listed = getattr(user, "_roles", None)
    if listed is None:
        return ()
    return tuple(str(role_id) for role_id in listed)


def invocation_from(interaction: discord.Interaction, text: str, *,
                    notify: Callable[[str], Awaitable[None]] | None = None) -> Invocation:
    user = interaction.user
    channel = interaction.channel
    return Invocation(
        platform=PLATFORM,
        room_id=room_id(interaction),
        user_id=str(user.id),
        user_name=getattr(user, "display_name", None) or getattr(user, "name", None),
        room_name=getattr(channel, "name", None),
        text=text,
        thread_id=str(interaction.channel_id) if _thread_parent(interaction) else None,
        delivery_id=str(interaction.id),
        roles=role_ids(user),
        notify=notify,
    )


class ThinkingNotice:
    """Tells the writer of a deferred command something before the reply (a scene waiting in the
    backend's queue) by editing the "… is thinking" message: the core's ``Invocation.notify``.

    Once edited, that message is no longer the loading one the reply would have replaced, so
    the reply arrives as a message of its own; ``clear`` then deletes the stale notice.
    """

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self.shown = False

    async def __call__(self, text: str) -> None:
        await self.interaction.edit_original_response(content=text)
        self.shown = True

    async def clear(self) -> None:
        if not self.shown:
            return
        try:
            await self.interaction.delete_original_response()
        except discord.HTTPException as exc:  # gone already, or the token expired: the reply is out
            log.warning("could not remove the queue notice: %s", exc)

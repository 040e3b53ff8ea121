"""Who may do what in a room, and where: approvers, quorum, admins and the channel
allowlist, from the [room] settings."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.replies import Invocation, Reply, channel_mention, error_reply
from config.settings import RoomSettings


@dataclass(frozen=True)
class RoomPolicy:
    approvers: frozenset[str]
    approver_roles: frozenset[str]
    quorum: int
    admins: frozenset[str]
    admin_roles: frozenset[str]
    channels: tuple[str, ...] = ()  # in settings order, so the refusal lists them as configured

    @classmethod
    def from_settings(cls, room: RoomSettings) -> "RoomPolicy":
        return cls(frozenset(room.approvers), frozenset(room.approver_roles), room.quorum,
                   frozenset(room.admins), frozenset(room.admin_roles), tuple(room.channels))

    def may_approve(self, invocation: Invocation) -> bool:
        """Anyone when no approvers are configured; otherwise listed users and role holders (and admins)."""
        if not self.approvers and not self.approver_roles:
            return True
        return self._listed(invocation, self.approvers, self.approver_roles) or self.is_admin(invocation)

    def is_admin(self, invocation: Invocation) -> bool:
        return self._listed(invocation, self.admins, self.admin_roles)

    @staticmethod
    def _listed(invocation: Invocation, users: frozenset[str], roles: frozenset[str]) -> bool:
        return invocation.user_id in users or bool(roles.intersection(invocation.roles))

    def works_in(self, invocation: Invocation) -> bool:
        """True when no channels are listed, or the invocation's channel is one of them.

        Every adapter's room id ends with the platform's channel id ("T1:C1" on Slack,
        "guild:channel" on Discord), so the allowlist holds bare channel ids and works the
        same on both; a whole room id is accepted too.
        """
        if not self.channels:
            return True
        channel = invocation.room_id.rsplit(":", 1)[-1]
        return channel in self.channels or invocation.room_id in self.channels

    def channel_refusal(self, invocation: Invocation) -> Reply | None:
        """A polite refusal naming where the bot works, or None when it works here."""
        if self.works_in(invocation):
            return None
        where = ", ".join(channel_mention(channel.rsplit(":", 1)[-1]) for channel in self.channels)
        return error_reply("Not in this channel",
                           f"Sorry, writersroom only takes commands in {where}. Ask there, or ask a room admin to "
                           "add this channel to the bot's `[room] channels` setting.")

    def approval_state(self, approvals: int) -> str:
        if approvals >= self.quorum:
            return f"Approved ({approvals}/{self.quorum})"
        missing = self.quorum - approvals
        return f"Awaiting approval ({approvals}/{self.quorum}: {missing} more needed)"

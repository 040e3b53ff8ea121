"""Who may do what in a room: approvers, quorum and admins, from the [room] settings."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.replies import Invocation
from bot.settings import RoomSettings


@dataclass(frozen=True)
class RoomPolicy:
    approvers: frozenset[str]
    approver_roles: frozenset[str]
    quorum: int
    admins: frozenset[str]
    admin_roles: frozenset[str]

    @classmethod
    def from_settings(cls, room: RoomSettings) -> "RoomPolicy":
        return cls(frozenset(room.approvers), frozenset(room.approver_roles), room.quorum,
                   frozenset(room.admins), frozenset(room.admin_roles))

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

    def approval_state(self, approvals: int) -> str:
        if approvals >= self.quorum:
            return f"Approved ({approvals}/{self.quorum})"
        missing = self.quorum - approvals
        return f"Awaiting approval ({approvals}/{self.quorum}: {missing} more needed)"

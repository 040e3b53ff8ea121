"""Where a scene stands with the room: who approved, rejected or edited it, and whether
the quorum is met. Adapters show this on the scene's own message.

People are kept as platform user ids (not display names) so each adapter can render
them as mentions; `describe` uses the `<@id>` form that Slack and Discord share.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.core.replies import user_mention
from bot.core.services import CoreServices
from store import feedback
from store.db import session_scope
from store.models import FeedbackKind


@dataclass(frozen=True)
class ApprovalState:
    generation_id: int
    quorum: int
    approvers: tuple[str, ...] = ()  # platform user ids, first approval first
    rejecters: tuple[str, ...] = ()
    editors: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return len(self.approvers) >= self.quorum

    def describe(self) -> str:
        """"Approved 1 of 2 — by <@U1>", "Approved by <@U1>, <@U2> · Rejected by <@U3>", ..."""
        parts = []
        if self.approvers:
            who = _people(self.approvers)
            parts.append(f"Approved by {who}" if self.approved
                         else f"Approved {len(self.approvers)} of {self.quorum} — by {who}")
        if self.rejecters:
            parts.append(f"Rejected by {_people(self.rejecters)}")
        if self.editors:
            parts.append(f"Edited by {_people(self.editors)}")
        return " · ".join(parts) or f"Awaiting approval (0 of {self.quorum})"


def _people(ids: tuple[str, ...]) -> str:
    return ", ".join(user_mention(user_id) for user_id in ids)


def read_state(session: Session, *, generation_id: int, quorum: int) -> ApprovalState:
    people = feedback.people_by_kind(session, generation_id=generation_id)
    return ApprovalState(generation_id, quorum, tuple(people[FeedbackKind.APPROVE]),
                         tuple(people[FeedbackKind.REJECT]), tuple(people[FeedbackKind.EDIT]))


async def current_state(services: CoreServices, generation_id: int) -> ApprovalState:
    """The state as the store has it now (read fresh: two clicks may land at once)."""

    def read() -> ApprovalState:
        with session_scope(services.sessions) as session:
            return read_state(session, generation_id=generation_id, quorum=services.policy.quorum)

    return await asyncio.to_thread(read)

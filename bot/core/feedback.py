"""Approve, reject, edit or regenerate a generation; state lives in the store, so a
button clicked hours later, after a restart, still lands on the right generation."""

from __future__ import annotations

import asyncio
import logging

from bot.core.approval import read_state
from bot.core.dialogue import scene_reply, write_scene
from bot.core.pipeline import serve
from bot.core.replies import (
    ActionKind,
    Invocation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.core.services import CoreServices
from llm.client import GenerationError
from observability import metrics
from store import feedback as feedback_store
from store import generations, rooms
from store.db import session_scope

log = logging.getLogger(__name__)

NOT_AN_APPROVER = "Only the room's approvers can approve, reject or edit scenes here."
_VERBS = {ActionKind.APPROVE: "approved", ActionKind.REJECT: "rejected", ActionKind.EDIT: "edited and approved"}


async def record(services: CoreServices, invocation: Invocation, *, generation_id: int, kind: ActionKind,
                 edited_text: str | None = None) -> Reply:
    """Record one click or edit through the pipeline (request id, allowlist, metrics, errors)."""

    async def work() -> Reply:
        reply = await _record(services, invocation, generation_id=generation_id, kind=kind, edited_text=edited_text)
        log.info("%s on generation %d by %s:%s: %s", kind.value, generation_id, invocation.platform,
                 invocation.user_id, "refused" if reply.is_error else "recorded")
        _count(services, invocation, kind, reply)
        return reply

    return await serve(services, invocation, kind.value, work)


def _count(services: CoreServices, invocation: Invocation, kind: ActionKind, reply: Reply) -> None:
    """Feedback that changed something counts once; so does the approval that meets the quorum."""
    if reply.is_error or not reply.metadata.get("created", kind is ActionKind.REGENERATE):
        return
    metrics.FEEDBACK.labels(invocation.platform, kind.value).inc()
    approval = reply.metadata.get("approval")
    if kind in (ActionKind.APPROVE, ActionKind.EDIT) and approval is not None \
            and len(approval.approvers) == services.policy.quorum:
        metrics.SCENES_APPROVED.labels(invocation.platform).inc()


async def _record(services: CoreServices, invocation: Invocation, *, generation_id: int, kind: ActionKind,
                  edited_text: str | None) -> Reply:
    if kind is ActionKind.REGENERATE:
        return await regenerate(services, invocation, generation_id=generation_id)
    if not services.policy.may_approve(invocation):
        return error_reply("Feedback", NOT_AN_APPROVER)
    if kind is ActionKind.EDIT and not (edited_text or "").strip():
        return error_reply("Edit", "The edited scene is empty; nothing was recorded.")
    try:
        summary, created, approval = await asyncio.to_thread(_store_feedback, services, invocation, generation_id,
                                                             kind, edited_text)
    except LookupError:
        return error_reply("Feedback", f"Generation {generation_id} does not exist (was it deleted?).")
    who = invocation.user_name or invocation.user_id
    lead = f"{who} {_VERBS[kind]} generation {generation_id}." if created else \
        f"{who} had already {_VERBS[kind]} generation {generation_id}; nothing changed."
    counts = f"Approvals: {summary.approvals} · Rejections: {summary.rejections} · Edits: {summary.edits}"
    state = services.policy.approval_state(summary.approvals)
    return Reply(title="Feedback", sections=(Section(SectionKind.TEXT, f"{lead}\n{state} · {counts}"),),
                 generation_id=generation_id,
                 metadata={"created": created, "approved": summary.approvals >= services.policy.quorum,
                           "approval": approval})


def _store_feedback(services: CoreServices, invocation: Invocation, generation_id: int, kind: ActionKind,
                    edited_text: str | None):
    with session_scope(services.sessions) as session:
        if generations.get_generation(session, generation_id=generation_id) is None:
            raise LookupError(generation_id)
        user = rooms.get_or_create_user(session, platform=invocation.platform, external_id=invocation.user_id,
                                          display_name=invocation.user_name)
        _, created = feedback_store.record_feedback(session, generation_id=generation_id, user=user, kind=kind.value,
                                             edited_text=edited_text, delivery_id=invocation.delivery_id)
        if kind is ActionKind.EDIT:
            # An edit is submitted as "edited and approved"; the store counts only approvals as approvals.
            delivery = f"{invocation.delivery_id}:approve" if invocation.delivery_id else None
            feedback_store.record_feedback(session, generation_id=generation_id, user=user, kind=ActionKind.APPROVE.value,
                                    delivery_id=delivery)
        session.flush()
        approval = read_state(session, generation_id=generation_id, quorum=services.policy.quorum)
        return feedback_store.feedback_summary(session, generation_id=generation_id), created, approval


async def regenerate(services: CoreServices, invocation: Invocation, *, generation_id: int) -> Reply:
    prompt = await asyncio.to_thread(_prompt_of, services, generation_id)
    if prompt is None:
        return error_reply("Regenerate", f"Generation {generation_id} does not exist.")
    again = Invocation(platform=invocation.platform, room_id=invocation.room_id, user_id=invocation.user_id,
                       text=prompt, user_name=invocation.user_name, room_name=invocation.room_name,
                       thread_id=invocation.thread_id)
    try:
        scene = await write_scene(services, again, parent_id=generation_id)
    except GenerationError as exc:
        return error_reply("Regenerate", str(exc))
    return scene_reply(scene)


def _prompt_of(services: CoreServices, generation_id: int) -> str | None:
    with session_scope(services.sessions) as session:
        generation = generations.get_generation(session, generation_id=generation_id)
        return generation.prompt if generation else None

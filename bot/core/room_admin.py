"""/room: what a room can ask about itself, the writer's own training consent, and (for
room admins) retraining and rolling back the adapter.

    /room help | status | model | consent on|off | retrain | rollback
"""

from __future__ import annotations

import asyncio

from bot.core.adapters import AdapterError
from bot.core.replies import Invocation, Reply, Section, SectionKind, error_reply
from bot.core.services import CoreServices
from llm.client import GenerationError
from store import feedback, rooms, training_runs
from store.db import session_scope

USAGE = "/room help | status | model | consent on|off | retrain | rollback"


def _text(title: str, body: str) -> Reply:
    return Reply(title=title, sections=(Section(SectionKind.TEXT, body),))


async def room(services: CoreServices, invocation: Invocation) -> Reply:
    action, _, rest = invocation.text.strip().partition(" ")
    handler = _ACTIONS.get(action.lower())
    if handler is None:
        problem = f"Unknown /room action `{action}`. " if action and action.lower() != "help" else ""
        return _text("/room", f"{problem}Usage: `{USAGE}`\n"
                              "status: this room's numbers and policy · model: what writes the scenes · "
                              "consent off: keep your approvals and edits out of training · "
                              "retrain, rollback: room admins only")
    return await handler(services, invocation, rest.strip().lower())


async def _status(services: CoreServices, invocation: Invocation, _: str) -> Reply:
    stats = await asyncio.to_thread(_room_stats, services, invocation)
    policy = services.policy
    approvers = ", ".join(sorted(policy.approvers | policy.approver_roles)) or "anyone in the room"
    lines = [
        f"Scenes written: {stats['generations']} · approvals {stats['approvals']} · rejections {stats['rejections']}"
        f" · edits {stats['edits']}",
        f"Approvals needed per scene: {policy.quorum} · approvers: {approvers}",
        f"Scene requests per writer per minute: {services.limiter.per_minute or 'unlimited'}",
    ]
    return _text("/room status", "\n".join(lines))


def _room_stats(services: CoreServices, invocation: Invocation) -> dict[str, int]:
    with session_scope(services.sessions) as session:
        room = rooms.get_or_create_room(session, platform=invocation.platform, external_id=invocation.room_id,
                                        name=invocation.room_name)
        return feedback.room_stats(session, room=room)


async def _model(services: CoreServices, invocation: Invocation, _: str) -> Reply:
    try:
        names = await services.chat.models()
    except GenerationError as exc:
        return error_reply("/room model", str(exc))
    serving = await services.base_model()
    others = [name for name in names if name != serving]
    body = f"Scenes are written by `{serving}`."
    if others:
        body += "\nAlso available: " + ", ".join(f"`{name}`" for name in others)
    return _text("/room model", body)


async def _consent(services: CoreServices, invocation: Invocation, choice: str) -> Reply:
    if choice not in ("on", "off"):
        return error_reply("/room consent", "Say `/room consent on` or `/room consent off`.")
    await asyncio.to_thread(_set_consent, services, invocation, choice == "on")
    if choice == "on":
        return _text("/room consent", "Your approvals and edits will be used to fine-tune this room's model.")
    return _text("/room consent", "Your approvals, edits and requested scenes are now kept out of training.")


def _set_consent(services: CoreServices, invocation: Invocation, consent: bool) -> None:
    with session_scope(services.sessions) as session:
        user = rooms.get_or_create_user(session, platform=invocation.platform, external_id=invocation.user_id,
                                        display_name=invocation.user_name)
        rooms.set_training_consent(session, user=user, consent=consent)


def _admins_only(action):
    """Refuse, politely and naming who may, anyone who is not a room admin."""

    async def guarded(services: CoreServices, invocation: Invocation, rest: str) -> Reply:
        if not services.policy.is_admin(invocation):
            return error_reply(f"/room {action.__name__.strip('_')}",
                               "Only room admins may do that (the `[room] admins` and `admin_roles` settings).")
        return await action(services, invocation, rest)

    return guarded


async def _retrain(services: CoreServices, invocation: Invocation, _: str) -> Reply:
    request_id, pending = await asyncio.to_thread(_queue_retrain, services, invocation)
    if pending:
        return _text("/room retrain", f"A training run is already waiting (request {pending}); the trainer takes "
                                      "it next.")
    return _text("/room retrain",
                 f"Training requested (request {request_id}). `writersroom trainer` starts it within "
                 f"{services.settings.training.poll_s:.0f} s; the outcome, with its report plot, is announced in chat. "
                 "A new adapter serves only if it beats the current one on held-out scenes.")


def _queue_retrain(services: CoreServices, invocation: Invocation) -> tuple[int | None, int | None]:
    with session_scope(services.sessions) as session:
        pending = training_runs.pending_training_request(session)
        if pending is not None:
            return None, pending.id
        request = training_runs.request_training_run(
            session, note=f"requested by {invocation.user_name or invocation.user_id} in {invocation.room_id}")
        return request.id, None


async def _rollback(services: CoreServices, invocation: Invocation, _: str) -> Reply:
    try:
        done = await asyncio.to_thread(services.adapters.roll_back, invocation.room_id)
    except AdapterError as exc:
        return error_reply("/room rollback", str(exc))
    scope = "this room" if done.own else "every room without its own adapter"
    return _text("/room rollback", f"Rolled back {scope}: `{done.was or 'the base model'}` → "
                                   f"`{done.now or 'the base model'}`. The backend picks it up within "
                                   f"{services.settings.backend.adapter_poll_s:.0f} s.")


_ACTIONS = {"status": _status, "model": _model, "consent": _consent, "retrain": _admins_only(_retrain),
            "rollback": _admins_only(_rollback)}

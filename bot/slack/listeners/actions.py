"""Buttons under a scene (approve, reject, regenerate, edit) and the edit modal's submission.

Each button's `value` is the generation id, so a click after a restart still lands on
the right generation. The delivery id (the click's action_ts + the user) reaches the
store, which records one approval however often the same click is delivered.
"""

from __future__ import annotations

import logging
import re

from slack_bolt.async_app import AsyncApp

from bot.core.feedback import record
from bot.core.replies import ActionKind
from bot.core.services import CoreServices
from bot.slack.blocks import (
    EDIT_BLOCK_ID,
    EDIT_CALLBACK_ID,
    action_id,
    edit_modal,
    kind_of,
    parse_edit_submission,
    screenplay_from_message,
)
from bot.slack.posting import RecentDeliveries, post_reply, run_core, slack_invocation

log = logging.getLogger(__name__)

FEEDBACK_ACTIONS = re.compile(
    "^(" + "|".join(action_id(kind) for kind in (ActionKind.APPROVE, ActionKind.REJECT, ActionKind.REGENERATE)) + ")$"
)


def register(app: AsyncApp, services: CoreServices) -> None:
    recent = RecentDeliveries()

    @app.action(FEEDBACK_ACTIONS)
    async def handle_feedback_button(ack, body, action, client, respond) -> None:
        await ack()
        user = body["user"]
        delivery_id = f"{action.get('action_ts')}:{user['id']}"
        if not recent.first_time(delivery_id):
            log.info("dropping a second delivery of click %s", delivery_id)
            return
        kind = kind_of(action["action_id"])
        channel, thread_ts = _where(body)
        invocation = slack_invocation(
            team_id=_team(body), channel_id=channel, user_id=user["id"], text="",
            user_name=user.get("username") or user.get("name"), channel_name=body.get("channel", {}).get("name"),
            thread_ts=thread_ts, delivery_id=delivery_id,
        )
        reply = await run_core(record(services, invocation, generation_id=int(action["value"]), kind=kind),
                               title=kind.value.capitalize())
        await post_reply(client, reply, channel=channel, thread_ts=thread_ts, respond=respond)

    @app.action(action_id(ActionKind.EDIT))
    async def handle_edit_button(ack, body, action, client) -> None:
        await ack()
        channel, thread_ts = _where(body)
        scene, partial = screenplay_from_message(body.get("message") or {}) or ("", False)
        view = edit_modal(int(action["value"]), scene, channel_id=channel, message_ts=thread_ts, partial=partial)
        # The trigger_id lives 3 seconds: open the modal before anything slow.
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(EDIT_CALLBACK_ID)
    async def handle_edit_submission(ack, body, view, client) -> None:
        submission = parse_edit_submission(view)
        if not submission.text.strip():
            await ack(response_action="errors", errors={EDIT_BLOCK_ID: "The scene is empty; write something or cancel."})
            return
        await ack()
        user = body["user"]
        delivery_id = f"{view.get('id')}:{user['id']}"
        if not recent.first_time(delivery_id):
            log.info("dropping a second delivery of submission %s", delivery_id)
            return
        invocation = slack_invocation(
            team_id=_team(body), channel_id=submission.channel, user_id=user["id"], text="",
            user_name=user.get("username") or user.get("name"), thread_ts=submission.message_ts,
            delivery_id=delivery_id,
        )
        reply = await run_core(record(services, invocation, generation_id=submission.generation_id,
                                      kind=ActionKind.EDIT, edited_text=submission.text), title="Edit")
        await post_reply(client, reply, channel=submission.channel, thread_ts=submission.message_ts)


def _where(body: dict) -> tuple[str, str | None]:
    """The channel of the clicked message and the thread to answer in (its own, or the one it is in)."""
    message = body.get("message") or {}
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    thread_ts = message.get("thread_ts") or message.get("ts") or container.get("message_ts")
    return channel, thread_ts


def _team(body: dict) -> str | None:
    return (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")

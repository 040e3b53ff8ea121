"""Buttons under a scene (approve, reject, regenerate, edit) and the edit modal's submission.

Each button's `value` is the generation id, so a click after a restart still lands on
the right generation. The delivery id (the click's action_ts + the user) reaches the
store, which records one approval however often the same click is delivered. After
approve, reject or edit, the scene's own message shows the room's state (scene_state).
"""

from __future__ import annotations

import logging
import re

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.feedback import record
from bot.core.replies import ActionKind, Reply
from bot.core.services import CoreServices
from bot.slack.blocks import (
    EDIT_BLOCK_ID,
    EDIT_CALLBACK_ID,
    action_id,
    edit_expired_blocks,
    edit_modal,
    kind_of,
    parse_edit_submission,
    screenplay_from_message,
)
from bot.slack.posting import (
    RecentDeliveries,
    Respond,
    acknowledge,
    api_error,
    logged,
    post_reply,
    post_scene_reply,
    slack_invocation,
)
from bot.slack.scene_state import SceneMessages

log = logging.getLogger(__name__)

FEEDBACK_ACTIONS = re.compile(
    "^(" + "|".join(action_id(kind) for kind in (ActionKind.APPROVE, ActionKind.REJECT, ActionKind.REGENERATE)) + ")$"
)


def register(app: AsyncApp, services: CoreServices) -> None:
    recent = RecentDeliveries()
    scenes = SceneMessages(services)

    @logged
    async def handle_feedback_button(body, action, client, respond) -> None:
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
        generation_id = int(action["value"])
        reply = await record(services, invocation, generation_id=generation_id, kind=kind)
        message = body.get("message") or {}
        if _changed_state(reply) and message.get("ts"):
            await scenes.show_state(client, channel=channel, scene_ts=message["ts"], generation_id=generation_id,
                                    message=message, respond=respond)
        await post_scene_reply(client, services, reply, channel=channel, thread_ts=thread_ts, respond=respond)

    @logged
    async def handle_edit_button(body, action, client, respond) -> None:
        channel, thread_ts = _where(body)
        message = body.get("message") or {}
        scene, partial = screenplay_from_message(message) or ("", False)
        view = edit_modal(int(action["value"]), scene, channel_id=channel, message_ts=thread_ts, partial=partial,
                          scene_ts=message.get("ts"))
        # The trigger_id lives 3 seconds: open the modal before anything slow.
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except (SlackApiError, SlackClientError) as exc:
            error = api_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.info("views.open failed (%s); showing the scene to copy instead", error)
            await _edit_window_expired(client, respond, channel=channel, thread_ts=thread_ts,
                                       user_id=body["user"]["id"], scene=scene, partial=partial)

    async def check_edit_submission(ack, view) -> None:
        """Answered in the ack: an empty scene keeps the modal open with the error under the box."""
        if not parse_edit_submission(view).text.strip():
            await ack(response_action="errors",
                      errors={EDIT_BLOCK_ID: "The scene is empty; write something or cancel."})
        else:
            await ack()

    @logged
    async def handle_edit_submission(body, view, client) -> None:
        submission = parse_edit_submission(view)
        if not submission.text.strip():
            return  # refused in the ack
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
        reply = await record(services, invocation, generation_id=submission.generation_id, kind=ActionKind.EDIT,
                             edited_text=submission.text)
        if _changed_state(reply) and submission.scene_ts:
            # A modal carries no message: the scene message is read back from Slack.
            await scenes.show_state(client, channel=submission.channel, scene_ts=submission.scene_ts,
                                    thread_ts=submission.message_ts, generation_id=submission.generation_id)
        await post_reply(client, reply, channel=submission.channel, thread_ts=submission.message_ts)

    # Ack at once, work afterwards (lazy): see bot/slack/app.py.
    app.action(FEEDBACK_ACTIONS)(ack=acknowledge, lazy=[handle_feedback_button])
    app.action(action_id(ActionKind.EDIT))(ack=acknowledge, lazy=[handle_edit_button])
    app.view(EDIT_CALLBACK_ID)(ack=check_edit_submission, lazy=[handle_edit_submission])


def _changed_state(reply: Reply) -> bool:
    """Feedback was recorded (or had been): the scene's state is worth showing."""
    return not reply.is_error and "approval" in reply.metadata


async def _edit_window_expired(client, respond: Respond, *, channel: str, thread_ts: str | None, user_id: str,
                               scene: str, partial: bool) -> None:
    """Tell only the writer who clicked, in the scene's thread; the click's response_url
    is the way out where the bot may not post there."""
    blocks, text = edit_expired_blocks(scene, partial=partial)
    try:
        await client.chat_postEphemeral(channel=channel, user=user_id, thread_ts=thread_ts, blocks=blocks, text=text)
    except SlackClientError as exc:
        reason = api_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
        log.info("chat.postEphemeral failed (%s); answering through response_url", reason)
        await respond(blocks=blocks, text=text, response_type="ephemeral", replace_original=False)


def _where(body: dict) -> tuple[str, str | None]:
    """The channel of the clicked message and the thread to answer in (its own, or the one it is in)."""
    message = body.get("message") or {}
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    thread_ts = message.get("thread_ts") or message.get("ts") or container.get("message_ts")
    return channel, thread_ts


def _team(body: dict) -> str | None:
    return (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")

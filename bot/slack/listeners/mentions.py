"""`@writersroom …` mentions (Events API `app_mention`): follow-ups in a scene's thread.

Slack gives slash commands no thread, so direction for an existing scene comes as a
mention in that scene's thread; the core writes the next version with the scene as
context and it is posted in the same thread. A mention anywhere else gets help.
The event is acked at once; the follow-up runs afterwards as a lazy listener.
"""

from __future__ import annotations

import logging
import re

from slack_bolt.async_app import AsyncApp

from bot.core.followup import continue_thread
from bot.core.services import CoreServices
from bot.slack.posting import (
    RecentDeliveries,
    acknowledge,
    logged,
    message_ref,
    notify_in_thread,
    post_scene_reply,
    slack_invocation,
)

log = logging.getLogger(__name__)

_ANY_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def register(app: AsyncApp, services: CoreServices) -> None:
    recent = RecentDeliveries()

    @logged
    async def handle_mention(event, body, client, context) -> None:
        event_id = body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
        if not recent.first_time(event_id):
            log.info("dropping a second delivery of event %s", event_id)
            return
        if event.get("bot_id") or not event.get("user"):
            return  # another bot (or a message edit) mentioning us: nothing a writer asked
        channel = event["channel"]
        thread_ts = event.get("thread_ts")
        # Answer in the thread: the scene's, or a new one under the mention, so the channel stays quiet.
        answer_in = thread_ts or event["ts"]
        invocation = slack_invocation(
            team_id=body.get("team_id") or event.get("team"), channel_id=channel, user_id=event["user"],
            text=direction(event.get("text") or "", context.bot_user_id), thread_ts=thread_ts, delivery_id=event_id,
            notify=notify_in_thread(client, channel=channel, user=event["user"], thread_ts=answer_in),
        )
        reply = await continue_thread(services, invocation, root_ref=message_ref(channel, thread_ts or ""))
        await post_scene_reply(client, services, reply, channel=channel, thread_ts=answer_in)

    # Ack at once, work afterwards (lazy): see bot/slack/app.py.
    app.event("app_mention")(ack=acknowledge, lazy=[handle_mention])


def direction(text: str, bot_user_id: str | None) -> str:
    """The mention's text without the bot's own mention (or, unknown id, the leading mention)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    else:
        text = _ANY_MENTION.sub(" ", text, count=1)
    return " ".join(text.split())

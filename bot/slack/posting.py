"""Posting core replies into Slack, and running core calls so that nothing crashes a listener.

A reply goes out with chat.postMessage (blocks + a text fallback). Where the bot is not
a member of the channel, Slack refuses chat.postMessage; a slash command or a button
click still carries a `response_url`, so the reply goes there instead. A scene too long
for one section is attached in the message's thread as a .fountain file; where file
uploads are refused (no files:write scope), the full scene follows as code blocks.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.followup import remember_post
from bot.core.replies import Invocation, Reply
from bot.core.services import CoreServices
from bot.slack.blocks import Rendered, render_reply, screenplay_chunks

log = logging.getLogger(__name__)

# chat.postMessage errors for which the response_url is the way out.
_NOT_A_MEMBER = {"not_in_channel", "channel_not_found", "is_archived"}

Respond = Callable[..., Awaitable[object]]


def room_id(team_id: str | None, channel_id: str) -> str:
    """The store's room id: workspace and channel, as Slack names them."""
    return f"{team_id or '-'}:{channel_id}"


def api_error(exc: SlackApiError) -> str:
    """Slack's error code from a refused call (a proxy or outage may answer with no JSON at all)."""
    data = exc.response.data if exc.response is not None else None
    return str(data.get("error")) if isinstance(data, dict) else f"HTTP {getattr(exc.response, 'status_code', '?')}"


def message_ref(channel_id: str, ts: str) -> str:
    """The store's reference to a posted message (Generation.message_ref)."""
    return f"{channel_id}:{ts}"


def slack_invocation(*, team_id: str | None, channel_id: str, user_id: str, text: str,
                     user_name: str | None = None, channel_name: str | None = None,
                     thread_ts: str | None = None, delivery_id: str | None = None,
                     notify: Callable[[str], Awaitable[None]] | None = None) -> Invocation:
    return Invocation(platform="slack", room_id=room_id(team_id, channel_id), user_id=user_id, text=text,
                      user_name=user_name, room_name=channel_name, thread_id=thread_ts, delivery_id=delivery_id,
                      notify=notify)


def notify_by_response(respond: Respond) -> Callable[[str], Awaitable[None]]:
    """Tell the writer of a slash command something before the reply: an ephemeral message through
    the command's response_url, so only they see it and it needs no channel membership."""

    async def notify(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    return notify


def notify_in_thread(client: AsyncWebClient, *, channel: str, user: str,
                     thread_ts: str | None) -> Callable[[str], Awaitable[None]]:
    """Tell the writer of a mention something before the reply: an ephemeral message in the thread."""

    async def notify(text: str) -> None:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)

    return notify


async def acknowledge(ack) -> None:
    """The ack half of a listener whose work runs lazily: answer Slack, nothing else."""
    await ack()


def logged(listener: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Log a lazy listener's failure with its traceback (Bolt logs only the message)."""

    @functools.wraps(listener)  # Bolt reads the wrapped signature to pick the arguments
    async def run(**kwargs) -> None:
        try:
            await listener(**kwargs)
        except Exception:
            log.exception("%s failed", listener.__name__)
            raise

    return run


async def post_reply(client: AsyncWebClient, reply: Reply, *, channel: str, thread_ts: str | None = None,
                     respond: Respond | None = None) -> str | None:
    """Post `reply`; returns the message ts (None when it went through the response_url)."""
    rendered = render_reply(reply)
    try:
        response = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, blocks=rendered.blocks,
                                                 text=rendered.text, unfurl_links=False, unfurl_media=False)
    except SlackApiError as exc:
        if respond is None or api_error(exc) not in _NOT_A_MEMBER:
            raise
        log.info("chat.postMessage refused (%s); answering through response_url", api_error(exc))
        await respond(blocks=rendered.blocks, text=rendered.text, response_type="in_channel",
                      replace_original=False)
        return None
    ts = response.get("ts")
    if rendered.truncated and ts:
        await attach_full_scene(client, rendered, reply, channel=channel, thread_ts=thread_ts or ts)
    return ts


async def post_scene_reply(client: AsyncWebClient, services: CoreServices, reply: Reply, *, channel: str,
                           thread_ts: str | None = None, respond: Respond | None = None) -> str | None:
    """`post_reply`, then, for a scene, remember where it went: a follow-up in its thread finds it so."""
    ts = await post_reply(client, reply, channel=channel, thread_ts=thread_ts, respond=respond)
    if ts and reply.generation_id is not None and reply.actions:
        try:
            await remember_post(services, generation_id=reply.generation_id, message_ref=message_ref(channel, ts))
        except Exception:  # the scene is posted; only follow-ups in its thread would miss it
            log.exception("could not record where generation %s was posted", reply.generation_id)
    return ts


async def attach_full_scene(client: AsyncWebClient, rendered: Rendered, reply: Reply, *, channel: str,
                            thread_ts: str) -> str:
    """Upload the whole scene as a .fountain file in the thread; returns "file" or "messages"."""
    scene = rendered.full_screenplay or ""
    name = f"scene-{reply.generation_id}.fountain" if reply.generation_id is not None else "scene.fountain"
    try:
        await client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=scene, filename=name,
                                     title=name, initial_comment="The full scene, as a Fountain file.")
        return "file"
    except SlackClientError as exc:  # no files:write scope, uploads disabled, ...
        log.warning("file upload refused (%s); posting the full scene as messages", exc)
    chunks = screenplay_chunks(scene)
    for number, chunk in enumerate(chunks, 1):
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                      text=f"Full scene, part {number} of {len(chunks)}:\n{chunk}")
    return "messages"


class RecentDeliveries:
    """Delivery ids seen lately, to drop a second delivery of the same click in this process.

    The store dedupes feedback by delivery id durably; this also covers regenerate,
    which writes a new generation rather than a feedback row.
    """

    def __init__(self, maxlen: int = 4096) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._maxlen = maxlen

    def first_time(self, delivery_id: str) -> bool:
        if delivery_id in self._seen:
            return False
        self._seen[delivery_id] = None
        if len(self._seen) > self._maxlen:
            self._seen.popitem(last=False)
        return True

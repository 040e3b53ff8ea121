"""The approval state on a scene's own message: after every approve, reject or edit the
message is updated (chat.update) to say who did what, and once the room's quorum is met
the buttons give way to the state, so the scene cannot be approved again from there.

The state is read fresh from the store while holding a per-message lock: two clicks
landing together then update the message in turn, and the last update shows both.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.approval import current_state
from bot.core.services import CoreServices
from bot.slack.blocks import with_state
from bot.slack.posting import Respond, api_error

log = logging.getLogger(__name__)


class SceneMessages:
    def __init__(self, services: CoreServices, *, max_locks: int = 1024) -> None:
        self._services = services
        # Bounded rather than cleaned up on release: a lock dropped while a waiter still
        # holds it would let a newcomer run alongside that waiter.
        self._locks: OrderedDict[tuple[str, str], asyncio.Lock] = OrderedDict()
        self._max_locks = max_locks

    def _lock(self, channel: str, ts: str) -> asyncio.Lock:
        key = (channel, ts)
        lock = self._locks.pop(key, None) or asyncio.Lock()
        self._locks[key] = lock
        while len(self._locks) > self._max_locks:
            self._locks.popitem(last=False)
        return lock

    async def show_state(self, client: AsyncWebClient, *, channel: str, scene_ts: str, generation_id: int,
                         message: dict | None = None, thread_ts: str | None = None,
                         respond: Respond | None = None) -> bool:
        """Update the scene message at `scene_ts`; `message` is it as Slack last showed it
        (from a click), else it is fetched. False when it could not be updated."""
        async with self._lock(channel, scene_ts):
            if message is None:
                message = await fetch_message(client, channel=channel, ts=scene_ts, thread_ts=thread_ts)
                if message is None:
                    return False
            state = await current_state(self._services, generation_id)
            blocks = with_state(message.get("blocks") or [], state.describe(), keep_buttons=not state.approved)
            text = message.get("text") or state.describe()
            try:
                await client.chat_update(channel=channel, ts=scene_ts, blocks=blocks, text=text)
                return True
            except SlackClientError as exc:  # the feedback is recorded either way; only its display failed
                error = _reason(exc)
                if respond is None:
                    log.warning("could not show the approval state on %s/%s: %s", channel, scene_ts, error)
                    return False
            # A message the bot can no longer edit directly (it left the channel) can still be
            # replaced through the click's response_url.
            log.info("chat.update failed (%s); replacing the message through response_url", error)
            try:
                await respond(blocks=blocks, text=text, replace_original=True)
            except Exception:  # noqa: BLE001 - as above: a display failure must not stop the thread reply
                log.exception("could not show the approval state through response_url either")
                return False
            return True


async def fetch_message(client: AsyncWebClient, *, channel: str, ts: str, thread_ts: str | None) -> dict | None:
    """One message as Slack holds it now: a thread reply through conversations.replies,
    a top-level message through conversations.history (both need the history scope)."""
    try:
        if thread_ts and thread_ts != ts:
            response = await client.conversations_replies(channel=channel, ts=thread_ts, oldest=ts, latest=ts,
                                                          inclusive=True, limit=10)
        else:
            response = await client.conversations_history(channel=channel, oldest=ts, latest=ts, inclusive=True,
                                                          limit=1)
    except SlackClientError as exc:
        log.warning("could not read message %s/%s to update it: %s", channel, ts, _reason(exc))
        return None
    return next((message for message in response.get("messages") or () if message.get("ts") == ts), None)


def _reason(exc: SlackClientError) -> str:
    return api_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__

"""The one way into the core: every slash command, button, modal, mention, thread follow-up
and local-room line runs through `serve`.

    reply = await serve(services, invocation, "dialogue", lambda: handler(services, invocation))

`serve` does, once and in this order, what every entry needs: a request id (logs, and the
backend's logs through the chat client's header), the in-progress gauge, the channel
allowlist, the work itself, and then metrics and one log line by outcome. Anything the work
raises becomes a plain reply with the request id to quote; the exception, which may hold SQL,
host names or internal URLs, goes to the log only. A refusal raised deep inside the work
(`Refused`: the rate limit, checked where scenes are written) ends it with its own reply.

Training consent is applied in one place too, where the store selects what training may use
(store's approved-examples query), so no entry can forget it.
"""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

from bot.core.replies import Invocation, Reply, error_reply
from bot.core.services import CoreServices
from observability import metrics
from observability.request_id import request_scope

log = logging.getLogger(__name__)

FAILED_TITLE = "Something went wrong"


class Refused(Exception):
    """Stop the work and answer with ``reply`` (counted under ``outcome``, e.g. "rate_limited")."""

    def __init__(self, reply: Reply, *, outcome: str) -> None:
        super().__init__(outcome)
        self.reply = reply
        self.outcome = outcome


def failure_reply(request_id: str) -> Reply:
    """What a writer sees when something broke: no exception text, a request id for the admins."""
    return error_reply(FAILED_TITLE, "writersroom could not finish that, and nothing you wrote was lost. "
                                     "Try again in a moment; if it keeps failing, give a room admin this "
                                     f"request id: `{request_id}`.")


async def serve(services: CoreServices, invocation: Invocation, name: str,
                work: Callable[[], Awaitable[Reply]], *, check_channel: bool = True) -> Reply:
    """Run ``work`` for ``invocation`` under the pipeline; never raises.

    ``name`` labels the metrics and the log line ("dialogue", "approve", "follow_up", ...).
    ``check_channel=False`` for work that must answer wherever it is asked (none today but
    tests of the pipeline itself): the allowlist applies to everything else.
    """
    platform = invocation.platform
    with request_scope() as request_id:
        started = time.perf_counter()
        metrics.COMMANDS_IN_PROGRESS.labels(platform).inc()
        outcome = "failed"
        try:
            outcome, reply = await _run(services, invocation, work, check_channel=check_channel)
        except Exception:  # noqa: BLE001 - whatever broke below, the writer gets an answer
            log.exception("%s from %s:%s in %s failed", name, platform, invocation.user_id, invocation.room_id)
            reply = failure_reply(request_id)
        finally:
            seconds = time.perf_counter() - started
            metrics.COMMANDS_IN_PROGRESS.labels(platform).dec()
            metrics.COMMANDS.labels(platform, name, outcome).inc()
            metrics.COMMAND_SECONDS.labels(platform, name).observe(seconds)
        log.info("%s from %s:%s in %s answered %s in %.2f s", name, platform, invocation.user_id,
                 invocation.room_id, outcome, seconds)
        return reply


async def _run(services: CoreServices, invocation: Invocation, work: Callable[[], Awaitable[Reply]], *,
               check_channel: bool) -> tuple[str, Reply]:
    refused = services.policy.channel_refusal(invocation) if check_channel else None
    if refused:
        return "refused", refused
    try:
        reply = await work()
    except Refused as stop:
        return stop.outcome, stop.reply
    return ("error" if reply.is_error else "ok"), reply


def check_rate_limit(services: CoreServices, invocation: Invocation) -> None:
    """Raise Refused when this writer asked for too many scenes this minute (else count this one).

    Called by `dialogue.write_scene`, the one place every scene is written from: /dialogue,
    Regenerate and thread follow-ups all count against the same limit.
    """
    wait = services.limiter.retry_after(f"{invocation.platform}:{invocation.user_id}")
    if wait:
        limit = services.limiter.per_minute
        raise Refused(error_reply("Slow down", f"You can ask for {limit} scenes a minute; try again in {wait:.0f} s."),
                      outcome="rate_limited")

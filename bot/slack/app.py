"""The Bolt app: async, one AsyncWebClient pointed at settings.slack.api_url, listeners by group.

    app = build_app(settings, services)
    # then bot.slack.run.run_http(...) or run_socket_mode(...)

Acknowledgements never wait for work. Every listener is split Bolt's way into an ack
function and a lazy function: with process_before_response=True the ack function runs
inline in the request and its answer goes straight back to Slack, and each lazy function
(the core command, the posting) is started as its own asyncio task only then. Async Bolt
has no listener thread pool to exhaust (sync Bolt's default is 5 threads). Bolt's default
mode instead runs the whole listener as a task and polls for its ack every 10 ms, so when
many scenes start at once the acks wait behind the scenes' first steps:
benchmarks/slack_ack.py measured ack p50 ~60 ms that way against ~20 ms this way, for 32
concurrent /dialogue on a 2-core machine.
"""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.services import CoreServices
from bot.slack.listeners import actions, commands, mentions
from config.settings import Settings

log = logging.getLogger(__name__)

RETRY_HEADER = "x-slack-retry-num"


class SlackConfigError(ValueError):
    """A Slack setting the app needs is missing; the message names the variable."""


def build_app(settings: Settings, services: CoreServices, *, socket_mode: bool = False) -> AsyncApp:
    """An AsyncApp with every writersroom listener registered.

    In HTTP mode every request must carry Slack's signature (SLACK_SIGNING_SECRET);
    Socket Mode needs no signature, the app token authenticates the socket instead.
    """
    slack = settings.slack
    if slack.bot_token is None:
        raise SlackConfigError("SLACK_BOT_TOKEN is not set (the xoxb- bot token; environment only)")
    if not socket_mode and slack.signing_secret is None:
        raise SlackConfigError("SLACK_SIGNING_SECRET is not set (needed to verify requests from Slack)")
    client = AsyncWebClient(token=slack.bot_token.get_secret_value(), base_url=_with_slash(slack.api_url))
    app = AsyncApp(
        name="writersroom",
        client=client,
        signing_secret=slack.signing_secret.get_secret_value() if slack.signing_secret else "",
        request_verification_enabled=not socket_mode,
        # Only the ack functions run before the response; all work is lazy (see the module doc).
        process_before_response=True,
    )
    app.middleware(drop_retries)
    register(app, services)
    return app


def register(app: AsyncApp, services: CoreServices) -> None:
    """Every listener group; each module owns its own `register`."""
    commands.register(app, services)
    actions.register(app, services)
    mentions.register(app, services)


async def drop_retries(req, resp, next) -> BoltResponse | None:
    """Slack redelivers a request it thinks timed out (X-Slack-Retry-Num); the first
    delivery is already being handled, so ack the retry and do nothing else.

    Global middleware runs after Bolt's signature check, so a forged retry is still refused.
    """
    retry = req.headers.get(RETRY_HEADER)
    if retry:
        log.info("dropping Slack retry #%s (%s)", retry[0], (req.headers.get("x-slack-retry-reason") or ["?"])[0])
        return BoltResponse(status=200, body="")
    return await next()


def _with_slash(url: str) -> str:
    # slack_sdk joins base_url + method name: the base must end with a slash.
    return url if url.endswith("/") else url + "/"

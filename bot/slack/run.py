"""Run the Slack bot: over HTTP (Slack POSTs to /slack/events) or over Socket Mode.

    from bot.cli.runtime import build_services
    from config.settings import load_settings
    settings = load_settings()
    run_http(settings, build_services(settings))      # or run_socket_mode(settings, ...)

HTTP mode needs a public URL configured in the Slack app for slash commands and
interactivity; Socket Mode needs only the app-level token (SLACK_APP_TOKEN, xapp-).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.core.services import CoreServices
from bot.slack.app import SlackConfigError, build_app
from config.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


async def start_http(app: AsyncApp, *, host: str = "0.0.0.0", port: int = 3000,
                     path: str = EVENTS_PATH) -> web.AppRunner:
    """Serve `app` on host:port in the running loop; returns the runner (`await runner.cleanup()` stops it)."""
    runner = web.AppRunner(app.web_app(path=path, port=port), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful with port=0)."""
    for address in runner.addresses:
        return address[1]
    raise RuntimeError("the server is not listening")


async def serve_http(settings: Settings, services: CoreServices, *, port: int | None = None,
                     host: str = "0.0.0.0", checks: dict | None = None) -> None:
    """Serve until cancelled; `checks` (readiness) gets a "slack" entry once listening."""
    app = build_app(settings, services)
    runner = await start_http(app, host=host, port=settings.slack.port if port is None else port)
    listening = bound_port(runner)
    log.info("Slack bot listening on http://%s:%s%s", host, listening, EVENTS_PATH)
    if checks is not None:
        checks["slack"] = lambda: f"listening on port {listening}"
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run_http(settings: Settings, services: CoreServices, *, port: int | None = None, host: str = "0.0.0.0") -> None:
    """Blocking: serve /slack/events until interrupted."""
    try:
        asyncio.run(serve_http(settings, services, port=port, host=host))
    except KeyboardInterrupt:
        pass


async def start_socket_mode(settings: Settings, services: CoreServices) -> AsyncSocketModeHandler:
    """Connect over Socket Mode in the running loop; `await handler.close_async()` disconnects.

    The socket URL comes from apps.connections.open on settings.slack.api_url.
    """
    if settings.slack.app_token is None:
        raise SlackConfigError("SLACK_APP_TOKEN is not set (the xapp- app-level token for Socket Mode)")
    app = build_app(settings, services, socket_mode=True)
    handler = AsyncSocketModeHandler(app, settings.slack.app_token.get_secret_value())
    await handler.connect_async()
    return handler


async def serve_socket_mode(settings: Settings, services: CoreServices, *, checks: dict | None = None) -> None:
    """Handle events over Socket Mode until cancelled (the client reconnects by itself)."""
    handler = await start_socket_mode(settings, services)
    if checks is not None:
        checks["slack"] = lambda: socket_connected(handler)
    try:
        await asyncio.Event().wait()
    finally:
        await handler.close_async()


def socket_connected(handler: AsyncSocketModeHandler) -> str:
    """For readiness (from another thread, so no awaiting the client's own async is_connected)."""
    client = handler.client
    session = client.current_session
    if client.closed or session is None or session.closed:
        raise RuntimeError("Socket Mode connection to Slack is down (the client keeps reconnecting)")
    return "Socket Mode connected"


def run_socket_mode(settings: Settings, services: CoreServices) -> None:
    """Blocking: Socket Mode until interrupted."""
    try:
        asyncio.run(serve_socket_mode(settings, services))
    except KeyboardInterrupt:
        pass

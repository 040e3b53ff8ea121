"""A Slack room on loopback: the Web API emulator, the real Bolt app over HTTP, a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.slack.app import build_app
from bot.slack.run import bound_port, start_http
from emulators.core_services import make_core_services
from emulators.openai_backend import FakeBackend
from emulators.slack import LoopThread, SlackSender, SlackWebApi

BOT_TOKEN = "xoxb-1-writersroom-test"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP_TOKEN = "xapp-1-writersroom-test"


class SlackRoom:
    def __init__(self, tmp_path: Path, backend_url: str, **settings: dict) -> None:
        self.loop = LoopThread()
        self.api = SlackWebApi(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        self._api_runner = self.loop.run(_serve(self.api.web_app()))
        self.api.base_url = f"http://127.0.0.1:{bound_port(self._api_runner)}"
        self.services = make_core_services(tmp_path, backend_url, slack={
            "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "app_token": APP_TOKEN, "api_url": f"{self.api.base_url}/api/",
        }, **settings)
        self._bot_runner: web.AppRunner | None = None
        self.sender = SlackSender(events_url="", signing_secret=SIGNING_SECRET, response_base=self.api.base_url)
        self.start_bot()

    def start_bot(self) -> None:
        """(Re)start the Bolt app on a fresh port, as a restarted process would: no memory kept."""
        if self._bot_runner is not None:
            self.loop.run(self._bot_runner.cleanup())

        async def start() -> web.AppRunner:
            app = build_app(self.services.settings, self.services)
            return await start_http(app, host="127.0.0.1", port=0)

        self._bot_runner = self.loop.run(start())
        self.sender.events_url = f"http://127.0.0.1:{bound_port(self._bot_runner)}/slack/events"

    def close(self) -> None:
        if self._bot_runner is not None:
            self.loop.run(self._bot_runner.cleanup())
        self.loop.run(self._api_runner.cleanup())
        self.loop.close()


async def _serve(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="127.0.0.1", port=0).start()
    return runner


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    with FakeBackend() as fake:
        yield fake


@pytest.fixture
def open_room(tmp_path: Path) -> Iterator:
    """open_room(backend_url, room={...}) -> SlackRoom with those settings sections; closed after the test."""
    rooms: list[SlackRoom] = []

    def open_(backend_url: str, **settings: dict) -> SlackRoom:
        home = tmp_path / f"room{len(rooms)}"
        home.mkdir()
        room = SlackRoom(home, backend_url, **settings)
        rooms.append(room)
        return room

    yield open_
    for room in rooms:
        room.close()


@pytest.fixture
def room(open_room, backend: FakeBackend) -> SlackRoom:
    return open_room(backend.url)

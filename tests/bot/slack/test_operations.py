"""What an operator sees of a running Slack bot: one request id from the slash command to the
backend's log, the bot's probes and its metrics — the real Bolt app and the real backend app
(a tiny model) over loopback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time

import httpx
import pytest

from backend.app import create_app
from bot.cli.launcher import run_slack, with_ops
from emulators.servers import free_port, serve_asgi
from emulators.slack import message_of
from observability.logs import configure_logging
from tests.bot.slack.helpers import buttons, post_scene
from tests.support.tiny_lm import build_tiny_chat_model

SHORT = {"max_tokens": 24}  # a tiny random model: what it writes does not matter here, only that it answers


@pytest.fixture(scope="module")
def real_backend(tmp_path_factory):
    from backend.generator import ChatGenerator

    generator = ChatGenerator(build_tiny_chat_model(tmp_path_factory.mktemp("tiny-lm"), context_window=2048), name="tiny", device="cpu")
    with serve_asgi(create_app(generator)) as url:
        yield f"{url}/v1"


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = configure_logging("INFO", "json", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_ready(url: str, timeout_s: float = 15) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.get(f"{url}/readyz")
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_one_request_id_follows_a_slash_command_into_the_backend_log(open_room, real_backend, json_log):
    room = open_room(real_backend, generation=SHORT)
    call = post_scene(room)
    assert buttons(call), "the scene was posted"
    lines = json_log()
    command = next(line for line in lines if line["message"].startswith("dialogue from slack:"))
    backend_side = [line for line in lines if line["logger"] == "backend.app"
                    and line["message"].startswith("chat completion for tiny: ok")]
    bot_side = [line for line in lines if line["logger"] == "llm.client"]
    assert backend_side and bot_side
    assert command["request_id"] != "-"
    assert {line["request_id"] for line in backend_side + bot_side} == {command["request_id"]}


def test_backend_echoes_a_sane_request_id_and_replaces_a_forged_one(real_backend):
    health = real_backend.removesuffix("/v1")
    assert httpx.get(f"{health}/healthz", headers={"X-Request-ID": "ops-check-1"}).headers["x-request-id"] == "ops-check-1"
    forged = httpx.get(f"{health}/healthz", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"]
    assert forged != "a b\tc" and re.fullmatch(r"[0-9a-f]{16}", forged)
    ready = httpx.get(f"{health}/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == ["tiny"]


def test_probes_and_metrics_of_the_slack_bot(open_room, real_backend):
    ops_port, slack_port = free_port(), free_port()
    room = open_room(real_backend, generation=SHORT, ops={"host": "127.0.0.1", "bot_port": ops_port})
    settings, services = room.services.settings, room.services
    running = asyncio.run_coroutine_threadsafe(
        with_ops(settings, services, lambda checks: run_slack(settings, services, port=slack_port, checks=checks)),
        room.loop.loop)
    ops = f"http://127.0.0.1:{ops_port}"
    try:
        ready = wait_ready(ops)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["store"]["ok"] and checks["slack"]["detail"] == f"listening on port {slack_port}"
        assert ready.json()["info"]["backend"]["detail"].startswith("1 model(s): tiny")
        assert httpx.get(f"{ops}/healthz").json()["checks"]["event_loop"]["ok"]

        before = httpx.get(f"{ops}/metrics").text
        room.sender.events_url = f"http://127.0.0.1:{slack_port}/slack/events"
        call = post_scene(room)
        room.sender.block_action("wr_approve", buttons(call)["wr_approve"], message=message_of(call))
        room.api.wait_for("chat.update")
        after = httpx.get(f"{ops}/metrics").text
        for name, labels in [
            ("writersroom_bot_commands_total", {"platform": "slack", "command": "dialogue", "outcome": "ok"}),
            ("writersroom_bot_command_seconds_count", {"platform": "slack", "command": "dialogue"}),
            ("writersroom_bot_feedback_total", {"platform": "slack", "kind": "approve"}),
            ("writersroom_bot_scenes_approved_total", {"platform": "slack"}),
        ]:
            assert sample(after, name, **labels) == sample(before, name, **labels) + 1, name
        assert sample(after, "writersroom_bot_backend_requests_total", outcome="ok") > \
            sample(before, "writersroom_bot_backend_requests_total", outcome="ok")
        assert sample(after, "writersroom_bot_completion_tokens_total", model="tiny") > \
            sample(before, "writersroom_bot_completion_tokens_total", model="tiny")
        assert sample(after, "writersroom_bot_commands_in_progress", platform="slack") == 0
    finally:
        running.cancel()
    with pytest.raises(httpx.TransportError):  # stopping the bot stops its probes too
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            httpx.get(f"{ops}/healthz", timeout=0.5)
            time.sleep(0.1)


def test_socket_mode_readiness_follows_the_connection(room):
    from bot.slack.run import socket_connected, start_socket_mode

    handler = room.loop.run(start_socket_mode(room.services.settings, room.services))
    room.api.wait_for("apps.connections.open")
    deadline = time.monotonic() + 10
    while True:  # the websocket opens just after apps.connections.open answers
        try:
            assert socket_connected(handler) == "Socket Mode connected"
            break
        except RuntimeError:
            assert time.monotonic() < deadline, "never connected"
            time.sleep(0.05)
    room.loop.run(handler.close_async())
    with pytest.raises(RuntimeError, match="Socket Mode connection to Slack is down"):
        socket_connected(handler)

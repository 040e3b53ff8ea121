"""The Discord bot's probes and metrics: ready only while connected to the gateway, with the
unmodified discord.py against the loopback emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from bot.cli.launcher import run_discord, with_ops
from bot.discord.views import parse_custom_id
from emulators.openai_backend import FakeBackend
from emulators.servers import free_port
from tests.bot.discord.harness import SITUATION, TOKEN, button_ids, discord_room

pytestmark = pytest.mark.timeout(90)


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url)


async def _until(predicate, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_ready_once_connected_counts_commands_and_stops_with_the_bot(tmp_path: Path) -> None:
    port = free_port()
    ops = f"http://127.0.0.1:{port}"

    async def scenario() -> None:
        with FakeBackend() as backend:
            async with discord_room(tmp_path, backend, discord={"bot_token": TOKEN},
                                    ops={"host": "127.0.0.1", "bot_port": port}) as (emulator, services):
                settings = services.settings
                running = asyncio.create_task(
                    with_ops(settings, services, lambda checks: run_discord(settings, services, checks=checks)))

                async def ready() -> bool:
                    try:
                        return (await _get(f"{ops}/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await _until(ready)
                body = (await _get(f"{ops}/readyz")).json()
                assert body["checks"]["discord"]["detail"].startswith("connected as")
                assert body["info"]["backend"]["ok"]

                interaction = await emulator.command("dialogue", situation=SITUATION)
                message = (await emulator.followup_for(interaction)).message
                assert parse_custom_id(button_ids(message)[0])[1] > 0
                metrics = (await _get(f"{ops}/metrics")).text
                assert 'writersroom_bot_commands_total{command="dialogue",outcome="ok",platform="discord"}' in metrics

                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                with pytest.raises(httpx.TransportError):
                    await _get(f"{ops}/healthz")

    asyncio.run(scenario())

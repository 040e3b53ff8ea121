"""A scene waiting in the generation backend's queue: the writer's "… is thinking" message
says their place in line before the scene comes, and gives way to the scene once it does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulators.discord import LOADING
from emulators.openai_backend import FakeBackend
from tests.bot.discord.harness import SITUATION, button_ids, discord_room, running_bot

pytestmark = pytest.mark.timeout(60)


def test_a_queued_dialogue_shows_its_place_on_the_thinking_message_before_the_scene(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend(held=True, queue_positions=(3,)) as backend:
            try:
                async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                    interaction_id = await emulator.command("dialogue", situation=SITUATION)
                    assert (await emulator.callback_for(interaction_id)).type == 5  # "… is thinking"
                    notice = await emulator.wait_for(
                        lambda: next((m for m in emulator.edits if "3rd in line" in m["content"]), None))
                    assert emulator.followups == []  # the scene is still held: the notice came first
                    assert "2 requests are ahead of it" in notice["content"]
                    assert not notice["flags"] & LOADING  # shown in place of "… is thinking"
                    backend.release()

                    scene = (await emulator.followup_for(interaction_id)).message
                    assert "You sold us out, Cole." in scene["embeds"][0]["description"]
                    assert button_ids(scene)  # the scene, with its buttons, as always
                    # The stale notice goes once the scene is there.
                    await emulator.wait_for(lambda: int(notice["id"]) not in emulator.messages)
                    assert int(scene["id"]) in emulator.messages
                    assert [edit["content"] for edit in emulator.edits] == [notice["content"]]  # told once
            finally:
                backend.release()

    asyncio.run(scenario())


def test_without_queue_reports_the_thinking_message_is_left_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend() as backend:
            async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                interaction_id = await emulator.command("dialogue", situation=SITUATION)
                scene = (await emulator.followup_for(interaction_id)).message
                assert "You sold us out, Cole." in scene["embeds"][0]["description"]
                assert emulator.edits == []
                # The bot neither edited nor deleted it: on Discord the scene, as the first followup, takes its place.
                assert [m for m in emulator.messages.values() if m["flags"] & LOADING]

    asyncio.run(scenario())

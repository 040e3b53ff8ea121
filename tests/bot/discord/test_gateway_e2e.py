"""The real discord.py, unmodified, against the loopback Discord emulator and the fake backend.

Each test starts the emulator, points the bot's REST base at it (the gateway URL comes
from the emulator's GET /gateway/bot), and drives interactions over the gateway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.replies import ActionKind
from bot.discord.render import COLOUR_ERROR, SCENE_FILENAME
from bot.discord.views import custom_id, parse_custom_id
from emulators.core_services import make_core_services
from emulators.discord import DiscordEmulator
from emulators.openai_backend import CANNED_SCENE, FakeBackend
from store import generations
from store.db import session_scope
from tests.bot.discord.harness import (
    SITUATION,
    button_ids,
    discord_room,
    running_bot,
    summary,
)

pytestmark = pytest.mark.timeout(60)


def test_dialogue_defers_then_follows_up_with_scene_and_buttons(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend() as backend:
            async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                synced = emulator.commands[str(emulator.guild_id)]
                assert {command["name"] for command in synced} == {"dialogue", "similar", "recommend", "style", "room",
                                                                    "wr-help"}
                assert emulator.unhandled == []

                interaction_id = await emulator.command("dialogue", situation=SITUATION, tone="noir")
                callback = await emulator.callback_for(interaction_id)
                assert callback.type == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "is thinking…"
                followup = await emulator.followup_for(interaction_id)

                embed = followup.message["embeds"][0]
                assert embed["description"].startswith("```fountain\n")
                assert "You sold us out, Cole." in embed["description"]
                assert any(field["name"] == "Drawn on" for field in embed.get("fields", []))
                ids = button_ids(followup.message)
                kinds_and_ids = [parse_custom_id(value) for value in ids]
                generation_id = kinds_and_ids[0][1]
                assert [kind for kind, _ in kinds_and_ids] == list(ActionKind)
                assert ids == [custom_id(kind, generation_id) for kind in ActionKind]
                assert "tone: noir" in backend.requests[-1]["messages"][-1]["content"].lower() or \
                    "noir" in str(backend.requests[-1]["messages"]).lower()
                with session_scope(services.sessions) as session:
                    generation = generations.get_generation(session, generation_id=generation_id)
                    assert generation is not None and "You sold us out" in generation.output
                    assert generation.room.external_id == f"{emulator.guild_id}:{emulator.channel_id}"

    asyncio.run(scenario())


def test_approve_click_after_restart_records_one_approval(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend() as backend:
            async with discord_room(tmp_path, backend) as (emulator, services):
                async with running_bot(emulator, services):
                    first = await emulator.command("dialogue", situation=SITUATION)
                    message = (await emulator.followup_for(first)).message
                generation_id = parse_custom_id(button_ids(message)[0])[1]

                async with running_bot(emulator, services):  # a new process: nothing of the old view is in memory
                    assert emulator.identifies == 2
                    click = await emulator.click(message, custom_id(ActionKind.APPROVE, generation_id))
                    assert (await emulator.callback_for(click)).type == 6  # the answer is the scene message, updated
                    answer = (await emulator.followup_for(click)).message
                    assert f"approved generation {generation_id}" in answer["embeds"][0]["description"]
                    assert answer["flags"] & 64  # told to the clicker alone
                    again = await emulator.click(message, custom_id(ActionKind.APPROVE, generation_id))
                    assert "already" in (await emulator.followup_for(again)).message["embeds"][0]["description"]

                recorded = summary(services, generation_id)
                assert recorded.approvals == 1 and recorded.rejections == 0
                assert recorded.approvers == ["Maya"]

    asyncio.run(scenario())


def test_edit_opens_prefilled_modal_and_records_edit(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend() as backend:
            async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                first = await emulator.command("dialogue", situation=SITUATION)
                message = (await emulator.followup_for(first)).message
                generation_id = parse_custom_id(button_ids(message)[0])[1]

                click = await emulator.click(message, custom_id(ActionKind.EDIT, generation_id))
                modal = await emulator.callback_for(click)
                assert modal.type == 9  # MODAL
                assert modal.data["custom_id"] == f"wr:edit-modal:{generation_id}:{click}"
                text_inputs = [c for row in modal.data["components"]
                               for c in ([row["component"]] if "component" in row else row["components"])]
                assert "You sold us out, Cole." in text_inputs[0]["value"]

                edited = CANNED_SCENE.replace("You sold us out", "You sold me out")
                submit = await emulator.submit_modal(modal.data, {text_inputs[0]["custom_id"]: edited}, message)
                assert (await emulator.callback_for(submit)).type == 6
                answer = (await emulator.followup_for(submit)).message["embeds"][0]["description"]
                assert "edited and approved" in answer
                recorded = summary(services, generation_id)
                assert recorded.edits == 1 and recorded.latest_edit == edited

    asyncio.run(scenario())


def test_regenerate_and_similar_and_help(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend() as backend:
            async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                first = await emulator.command("dialogue", situation=SITUATION)
                message = (await emulator.followup_for(first)).message
                generation_id = parse_custom_id(button_ids(message)[0])[1]

                click = await emulator.click(message, custom_id(ActionKind.REGENERATE, generation_id))
                again = (await emulator.followup_for(click)).message
                new_id = parse_custom_id(button_ids(again)[0])[1]
                assert new_id != generation_id
                assert "You sold us out" in again["embeds"][0]["description"]

                similar = await emulator.command("similar", text="BOB boots up in the lab")
                embed = (await emulator.followup_for(similar)).message["embeds"][0]
                assert embed["fields"][0]["name"].startswith("1. Cyber Bob: Episode 1")
                assert (await emulator.followup_for(similar)).message["components"] == []

                help_ = await emulator.command("wr-help")
                assert "/dialogue" in (await emulator.followup_for(help_)).message["embeds"][0]["description"]
                status = await emulator.command("room", action="status")
                assert "Scenes written: 2" in (await emulator.followup_for(status)).message["embeds"][0]["description"]
                # one click, one answer: the dynamic item is the only handler of the button
                assert [f.token for f in emulator.followups].count(f"token-{click}") == 1
                assert len(backend.requests) == 2

    asyncio.run(scenario())


def test_long_scene_is_attached_as_a_file(tmp_path: Path) -> None:
    long_scene = "\n\n".join(f"MAYA\nLine {n} of a very long argument in the rain." for n in range(200))
    long_scene = "EXT. ALLEY - NIGHT\n\n" + long_scene

    async def scenario() -> None:
        with FakeBackend(scene=long_scene) as backend:
            async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                first = await emulator.command("dialogue", situation=SITUATION)
                followup = await emulator.followup_for(first)
                assert len(followup.message["embeds"][0]["description"]) <= 4096
                assert followup.message["attachments"][0]["filename"] == SCENE_FILENAME
                assert "Line 199 of a very long argument" in followup.files[SCENE_FILENAME].decode()
                generation_id = parse_custom_id(button_ids(followup.message)[0])[1]  # the buttons are still there

                click = await emulator.click(followup.message, custom_id(ActionKind.EDIT, generation_id))
                refusal = await emulator.callback_for(click)
                assert refusal.type == 4 and refusal.data["flags"] & 64  # an ephemeral message, not a modal
                assert "cannot be edited here" in refusal.data["content"]

    asyncio.run(scenario())


def test_backend_down_shows_a_clear_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with FakeBackend(fail_with=503) as backend:
            async with discord_room(tmp_path, backend) as (emulator, services), running_bot(emulator, services):
                interaction_id = await emulator.command("dialogue", situation=SITUATION)
                assert (await emulator.callback_for(interaction_id)).type == 5
                message = (await emulator.followup_for(interaction_id)).message
                embed = message["embeds"][0]
                assert embed["color"] == COLOUR_ERROR.value
                assert "generation backend" in embed["description"]
                assert "503" in embed["description"]
                assert message["components"] == []

    asyncio.run(scenario())


def test_backend_unreachable_still_answers(tmp_path: Path) -> None:
    """Not even the model list answers: the writer still gets the core's clear message."""
    async def scenario() -> None:
        async with DiscordEmulator() as emulator:
            services = make_core_services(tmp_path, "http://127.0.0.1:9/v1",
                                          discord={"api_url": emulator.api_url, "guild_id": emulator.guild_id})
            async with running_bot(emulator, services):
                interaction_id = await emulator.command("dialogue", situation=SITUATION)
                embed = (await emulator.followup_for(interaction_id)).message["embeds"][0]
                assert embed["color"] == COLOUR_ERROR.value
                assert "is not reachable right now" in embed["description"]
                assert "127.0.0.1" not in embed["description"]  # where the backend runs is not the room's business

    asyncio.run(scenario())

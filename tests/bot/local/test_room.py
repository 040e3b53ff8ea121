"""The local room drives the same core as the bots."""

from __future__ import annotations

import asyncio

from bot.local.render import render_text
from bot.local.room import LocalRoom
from emulators.core_services import make_core_services
from emulators.openai_backend import FakeBackend
from store import feedback
from store.db import session_scope


def test_dialogue_then_approve_edit_and_similar(tmp_path):
    with FakeBackend() as backend:
        services = make_core_services(tmp_path, backend.url)
        room = LocalRoom(services, user_id="ana")
        scene = asyncio.run(room.handle("/dialogue a detective corners her partner characters: Maya, Cole"))
        shown = render_text(scene)
        assert "  MAYA" in shown and "/approve" in shown and f"[generation {scene.generation_id}]" in shown

        approved = asyncio.run(room.handle("/approve"))
        assert "ana approved generation" in approved.text

        edit = asyncio.run(room.handle("/edit", read_more=lambda: iter(["EXT. ALLEY - NIGHT", "", "MAYA", "Run."])))
        assert "Edits: 1" in edit.text

        found = render_text(asyncio.run(room.handle("/similar a robot boots up in a lab")))
        assert "1. Cyber Bob: Episode 1" in found

    with session_scope(services.sessions) as session:
        examples = feedback.approved_examples(session)
    assert examples[0].text == "EXT. ALLEY - NIGHT\n\nMAYA\nRun."


def test_acting_before_any_scene_explains_what_to_do(tmp_path):
    services = make_core_services(tmp_path, "http://127.0.0.1:9/v1")
    reply = asyncio.run(LocalRoom(services).handle("/approve"))
    assert reply.is_error and "/dialogue first" in reply.text

"""Follow-ups below the platforms: the next version of a scene, written with the scene as
context, recorded as its child, found again from the thread it was posted in."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.commands import dispatch
from bot.core.followup import continue_thread, follow_up, remember_post
from bot.core.replies import Invocation
from emulators.core_services import make_core_services
from emulators.openai_backend import CANNED_SCENE, FakeBackend
from screenplay.prompting import merged_request, parse_dialogue_request, prompt_text
from store import generations
from store.db import session_scope


@pytest.fixture
def backend():
    with FakeBackend() as fake:
        yield fake


@pytest.fixture
def services(tmp_path, backend):
    return make_core_services(tmp_path, backend.url)


def say(text: str, thread: str | None = None, room: str = "G1:C1") -> Invocation:
    return Invocation(platform="discord", room_id=room, user_id="U1", user_name="maya", text=text, thread_id=thread)


def run(coroutine):
    return asyncio.run(coroutine)


def test_direction_keeps_the_scene_and_adds_what_it_names():
    request = merged_request("a heist goes wrong characters: Ann, Bo tone: farce",
                             "Bo panics characters: Cy tone: bleak")
    assert request.situation == "a heist goes wrong"
    assert request.characters == ("ANN", "BO", "CY") and request.tone == "bleak"
    assert parse_dialogue_request(prompt_text(request)) == request  # what Regenerate re-reads


def test_follow_up_is_a_child_written_with_the_scene_as_context(services, backend):
    scene = run(dispatch(services, "dialogue", say("a robot boots up in a lab characters: Maya, Cole")))
    reply = run(follow_up(services, say("Cole refuses to help", thread="T-1"), parent_id=scene.generation_id))
    assert not reply.is_error and reply.actions and reply.title == "Follow-up: Cole refuses to help"
    messages = backend.requests[-1]["messages"]
    assert {"role": "assistant", "content": CANNED_SCENE} in messages
    assert "Cole refuses to help" in messages[-2]["content"] and messages[-2]["role"] == "user"
    assert messages[-1]["role"] == "assistant"  # the opening given to the model: heading and first cue
    with session_scope(services.sessions) as session:
        child = generations.get_generation(session, generation_id=reply.generation_id)
        assert (child.parent_id, child.thread_ref) == (scene.generation_id, "T-1")
        assert child.prompt == "a robot boots up in a lab. Then: Cole refuses to help characters: MAYA, COLE"


def test_the_thread_finds_its_newest_scene(services):
    scene = run(dispatch(services, "dialogue", say("a robot boots up")))
    run(remember_post(services, generation_id=scene.generation_id, message_ref="C1:100.1"))
    first = run(continue_thread(services, say("louder", thread="100.1"), root_ref="C1:100.1"))
    second = run(continue_thread(services, say("softer", thread="100.1"), root_ref="C1:100.1"))
    with session_scope(services.sessions) as session:
        assert generations.get_generation(session, generation_id=first.generation_id).parent_id == scene.generation_id
        assert generations.get_generation(session, generation_id=second.generation_id).parent_id == first.generation_id
    elsewhere = run(continue_thread(services, say("louder", thread="100.1", room="G1:C2"), root_ref="C2:100.1"))
    no_thread = run(continue_thread(services, say("louder"), root_ref="C1:"))
    for reply in (elsewhere, no_thread):
        assert not reply.is_error and "Mention me in the thread of a scene" in reply.text


def test_bad_follow_ups_get_clear_messages(services, backend):
    scene = run(dispatch(services, "dialogue", say("a robot boots up")))
    assert "Say what to change" in run(follow_up(services, say("  "), parent_id=scene.generation_id)).text
    long = run(follow_up(services, say("x" * 2000), parent_id=scene.generation_id))
    assert long.is_error and "the limit is 1,500" in long.text
    missing = run(follow_up(services, say("louder"), parent_id=999))
    assert missing.is_error and "999 does not exist" in missing.text
    backend.fail_with = 503
    down = run(follow_up(services, say("louder"), parent_id=scene.generation_id))
    assert down.is_error and "503" in down.text

"""The core commands end to end below the platforms: a real SQLite store, a loopback
OpenAI-compatible fake backend (the real one is tested in tests/backend)."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.commands import dispatch
from bot.core.feedback import record
from bot.core.replies import ActionKind, Invocation, SectionKind
from emulators.core_services import make_core_services
from emulators.openai_backend import CANNED_SCENE, FakeBackend
from store import feedback, generations
from store.db import session_scope


@pytest.fixture
def backend():
    with FakeBackend() as fake:
        yield fake


@pytest.fixture
def services(tmp_path, backend):
    return make_core_services(tmp_path, backend.url)


def ask(text: str, user: str = "U1", delivery: str | None = None) -> Invocation:
    return Invocation(platform="slack", room_id="T1:C1", user_id=user, user_name=user.lower(), text=text,
                      delivery_id=delivery)


def run(coroutine):
    return asyncio.run(coroutine)


def test_dialogue_answers_with_a_scene_buttons_and_sources(services, backend):
    reply = run(dispatch(services, "dialogue", ask("a robot boots up in a lab characters: Maya, Cole tone: wry")))
    assert not reply.is_error
    assert reply.sections[0].kind is SectionKind.SCREENPLAY
    assert reply.sections[0].body == CANNED_SCENE and len(reply.sections) == 1  # valid, original: no warning
    assert [action.kind for action in reply.actions] == list(ActionKind)
    assert {action.value for action in reply.actions} == {str(reply.generation_id)}
    assert reply.citations[0].title == "Cyber Bob: Episode 1"
    sent = backend.requests[0]
    assert sent["model"] == "fake-model" and sent["temperature"] == 0.7 and sent["repetition_penalty"] == 1.05
    assert "Characters: MAYA, COLE" in sent["messages"][-2]["content"]
    # the answer is begun for the model with the heading (vLLM's continue_final_message); the scene
    # grammar takes it from there, MAYA first since she was named first
    assert sent["messages"][-1] == {"role": "assistant", "content": "INT. LAB - DAY\n\n"}
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert 'block_0: "MAYA"' in sent["structured_outputs"]["grammar"]
    assert len(backend.requests) == 1  # valid at once: no retry
    with session_scope(services.sessions) as session:
        generation = generations.get_generation(session, generation_id=reply.generation_id)
        assert generation.output == CANNED_SCENE
        assert generation.retrieved_scene_ids[0] == "cyber-bob-ep00001#0.0"
        assert generation.model == "fake-model" and generation.adapter is None
        assert generation.parameters["attempts"] == 1 and generation.parameters["validation"]["valid"]


def test_empty_and_oversized_prompts_get_a_clear_message_and_record_nothing(services, backend):
    empty = run(dispatch(services, "dialogue", ask("   ")))
    huge = run(dispatch(services, "dialogue", ask("x" * 5000)))
    assert empty.is_error and "Describe the situation" in empty.text
    assert huge.is_error and "limit is 1,500" in huge.text
    assert backend.requests == []


def test_backend_down_is_a_message_not_a_crash(tmp_path):
    services = make_core_services(tmp_path, "http://127.0.0.1:9/v1")
    reply = run(dispatch(services, "dialogue", ask("two sisters argue")))  # fails already listing models
    services.model_name = "any"
    named = run(dispatch(services, "dialogue", ask("two sisters argue")))  # fails on the completion
    assert reply.is_error and "not reachable" in reply.text
    assert named.is_error and "not reachable" in named.text


def test_backend_error_status_is_shown(tmp_path):
    with FakeBackend(fail_with=503) as failing:
        services = make_core_services(tmp_path, failing.url)
        reply = run(dispatch(services, "dialogue", ask("two sisters argue")))
    assert reply.is_error and "503" in reply.text and "backend unavailable" in reply.text


def test_double_approval_counts_once_and_two_approvers_count_twice(services):
    scene = run(dispatch(services, "dialogue", ask("a robot boots up")))
    first = run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    again = run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    other = run(record(services, ask("", user="U2"), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    assert first.metadata["created"] and not again.metadata["created"]
    assert "already approved" in again.text
    assert "Approvals: 2" in other.text


def test_an_edit_is_an_approval_whose_text_is_used_for_training(services):
    scene = run(dispatch(services, "dialogue", ask("a robot boots up")))
    edited = "INT. LAB - NIGHT\n\nBOB\nI am awake."
    reply = run(record(services, ask("", delivery="d-1"), generation_id=scene.generation_id, kind=ActionKind.EDIT,
                       edited_text=edited))
    redelivered = run(record(services, ask("", delivery="d-1"), generation_id=scene.generation_id,
                             kind=ActionKind.EDIT, edited_text=edited))
    assert "Edits: 1" in reply.text and "Approvals: 1" in reply.text
    assert not redelivered.metadata["created"]
    with session_scope(services.sessions) as session:
        examples = feedback.approved_examples(session)
    assert [example.text for example in examples] == [edited]


def test_empty_edit_records_nothing(services):
    scene = run(dispatch(services, "dialogue", ask("a robot boots up")))
    reply = run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.EDIT, edited_text=" "))
    assert reply.is_error
    with session_scope(services.sessions) as session:
        assert feedback.feedback_summary(session, generation_id=scene.generation_id).edits == 0


def test_regenerate_writes_a_new_scene_linked_to_the_old(services, backend):
    scene = run(dispatch(services, "dialogue", ask("a robot boots up")))
    again = run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.REGENERATE))
    assert again.generation_id not in (None, scene.generation_id)
    with session_scope(services.sessions) as session:
        assert generations.get_generation(session, generation_id=again.generation_id).parent_id == scene.generation_id
    assert backend.requests[1]["messages"] == backend.requests[0]["messages"]


def test_feedback_on_a_missing_generation_says_so(services):
    reply = run(record(services, ask(""), generation_id=999, kind=ActionKind.APPROVE))
    assert reply.is_error and "999" in reply.text


def test_similar_lists_the_closest_scenes_best_first(services):
    reply = run(dispatch(services, "similar", ask("he will not come tonight")))
    assert reply.citations[0].title == "Bianca"
    assert reply.text.startswith("1. Bianca")


def test_unknown_command_gets_help(services):
    reply = run(dispatch(services, "summon", ask("")))
    assert reply.is_error and "Unknown command `/summon`" in reply.text and "/dialogue" in reply.text


def test_similar_on_an_empty_library_says_how_to_fill_it(services):
    services.searcher_factory = lambda: type("Empty", (), {"search": lambda self, query, k=5: []})()
    reply = run(dispatch(services, "similar", ask("anything at all")))
    assert "library is empty" in reply.text and "writersroom ingest" in reply.text


# Without the scene grammar (a server with no structured outputs), a scene whose only flaw is a
# silent requested voice is continued; under the grammar every requested voice speaks anyway.
SILENT_COLE = ("EXT. RAINY ALLEY - NIGHT\n\nA BARMAN wipes the counter.\n\nMAYA\nYou sold us out.\n\n"
               "BARMAN\nNot in here.\n\nMAYA\nSay something.")


def test_a_requested_voice_that_never_speaks_is_continued_not_rewritten(tmp_path):
    first = SILENT_COLE
    with FakeBackend(scenes=[first, "I kept you alive."]) as backend:
        services = make_core_services(tmp_path, backend.url, generation={"constrained": False})
        reply = run(dispatch(services, "dialogue", ask("a detective corners her partner in a rainy alley at night "
                                                      "characters: Maya, Cole")))
    assert reply.metadata["valid"] and len(backend.requests) == 2
    continued = backend.requests[1]
    assert continued["messages"][-1]["role"] == "assistant"
    assert continued["messages"][-1]["content"].endswith("Say something.\n\nCOLE\n")
    assert continued["continue_final_message"] is True and continued["max_tokens"] <= 96
    assert reply.sections[0].body.endswith("MAYA\nSay something.\n\nCOLE\nI kept you alive.")


def test_each_silent_voice_gets_its_own_continuation_and_a_second_try(tmp_path):
    first = SILENT_COLE
    # COLE's first continuation answers the cue with a blank line and another speaker (no line for
    # COLE); the second try gives his line; then RUIZ's cue is continued once and speaks.
    answers = [first, "\nMAYA\nWell?", "I kept you alive.", "Both of you, hands up."]
    with FakeBackend(scenes=answers) as backend:
        services = make_core_services(tmp_path, backend.url, generation={"constrained": False})
        reply = run(dispatch(services, "dialogue", ask("a detective corners her partner in a rainy alley at night "
                                                      "characters: Maya, Cole, Ruiz")))
    assert reply.metadata["valid"] and len(backend.requests) == 4
    prefills = [request["messages"][-1]["content"] for request in backend.requests[1:]]
    assert [p.rsplit("\n\n", 1)[-1] for p in prefills] == ["COLE\n", "COLE\n", "RUIZ\n"]
    body = reply.sections[0].body
    assert body.endswith("COLE\nI kept you alive.\n\nRUIZ\nBoth of you, hands up.")
    assert "Well?" not in body  # the failed try is not part of the scene


class SearchDown:
    def search(self, query: str, *, k: int = 5):
        from retrieval.types import SearchUnavailableError

        raise SearchUnavailableError("The embedding service at http://backend:8088/v1 is not reachable.")


def test_with_the_search_down_dialogue_writes_ungrounded_and_similar_says_why(services, backend):
    services.searcher_factory = SearchDown
    scene = run(dispatch(services, "dialogue", ask("a robot boots up in a lab")))
    assert not scene.is_error and scene.sections[0].body == CANNED_SCENE
    assert scene.citations == ()  # nothing to cite, the scene all the same
    found = run(dispatch(services, "similar", ask("a robot boots up")))
    assert found.is_error and "embedding service at http://backend:8088/v1 is not reachable" in found.sections[0].body

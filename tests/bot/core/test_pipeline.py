"""One pipeline for every entry (commands, clicks, edits, mentions): a request id, the channel
allowlist, one rate limit across every way of writing a scene, metrics by command and outcome,
and failures that reach the writer as plain words with a request id, never as exception text."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from bot.core.commands import dispatch
from bot.core.feedback import record
from bot.core.followup import continue_thread, remember_post
from bot.core.pipeline import FAILED_TITLE, serve
from bot.core.replies import ActionKind, Invocation, Reply
from emulators.core_services import make_core_services
from emulators.openai_backend import FakeBackend
from observability import metrics
from observability.request_id import current_request_id


@pytest.fixture
def backend():
    with FakeBackend() as fake:
        yield fake


def ask(text: str, *, user: str = "U1", room: str = "T1:C1", thread: str | None = None) -> Invocation:
    return Invocation(platform="slack", room_id=room, user_id=user, user_name=user.lower(), text=text,
                      thread_id=thread)


def run(coroutine):
    return asyncio.run(coroutine)


def commands_counted(command: str, outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("writersroom_bot_commands_total",
                                             {"platform": "slack", "command": command, "outcome": outcome}) or 0.0


def test_a_failure_reaches_the_writer_as_plain_words_and_a_request_id(tmp_path, backend, caplog):
    services = make_core_services(tmp_path, backend.url)
    seen: list[str | None] = []

    async def broken() -> Reply:
        seen.append(current_request_id())
        raise RuntimeError("psycopg.OperationalError: connection to server at db.internal (10.0.0.7) failed")

    with caplog.at_level(logging.ERROR, logger="bot.core.pipeline"):
        reply = run(serve(services, ask("anything"), "dialogue", broken))

    assert reply.is_error and reply.title == FAILED_TITLE
    assert seen[0] and f"`{seen[0]}`" in reply.text  # the id the logs carry, for the admins
    assert "db.internal" not in reply.text and "RuntimeError" not in reply.text and "psycopg" not in reply.text
    assert "db.internal" in caplog.text  # the details are in the log, for whoever fixes it


def test_a_store_failure_during_a_click_is_a_plain_message(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url)
    scene = run(dispatch(services, "dialogue", ask("a heist goes wrong")))
    services.sessions.kw["bind"].dispose()
    (tmp_path / "store.db").unlink()
    (tmp_path / "store.db").mkdir()  # the database file is gone and cannot be recreated: every query fails
    reply = run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    assert reply.is_error and reply.title == FAILED_TITLE
    assert "sqlite" not in reply.text.lower() and "store.db" not in reply.text


def test_clicks_and_mentions_obey_the_channel_allowlist_like_commands(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url)
    scene = run(dispatch(services, "dialogue", ask("a heist goes wrong", room="T1:C1")))
    run(remember_post(services, generation_id=scene.generation_id, message_ref="C9:111.1"))
    services.policy = replace(services.policy, channels=("C1",))

    click = run(record(services, ask("", room="T1:C9"), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    mention = run(continue_thread(services, ask("make it louder", room="T1:C9", thread="111.1"),
                                  root_ref="C9:111.1"))
    regenerate = run(record(services, ask("", room="T1:C9"), generation_id=scene.generation_id,
                            kind=ActionKind.REGENERATE))

    for reply in (click, mention, regenerate):
        assert reply.is_error and "only takes commands in <#C1>" in reply.text
    assert len(backend.requests) == 1  # only the first scene reached the backend


def test_one_rate_limit_covers_dialogue_regenerate_and_follow_ups(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"rate_limit_per_minute": 3})
    first = run(dispatch(services, "dialogue", ask("a heist goes wrong", thread="900.1")))
    again = run(record(services, ask(""), generation_id=first.generation_id, kind=ActionKind.REGENERATE))
    followed = run(continue_thread(services, ask("make Cole angrier", thread="900.1"), root_ref="C1:900.1"))
    limited = [
        run(dispatch(services, "dialogue", ask("one more scene"))),
        run(record(services, ask(""), generation_id=first.generation_id, kind=ActionKind.REGENERATE)),
        run(continue_thread(services, ask("and quieter", thread="900.1"), root_ref="C1:900.1")),
    ]
    assert not first.is_error and not again.is_error and not followed.is_error
    assert followed.generation_id not in (None, first.generation_id, again.generation_id)
    for reply in limited:
        assert reply.is_error and "3 scenes a minute" in reply.text
    # A click that writes nothing is never limited.
    approve = run(record(services, ask(""), generation_id=first.generation_id, kind=ActionKind.APPROVE))
    assert not approve.is_error


def test_every_entry_is_counted_by_command_and_outcome(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"rate_limit_per_minute": 1})
    before = {key: commands_counted(*key) for key in [("dialogue", "ok"), ("follow_up", "rate_limited"),
                                                      ("approve", "ok"), ("unknown", "error")]}
    scene = run(dispatch(services, "dialogue", ask("a heist goes wrong", thread="5.5")))
    run(continue_thread(services, ask("louder", thread="5.5"), root_ref="C1:5.5"))
    run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    run(dispatch(services, "no-such-command", ask("")))
    after = {key: commands_counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {key: 1.0 for key in before}


class PromotedButNotLoaded:
    """The registry names a version the backend does not list yet."""

    def serving_version(self, room_id: str) -> str | None:
        return "r0001-abc"

    def roll_back(self, room_id: str):
        raise NotImplementedError


def test_the_backend_model_list_is_asked_once_per_poll_interval(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url)
    services.adapters = PromotedButNotLoaded()
    now = [100.0]
    services.clock = lambda: now[0]
    for n in range(3):
        run(dispatch(services, "dialogue", ask(f"scene {n}")))
    assert backend.model_list_requests == 1
    now[0] += services.settings.backend.adapter_poll_s  # a promotion is picked up within the interval
    run(dispatch(services, "dialogue", ask("scene 4")))
    assert backend.model_list_requests == 2
    assert {request["model"] for request in backend.requests} == {"fake-model"}  # never a version not served

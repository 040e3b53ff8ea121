"""Follow-ups: `@writersroom <direction>` in a scene's thread writes the next version of
that scene in the same thread; Events API requests are signed like the rest."""

from __future__ import annotations

import time

from emulators.openai_backend import CANNED_SCENE, FakeBackend
from store import generations
from store.db import session_scope
from tests.bot.slack.helpers import QUIET_S, all_text, buttons, post_scene

ANGRIER = """EXT. ALLEY - NIGHT

MAYA
You sold us out, Cole!

COLE
I did what I had to."""


def in_thread(ts: str):
    return lambda call: call.args.get("thread_ts") == ts


def generation(room, generation_id: int):
    with session_scope(room.services.sessions) as session:
        found = generations.get_generation(session, generation_id=generation_id)
        return found.parent_id, found.thread_ref, found.prompt


def test_url_verification_handshake(room):
    response = room.sender.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_mention_in_a_scene_thread_continues_that_scene_in_the_thread(open_room):
    with FakeBackend(scenes=[CANNED_SCENE, ANGRIER, ANGRIER]) as backend:
        room = open_room(backend.url)
        root = post_scene(room)
        root_id = int(buttons(root)["wr_approve"])
        ts = root.result["ts"]

        assert room.sender.mention("make Cole angrier", thread_ts=ts).status_code == 200
        follow = room.api.wait_for("chat.postMessage", where=in_thread(ts))[0]
        sent = backend.requests[-1]["messages"]
    assert "You sold us out, Cole!" in all_text(follow) and "Follow-up: make Cole angrier" in all_text(follow)
    follow_id = int(buttons(follow)["wr_approve"])
    assert follow_id != root_id
    parent_id, thread_ref, prompt = generation(room, follow_id)
    assert (parent_id, thread_ref) == (root_id, ts)
    assert "Then: make Cole angrier" in prompt
    # The model saw the previous scene as its own answer, then the direction.
    assert any(m["role"] == "assistant" and m["content"] == CANNED_SCENE for m in sent)
    assert any(m["role"] == "user" and "make Cole angrier" in m["content"] for m in sent)


def test_a_second_follow_up_continues_the_newest_scene_of_the_thread(open_room):
    with FakeBackend(scenes=[CANNED_SCENE, ANGRIER, ANGRIER]) as backend:
        room = open_room(backend.url)
        root = post_scene(room)
        ts = root.result["ts"]
        room.sender.mention("make Cole angrier", thread_ts=ts)
        first = room.api.wait_for("chat.postMessage", where=in_thread(ts))[0]
        room.sender.mention("now end it on a siren", thread_ts=ts)
        second = room.api.wait_for("chat.postMessage", 2, where=in_thread(ts))[1]
        sent = backend.requests[-1]["messages"]
    assert generation(room, int(buttons(second)["wr_approve"]))[0] == int(buttons(first)["wr_approve"])
    assert any(m["role"] == "assistant" and m["content"] == ANGRIER for m in sent)


def test_follow_up_scene_has_working_buttons(room):
    root = post_scene(room)
    ts = root.result["ts"]
    room.sender.mention("make it quieter", thread_ts=ts)
    follow = room.api.wait_for("chat.postMessage", where=in_thread(ts))[0]
    message = room.api.message("C0ROOM", follow.result["ts"])
    room.sender.block_action("wr_approve", buttons(follow)["wr_approve"], message=message)
    update = room.api.wait_for("chat.update")[0]
    assert update.args["ts"] == follow.result["ts"] and "Approved by <@U0WRITER>" in all_text(update)


def test_mention_outside_a_scene_thread_gets_help_in_a_thread(room, backend):
    response = room.sender.mention("write me something")
    assert response.status_code == 200
    help_ = room.api.wait_for("chat.postMessage")[0]
    assert help_.args["thread_ts"]  # under the mention, not in the channel
    assert "Mention me in the thread of a scene" in all_text(help_) and "/dialogue" in all_text(help_)

    room.sender.command("/wr-help")  # a thread whose root is no scene
    not_a_scene = room.api.wait_for("chat.postMessage", 2)[1]
    room.sender.mention("make it sadder", thread_ts=not_a_scene.result["ts"])
    again = room.api.wait_for("chat.postMessage", where=in_thread(not_a_scene.result["ts"]))[0]
    assert "Mention me in the thread of a scene" in all_text(again)
    assert not backend.requests


def test_empty_or_oversized_direction_is_explained(room, backend):
    ts = post_scene(room).result["ts"]
    room.sender.mention("", thread_ts=ts)
    empty = room.api.wait_for("chat.postMessage", where=in_thread(ts))[0]
    assert "Say what to change" in all_text(empty)
    room.sender.mention("louder " * 400, thread_ts=ts)
    too_long = room.api.wait_for("chat.postMessage", 2, where=in_thread(ts))[1]
    assert "the limit is 1,500" in all_text(too_long)
    assert len(backend.requests) == 1  # only the scene itself


def test_backend_down_during_a_follow_up_is_reported_in_the_thread(open_room):
    with FakeBackend() as backend:
        room = open_room(backend.url)
        ts = post_scene(room).result["ts"]
        backend.fail_with = 503
        room.sender.mention("make Cole angrier", thread_ts=ts)
        error = room.api.wait_for("chat.postMessage", where=in_thread(ts))[0]
    assert ":warning:" in all_text(error) and "503" in all_text(error) and not buttons(error)


def test_a_redelivered_or_forged_mention_writes_nothing_more(room, backend):
    ts = post_scene(room).result["ts"]
    room.sender.mention("make Cole angrier", thread_ts=ts, event_id="Ev0SAME")
    room.api.wait_for("chat.postMessage", where=in_thread(ts))
    room.sender.mention("make Cole angrier", thread_ts=ts, event_id="Ev0SAME")  # Slack redelivering it
    retry = room.sender.mention("make Cole angrier", thread_ts=ts, event_id="Ev0RETRY",
                                headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    forged = room.sender.mention("make Cole angrier", thread_ts=ts, signature="v0=" + "0" * 64)
    assert retry.status_code == 200 and forged.status_code == 401
    time.sleep(QUIET_S)
    assert len(room.api.messages()) == 2 and len(backend.requests) == 2


def test_mentions_outside_the_allowed_channels_are_refused(open_room, backend):
    room = open_room(backend.url, room={"channels": ["C0ROOM"]})
    room.sender.mention("make Cole angrier", channel="C0LOBBY")
    refused = room.api.wait_for("chat.postMessage")[0]
    assert refused.args["channel"] == "C0LOBBY" and "only takes commands in <#C0ROOM>" in all_text(refused)
    assert not backend.requests

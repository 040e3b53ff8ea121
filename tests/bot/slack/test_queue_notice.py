"""A scene waiting in the generation backend's queue: the writer is told their place in line,
privately, before the scene is posted (slash commands through the response_url, thread
follow-ups as an ephemeral message in the thread)."""

from __future__ import annotations

import time

from emulators.openai_backend import FakeBackend
from tests.bot.slack.helpers import all_text, buttons, post_scene, top_level

SITUATION = "a detective corners her former partner in a rainy alley"


def wait_for_response(room, where, timeout: float = 10.0) -> dict:
    """The first body POSTed to a response_url that matches `where` (polls the emulator's record)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((body for body in list(room.api.responses) if where(body)), None)
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no response_url post matched within {timeout}s; saw {room.api.responses}")


def test_a_queued_dialogue_tells_the_writer_their_place_before_the_scene(open_room):
    with FakeBackend(held=True, queue_positions=(3,)) as backend:
        try:
            room = open_room(backend.url)
            assert room.sender.command("/dialogue", SITUATION).status_code == 200
            notice = wait_for_response(room, lambda body: "3rd in line" in body.get("text", ""))
            assert not room.api.messages()  # the scene is still held: the notice came first
        finally:
            backend.release()
        scene = room.api.wait_for("chat.postMessage", where=top_level)[0]
    assert "2 requests are ahead of it" in notice["text"]
    assert notice["response_type"] == "ephemeral" and notice["replace_original"] is False  # the writer's alone
    assert "You sold us out, Cole." in all_text(scene) and buttons(scene)  # the scene, as always
    assert [body["text"] for body in room.api.responses] == [notice["text"]]  # told once


def test_without_queue_reports_no_notice_is_sent(room):
    scene = post_scene(room)
    assert "You sold us out, Cole." in all_text(scene)
    assert room.api.responses == []
    assert not room.api.of("chat.postEphemeral")


def test_a_queued_follow_up_tells_the_writer_in_the_thread_before_the_scene(open_room):
    with FakeBackend() as backend:
        room = open_room(backend.url)
        root = post_scene(room)
        ts = root.result["ts"]
        backend.queue_positions = (1,)  # from now on the backend reports a queue before each scene
        room.sender.mention("make Cole angrier", thread_ts=ts)
        follow = room.api.wait_for("chat.postMessage", where=lambda call: call.args.get("thread_ts") == ts)[0]
    (notice,) = room.api.of("chat.postEphemeral")
    assert "1st in line (it is next)" in notice.args["text"]
    assert notice.args["thread_ts"] == ts and notice.args["user"] == room.sender.user  # in the thread, to them
    assert notice.result["ok"]
    assert room.api.calls.index(notice) < room.api.calls.index(follow)  # told before the scene came
    assert buttons(follow)

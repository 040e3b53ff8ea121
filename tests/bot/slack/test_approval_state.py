"""The scene message shows where the room stands after every approve, reject and edit
(chat.update), and loses its buttons once the quorum is met; a failed edit window
leaves the writer the scene to copy."""

from __future__ import annotations

import time

from emulators.openai_backend import CANNED_SCENE
from emulators.slack import ApiCall, submitted_view
from tests.bot.slack.helpers import (
    QUIET_S,
    all_text,
    buttons,
    post_scene,
    summary,
    thread_replies,
)


def state_text(blocks: list[dict]) -> str:
    (state,) = [block for block in blocks if block.get("block_id") == "wr_state"]
    return state["elements"][0]["text"]


def action_ids(blocks: list[dict]) -> list[str]:
    return [element["action_id"] for block in blocks if block["type"] == "actions" for element in block["elements"]]


def click(room, scene: ApiCall, action: str, *, user: str, action_ts: str | None = None):
    """`user` clicks `action` on the scene message as Slack shows it now (after any update)."""
    message = room.api.message("C0ROOM", scene.result["ts"])
    response = room.sender.block_action(action, buttons(scene)[action], message=message, user=user,
                                        action_ts=action_ts)
    assert response.status_code == 200


def updates_of(room, scene: ApiCall, count: int) -> list[ApiCall]:
    return room.api.wait_for("chat.update", count, where=lambda c: c.args["ts"] == scene.result["ts"])


def test_quorum_of_two_shows_progress_then_replaces_the_buttons(open_room, backend):
    room = open_room(backend.url, room={"quorum": 2})
    scene = post_scene(room)
    generation_id = int(buttons(scene)["wr_approve"])

    click(room, scene, "wr_approve", user="U1", action_ts="1700000100.000001")
    first = updates_of(room, scene, 1)[0]
    assert first.args["channel"] == "C0ROOM"
    assert state_text(first.args["blocks"]) == "Approved 1 of 2 — by <@U1>"  # a live mention, not escaped
    assert action_ids(first.args["blocks"]) == ["wr_approve", "wr_reject", "wr_regenerate", "wr_edit"]
    assert "You sold us out, Cole." in all_text(first)  # the scene itself is kept

    click(room, scene, "wr_reject", user="U3")
    rejected = updates_of(room, scene, 2)[1]
    assert state_text(rejected.args["blocks"]) == "Approved 1 of 2 — by <@U1> · Rejected by <@U3>"

    click(room, scene, "wr_approve", user="U2")
    settled = updates_of(room, scene, 3)[2]
    assert state_text(settled.args["blocks"]) == "Approved by <@U1>, <@U2> · Rejected by <@U3>"
    assert action_ids(settled.args["blocks"]) == []  # no more approving from the message
    shown = room.api.message("C0ROOM", scene.result["ts"])
    assert action_ids(shown["blocks"]) == []
    assert [block.get("block_id") for block in shown["blocks"]].count("wr_state") == 1
    assert summary(room, generation_id).approvals == 2


def test_a_double_click_records_once_and_the_state_names_the_writer_once(room):
    scene = post_scene(room)
    generation_id = int(buttons(scene)["wr_approve"])
    click(room, scene, "wr_reject", user="U1", action_ts="1700000100.000009")
    click(room, scene, "wr_reject", user="U1", action_ts="1700000100.000009")  # the same click, delivered again
    updates_of(room, scene, 1)
    room.api.wait_for("chat.postMessage", where=lambda c: c.args.get("thread_ts") == scene.result["ts"])
    time.sleep(QUIET_S)
    assert len(room.api.of("chat.update")) == 1 and len(thread_replies(room, scene.result["ts"])) == 1
    assert summary(room, generation_id).rejections == 1
    assert state_text(room.api.message("C0ROOM", scene.result["ts"])["blocks"]) == "Rejected by <@U1>"


def test_quorum_of_one_settles_on_the_first_approval(room):
    scene = post_scene(room)
    click(room, scene, "wr_approve", user="U1")
    update = updates_of(room, scene, 1)[0]
    assert state_text(update.args["blocks"]) == "Approved by <@U1>"
    assert action_ids(update.args["blocks"]) == []


def test_refused_approval_leaves_the_message_alone(open_room, backend):
    room = open_room(backend.url, room={"approvers": ["U1"]})
    scene = post_scene(room)
    click(room, scene, "wr_approve", user="U9")
    reply = room.api.wait_for("chat.postMessage", where=lambda c: c.args.get("thread_ts") == scene.result["ts"])[0]
    assert "Only the room's approvers" in all_text(reply)
    time.sleep(QUIET_S)
    assert not room.api.of("chat.update")


def test_saved_edit_shows_on_the_scene_message(open_room, backend):
    room = open_room(backend.url, room={"quorum": 2})
    scene = post_scene(room)
    click(room, scene, "wr_edit", user="U0WRITER")
    view = room.api.wait_for("views.open")[0].result["view"]
    edited = CANNED_SCENE.replace("I kept you alive.", "I kept us both alive.")
    assert room.sender.view_submission(submitted_view(view, edited)).status_code == 200
    update = updates_of(room, scene, 1)[0]
    # A modal submission carries no message: the bot read it back to keep the scene and its buttons.
    assert room.api.of("conversations.history")
    assert state_text(update.args["blocks"]) == "Approved 1 of 2 — by <@U0WRITER> · Edited by <@U0WRITER>"
    assert action_ids(update.args["blocks"]) == ["wr_approve", "wr_reject", "wr_regenerate", "wr_edit"]
    assert "You sold us out, Cole." in all_text(update)


def test_state_of_a_regenerated_scene_goes_on_that_scene_in_the_thread(room):
    root = post_scene(room)
    click(room, root, "wr_regenerate", user="U1")
    in_thread = lambda c: c.args.get("thread_ts") == root.result["ts"] and bool(buttons(c))  # noqa: E731
    again = room.api.wait_for("chat.postMessage", where=in_thread)[0]
    message = room.api.message("C0ROOM", again.result["ts"])
    room.sender.block_action("wr_edit", buttons(again)["wr_edit"], message=message, user="U2")
    view = room.api.wait_for("views.open")[0].result["view"]
    room.sender.view_submission(submitted_view(view, "INT. CAR - NIGHT\n\nMAYA\nDrive."), user="U2")
    update = room.api.wait_for("chat.update")[0]
    assert update.args["ts"] == again.result["ts"]  # the regenerated scene, not the thread's root
    assert room.api.of("conversations.replies")
    assert state_text(update.args["blocks"]) == "Approved by <@U2> · Edited by <@U2>"
    assert "wr_state" not in str(room.api.message("C0ROOM", root.result["ts"])["blocks"])


def test_state_goes_through_the_response_url_when_the_bot_may_not_update(room):
    scene = post_scene(room)
    room.api.not_in_channel.add("C0ROOM")  # the bot was removed from the channel after posting
    click(room, scene, "wr_approve", user="U1")
    deadline = time.monotonic() + 5
    while len(room.api.responses) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    replaced = [r for r in room.api.responses if r.get("replace_original")]
    assert len(replaced) == 1 and state_text(replaced[0]["blocks"]) == "Approved by <@U1>"
    assert action_ids(replaced[0]["blocks"]) == []
    assert room.api.of("chat.update")[0].result["error"] == "not_in_channel"


# --- the edit window -------------------------------------------------------------------


def test_expired_trigger_gives_the_writer_the_scene_to_copy(room):
    room.api.views_open_error = "expired_trigger_id"
    scene = post_scene(room)
    click(room, scene, "wr_edit", user="U1")
    note = room.api.wait_for("chat.postEphemeral")[0]
    assert room.api.of("views.open")[0].result == {"ok": False, "error": "expired_trigger_id"}
    assert note.args["user"] == "U1" and note.args["channel"] == "C0ROOM"
    assert note.args["thread_ts"] == scene.result["ts"]
    text = all_text(note)
    assert "edit window expired" in text and "Click *Edit* under the scene again" in text
    assert "You sold us out, Cole." in text and "I kept you alive." in text
    time.sleep(QUIET_S)
    assert not room.api.of("chat.update")  # nothing was recorded, so nothing to show


def test_expired_trigger_falls_back_to_the_response_url_where_the_bot_cannot_post(room):
    scene = post_scene(room)
    room.api.views_open_error = "expired_trigger_id"
    room.api.not_in_channel.add("C0ROOM")
    click(room, scene, "wr_edit", user="U1")
    room.api.wait_for("chat.postEphemeral")
    deadline = time.monotonic() + 5
    while not room.api.responses and time.monotonic() < deadline:
        time.sleep(0.02)
    (response,) = room.api.responses
    assert response["response_type"] == "ephemeral" and response["replace_original"] is False
    assert "edit window expired" in response["text"] and "You sold us out, Cole." in str(response["blocks"])

"""Slash commands beyond /dialogue: /style on a shared file, /recommend, bad input, and the
channel allowlist."""

from __future__ import annotations

import time

import pytest

from emulators.openai_backend import FakeBackend
from llm.client import ChatClient
from tests.bot.slack.conftest import BOT_TOKEN
from tests.bot.slack.helpers import QUIET_S, SITUATION, all_text, buttons

PILOT = """Title: Lighthouse

INT. LIGHTHOUSE - NIGHT

The lamp turns. NORA climbs the last stair.

NORA
Who keeps the light now?

ELI
(not looking up)
Nobody. It keeps itself.

NORA
Then why are you still here?

EXT. CLIFF - DAY

Gulls. ELI watches the sea.
"""


def reply_to(room, command: str, text: str = "", *, channel: str | None = None):
    """The next message the bot posts after this command."""
    before = len(room.api.messages())
    response = room.sender.command(command, text, channel=channel)
    assert response.status_code == 200
    return room.api.wait_for("chat.postMessage", before + 1)[before]


# --- /style on a shared file ------------------------------------------------------------


def test_style_without_text_reads_the_newest_script_shared_in_the_channel(room):
    room.api.share_file("C0ROOM", "old-draft.fountain", "INT. SHED - DAY\n\nBOB\nHi.\n")
    room.api.share_file("C0OTHER", "elsewhere.fountain", "INT. BARN - DAY\n\nZED\nNo.\n")
    newest = room.api.share_file("C0ROOM", "lighthouse.fountain", PILOT)
    room.api.share_file("C0ROOM", "storyboard.png", b"\x89PNG\r\n\x1a\n")  # newer, but not a script

    response = room.sender.command("/style")
    assert "Reading the newest script" in response.text
    report = all_text(room.api.wait_for("chat.postMessage")[0])
    assert "Style: Lighthouse" in report
    assert "NORA: 2 lines" in report and "ELI: 1 line" in report and "INT 1, EXT 1" in report
    assert room.api.of("files.list")[0].args["channel"] == "C0ROOM"
    assert room.api.downloads == [(newest.id, BOT_TOKEN)]  # fetched with the bot token, and only that file


def test_style_reads_the_file_named_by_id_or_permalink(room):
    first = room.api.share_file("C0ROOM", "lighthouse.fountain", PILOT)
    room.api.share_file("C0ROOM", "later.fountain", "INT. SHED - DAY\n\nBOB\nHi.\n")
    by_id = reply_to(room, "/style", first.id)
    assert "NORA: 2 lines" in all_text(by_id)
    permalink = f"<https://writers.example/files/U0WRITER/{first.id}/lighthouse.fountain>"
    room.sender.command("/style", permalink)
    by_link = room.api.wait_for("chat.postMessage", 2)[1]
    assert "NORA: 2 lines" in all_text(by_link)
    assert [call.args["file"] for call in room.api.of("files.info")] == [first.id, first.id]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("storyboard.png", b"\x89PNG\r\n\x1a\n", "is not a script file this bot reads"),
    ("broken.fdx", b"<FinalDraft><Content><Paragraph", "Could not read `broken.fdx`: malformed XML"),
    ("notes.txt", bytes(range(256)) * 4, "Could not read `notes.txt`: binary file"),
])
def test_style_on_a_file_it_cannot_read_says_why(room, name, content, expected):
    room.api.share_file("C0ROOM", name, content)
    text = all_text(reply_to(room, "/style"))
    assert ":warning:" in text and expected in text


def test_style_with_no_file_shared_or_an_unknown_file_explains_what_to_do(room):
    assert "No file has been shared in this channel yet" in all_text(reply_to(room, "/style"))
    room.sender.command("/style", "F0NOSUCHFILE")
    unknown = room.api.wait_for("chat.postMessage", 2)[1]
    assert "no file `F0NOSUCHFILE`" in all_text(unknown)


def test_style_says_which_scope_is_missing(room):
    room.api.share_file("C0ROOM", "lighthouse.fountain", PILOT)
    room.api.files_error = "missing_scope"
    text = all_text(reply_to(room, "/style"))
    assert "files:read" in text and not room.api.downloads


def test_pasted_style_text_still_works_without_touching_files(room):
    pasted = reply_to(room, "/style", "INT. LAB - NIGHT\n\nBOB\nHello.\n\nANA\nHi, Bob.")
    assert "ANA: 1 line" in all_text(pasted)
    assert not room.api.of("files.list") and not room.api.of("files.info")


# --- /recommend and bad input -------------------------------------------------------------


def test_recommend_answers_in_the_channel(room):
    text = all_text(reply_to(room, "/recommend"))
    assert "No recommendations yet" in text and "Approve" in text
    room.sender.command("/recommend", "lots")
    usage = room.api.wait_for("chat.postMessage", 2)[1]
    assert ":warning:" in all_text(usage) and "/recommend [how many" in all_text(usage)


def test_unknown_subcommand_and_oversized_prompt_get_clear_messages(room, backend):
    unknown = all_text(reply_to(room, "/room", "frobnicate"))
    assert "Unknown /room action `frobnicate`" in unknown and "consent" in unknown
    room.sender.command("/dialogue", "rain " * 1000)
    too_long = room.api.wait_for("chat.postMessage", 2)[1]
    assert "the limit is 1,500" in all_text(too_long) and not buttons(too_long)
    room.sender.command("/similar", "rain " * 5000)
    too_long = room.api.wait_for("chat.postMessage", 3)[2]
    assert "the limit is 20,000" in all_text(too_long)
    assert not backend.requests


def test_a_silent_backend_past_the_timeout_is_reported_in_the_channel(open_room):
    # A backend that has sent nothing by the silence timeout, however slow the machine.
    with FakeBackend(held=True) as slow:
        try:
            room = open_room(slow.url)
            room.services.chat = ChatClient(slow.url, silence_timeout_s=0.5, retries=0)  # as the bot builds it from settings
            room.sender.command("/dialogue", SITUATION)
            call = room.api.wait_for("chat.postMessage")[0]
        finally:
            slow.release()
    assert ":warning:" in all_text(call) and "sent nothing for 0.5 s" in all_text(call)
    room.sender.command("/wr-help")  # and the app still answers
    room.api.wait_for("chat.postMessage", 2)


# --- the channel allowlist -------------------------------------------------------------------


def test_commands_outside_the_allowed_channels_are_refused_politely(open_room, backend):
    room = open_room(backend.url, room={"channels": ["C0ROOM", "C0PITCH"]})
    refused = reply_to(room, "/dialogue", SITUATION, channel="C0LOBBY")
    assert refused.args["channel"] == "C0LOBBY"
    text = all_text(refused)
    # Channel mentions stay live (not escaped), so Slack shows them as links.
    assert "only takes commands in <#C0ROOM>, <#C0PITCH>" in text and "&lt;#" not in text
    room.api.share_file("C0LOBBY", "lighthouse.fountain", PILOT)
    room.sender.command("/style", channel="C0LOBBY")
    assert "only takes commands in" in all_text(room.api.wait_for("chat.postMessage", 2)[1])
    time.sleep(QUIET_S)
    assert not backend.requests and not room.api.of("files.list") and not room.api.downloads

    allowed = reply_to(room, "/dialogue", SITUATION, channel="C0PITCH")
    assert buttons(allowed) and allowed.args["channel"] == "C0PITCH"


def test_room_retrain_and_rollback_are_for_admins_and_a_retrain_is_queued(open_room, backend):
    from store.db import session_scope
    from store.training_runs import pending_training_request

    room = open_room(backend.url, room={"admins": ["U0ADMIN"]})
    refused = all_text(reply_to(room, "/room", "retrain"))
    assert "Only room admins may do that" in refused
    room.sender.user, room.sender.user_name = "U0ADMIN", "showrunner"
    room.sender.command("/room", "retrain")
    queued = all_text(room.api.wait_for("chat.postMessage", 2)[1])
    with session_scope(room.services.sessions) as session:
        request = pending_training_request(session)
        assert request is not None and "showrunner" in (request.notes or "")
    assert f"Training requested (request {request.id})" in queued
    room.sender.command("/room", "rollback")  # an admin, but nothing has served yet
    rolled = all_text(room.api.wait_for("chat.postMessage", 3)[2])
    assert "nothing to roll back" in rolled

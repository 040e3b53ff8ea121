"""Block Kit rendering of core replies, within Slack's limits."""

from __future__ import annotations

import json

from bot.core.replies import (
    Action,
    ActionKind,
    Citation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.slack.blocks import (
    EDIT_CALLBACK_ID,
    SECTION_TEXT_LIMIT,
    edit_modal,
    escape_keeping_mentions,
    kind_of,
    parse_edit_submission,
    render_reply,
    screenplay_chunks,
    screenplay_from_message,
    with_state,
)
from emulators.slack import submitted_view

SCENE = "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out, Cole <again> & again."


def scene_reply(body: str = SCENE, generation_id: int = 7) -> Reply:
    value = str(generation_id)
    return Reply(
        title="a detective corners her partner",
        sections=(Section(SectionKind.SCREENPLAY, body),),
        citations=(Citation("cb1", "Cyber Bob: Episode 1", 0, "INT. LAB - NIGHT", "BOB boots up."),),
        actions=tuple(Action(kind, kind.value.capitalize(), value) for kind in ActionKind),
        generation_id=generation_id,
        metadata={"model": "fake-model", "latency_ms": 12},
    )


def test_scene_reply_has_header_code_block_citations_and_four_buttons():
    rendered = render_reply(scene_reply())
    kinds = [block["type"] for block in rendered.blocks]
    assert kinds[0] == "header" and rendered.blocks[0]["text"]["text"] == "a detective corners her partner"
    code = rendered.blocks[1]["text"]["text"]
    assert code.startswith("```\n") and code.endswith("\n```")
    assert "&lt;again&gt; &amp; again" in code  # mrkdwn escaping
    context = [b for b in rendered.blocks if b["type"] == "context"]
    assert "Drawn on: Cyber Bob: Episode 1 — INT. LAB - NIGHT" in context[0]["elements"][0]["text"]
    buttons = rendered.blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["wr_approve", "wr_reject", "wr_regenerate", "wr_edit"]
    assert {b["value"] for b in buttons} == {"7"}
    assert not rendered.truncated and rendered.full_screenplay is None
    assert "sold us out" in rendered.text


def test_long_scene_is_cut_at_a_line_and_flagged():
    body = "\n".join(f"MAYA\nLine number {i} of a scene that goes on & on.\n" for i in range(200))
    rendered = render_reply(scene_reply(body))
    block = rendered.blocks[1]["text"]["text"]
    assert len(block) <= SECTION_TEXT_LIMIT
    assert rendered.truncated and rendered.full_screenplay == body
    assert block.endswith("```") and "attached as a .fountain file" in block
    assert "&amp" in block and not block.split("```")[1].rstrip().endswith("&")


def test_chunks_cover_the_whole_scene_under_the_limit():
    body = "\n".join(f"LINE {i} " + "x" * 70 for i in range(300))
    chunks = screenplay_chunks(body, limit=1000)
    assert all(len(chunk) <= 1000 for chunk in chunks)
    inner = "\n".join(chunk.removeprefix("```\n").removesuffix("\n```") for chunk in chunks)
    assert inner == body


def test_error_reply_is_marked():
    rendered = render_reply(error_reply("/dialogue", "The generation backend refused the request (503)"))
    texts = [b["text"]["text"] for b in rendered.blocks if b["type"] == "section"]
    assert texts == [":warning: *Error:* The generation backend refused the request (503)"]
    assert rendered.text.startswith("⚠️ /dialogue")
    assert not any(b["type"] == "actions" for b in rendered.blocks)


def test_long_title_and_prose_fit_slack_limits():
    reply = Reply(title="t" * 400, sections=(Section(SectionKind.TEXT, "word " * 2000),))
    rendered = render_reply(reply)
    assert len(rendered.blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_LIMIT for b in rendered.blocks[1:])
    assert len(rendered.text) <= 3000


def test_similar_reply_lists_excerpts():
    reply = Reply(title="Closest to: rain", sections=(Section(SectionKind.TEXT, "1. Bianca — Act I"),),
                  citations=(Citation("am1", "Bianca", 2, "Act I, Scene 3", "HILDA waits at the gate."),))
    context = render_reply(reply).blocks[-1]
    assert context["type"] == "context" and "HILDA waits at the gate." in context["elements"][0]["text"]


def test_edit_modal_round_trip():
    view = edit_modal(7, SCENE, channel_id="C1", message_ts="1700000000.000001", scene_ts="1700000000.000005")
    assert view["callback_id"] == EDIT_CALLBACK_ID
    assert json.loads(view["private_metadata"]) == {"generation_id": 7, "channel": "C1",
                                                    "message_ts": "1700000000.000001",
                                                    "scene_ts": "1700000000.000005"}
    element = view["blocks"][0]["element"]
    assert element["type"] == "plain_text_input" and element["multiline"] and element["initial_value"] == SCENE
    assert len(view["title"]["text"]) <= 24
    submission = parse_edit_submission(submitted_view(view, "EXT. ROOF - DAY"))
    assert (submission.generation_id, submission.channel, submission.text) == (7, "C1", "EXT. ROOF - DAY")
    assert submission.scene_ts == "1700000000.000005"


def test_screenplay_read_back_from_a_posted_message():
    message = {"blocks": render_reply(scene_reply()).blocks}
    assert screenplay_from_message(message) == (SCENE, False)
    long_body = "\n".join(f"LINE {i}" for i in range(1000))
    text, cut = screenplay_from_message({"blocks": render_reply(scene_reply(long_body)).blocks})
    assert cut and long_body.startswith(text)
    modal = edit_modal(7, text, channel_id="C1", partial=cut)
    assert modal["blocks"][0]["type"] == "context" and modal["blocks"][1]["block_id"] == "wr_edit_block"
    assert kind_of("wr_regenerate") is ActionKind.REGENERATE



def test_prose_keeps_user_and_channel_mentions_live_and_escapes_the_rest():
    text = "Ask <@U1> in <#C0ROOM|writers> about <b>this</b> & <!channel>"
    assert escape_keeping_mentions(text) == (
        "Ask <@U1> in <#C0ROOM|writers> about &lt;b&gt;this&lt;/b&gt; &amp; &lt;!channel&gt;")  # no @channel ping
    rendered = render_reply(error_reply("Not here", "Try <#C0ROOM>."))
    assert "<#C0ROOM>" in rendered.blocks[1]["text"]["text"]


def test_state_takes_the_place_of_the_buttons_once():
    blocks = render_reply(scene_reply()).blocks
    pending = with_state(blocks, "Approved 1 of 2 — by <@U1>", keep_buttons=True)
    kinds = [block.get("block_id") or block["type"] for block in pending]
    assert kinds[-2:] == ["wr_state", "wr_actions"]
    settled = with_state(pending, "Approved by <@U1>, <@U2>", keep_buttons=False)
    assert [block.get("block_id") for block in settled].count("wr_state") == 1
    assert settled[-1]["block_id"] == "wr_state" and "wr_actions" not in str(settled)
    assert settled[-1]["elements"][0]["text"] == "Approved by <@U1>, <@U2>"
    assert with_state(settled, "Approved by <@U1>, <@U2>", keep_buttons=False) == settled

"""Block Kit rendering of core replies, and the edit modal.

Slack's limits shape this module: a section's text holds at most 3000 characters, a
header 150, a modal title 24, a plain_text_input 3000, private_metadata 3000. A scene
longer than one section is cut at a line boundary in the message and the caller is told
(`Rendered.full_screenplay`) so it can attach the whole scene as a .fountain file.

Every button carries the generation id as its `value`: a click is self-describing and
still works after the bot restarts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bot.core.replies import ActionKind, Citation, Reply, Section, SectionKind

SECTION_TEXT_LIMIT = 3000
HEADER_LIMIT = 150
CONTEXT_TEXT_LIMIT = 2000
FALLBACK_TEXT_LIMIT = 3000
INPUT_LIMIT = 3000

ACTION_ID_PREFIX = "wr_"
EDIT_CALLBACK_ID = "wr_edit_submit"
EDIT_BLOCK_ID = "wr_edit_block"
EDIT_INPUT_ID = "wr_edit_text"
SCREENPLAY_BLOCK_ID = "wr_screenplay"
ACTIONS_BLOCK_ID = "wr_actions"
STATE_BLOCK_ID = "wr_state"
MAX_BLOCKS = 50  # per message

_FENCE = "```"
_CUT_NOTE = "… (cut here: the full scene is attached as a .fountain file)"
_BUTTON_STYLES = {ActionKind.APPROVE: "primary", ActionKind.REJECT: "danger"}


@dataclass(frozen=True)
class Rendered:
    """A message ready for chat.postMessage, plus what did not fit in it."""

    blocks: list[dict]
    text: str  # notification / screen-reader fallback
    truncated: bool = False
    full_screenplay: str | None = None  # set when truncated: upload it as a file


def action_id(kind: ActionKind) -> str:
    return f"{ACTION_ID_PREFIX}{kind.value}"


def kind_of(action_id_: str) -> ActionKind:
    """wr_approve -> ActionKind.APPROVE; ValueError for anything else."""
    if not action_id_.startswith(ACTION_ID_PREFIX):
        raise ValueError(f"not a writersroom action: {action_id_!r}")
    return ActionKind(action_id_[len(ACTION_ID_PREFIX):])


def escape(text: str) -> str:
    """Slack mrkdwn needs &, < and > escaped, inside code blocks too."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack's own control sequences for a user or a channel: `<@U123>`, `<#C123>` (optionally
# with a `|label`). Core replies name people and channels in this form (Discord reads it too).
_MENTION = re.compile(r"<[@#][A-Z0-9]+(?:\|[^<>&]*)?>")


def escape_keeping_mentions(text: str) -> str:
    """`escape`, except for user and channel mentions, which stay live."""
    out, last = [], 0
    for match in _MENTION.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_reply(reply: Reply) -> Rendered:
    """The whole reply as blocks; at most one screenplay is expected per reply."""
    blocks: list[dict] = [_header(reply.title)]
    truncated = False
    full: str | None = None
    for section in reply.sections:
        if section.kind is SectionKind.SCREENPLAY:
            block, cut = screenplay_block(section.body)
            blocks.append(block)
            if cut:
                truncated, full = True, section.body
        else:
            blocks.extend(_prose_blocks(section))
    if reply.citations:
        blocks.append(_citations_block(reply.citations, drawn_on=reply.generation_id is not None))
    if reply.generation_id is not None and reply.actions:
        blocks.append(_details_block(reply))
    if reply.actions:
        blocks.append(actions_block(reply))
    return Rendered(blocks=blocks, text=fallback_text(reply), truncated=truncated, full_screenplay=full)


def fallback_text(reply: Reply) -> str:
    """What notifications show; errors say so up front."""
    lead = f"⚠️ {reply.title}" if reply.is_error else reply.title
    text = f"{lead}\n{reply.text}".strip()
    return text if len(text) <= FALLBACK_TEXT_LIMIT else text[: FALLBACK_TEXT_LIMIT - 1] + "…"


def screenplay_block(body: str) -> tuple[dict, bool]:
    """A monospaced section; (block, was_cut)."""
    room = SECTION_TEXT_LIMIT - 2 * len(_FENCE) - 2
    escaped = escape(body)
    cut = len(escaped) > room
    if cut:
        escaped = _cut_at_line(escaped, room - len(_CUT_NOTE) - 1) + "\n" + _CUT_NOTE
    text = f"{_FENCE}\n{escaped}\n{_FENCE}"
    return {"type": "section", "block_id": SCREENPLAY_BLOCK_ID, "text": {"type": "mrkdwn", "text": text}}, cut


def screenplay_chunks(body: str, *, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """The whole scene as code-block messages, each under `limit` characters, split at lines."""
    room = limit - 2 * len(_FENCE) - 2
    chunks: list[str] = []
    rest = escape(body)
    while rest:
        if len(rest) <= room:
            piece, rest = rest, ""
        else:
            piece = _cut_at_line(rest, room)
            rest = rest[len(piece):].lstrip("\n")
        chunks.append(f"{_FENCE}\n{piece}\n{_FENCE}")
    return chunks


def _cut_at_line(text: str, limit: int) -> str:
    """The longest prefix within `limit` that ends at a line break (or hard cut if none)."""
    head = text[:limit]
    entity = head.rfind("&")
    if entity != -1 and ";" not in head[entity:]:  # never split an &amp; / &lt; entity
        head = head[:entity]
    newline = head.rfind("\n")
    return head[:newline].rstrip() if newline > limit // 2 else head


def _header(title: str) -> dict:
    title = " ".join(title.split()) or "writersroom"
    if len(title) > HEADER_LIMIT:
        title = title[: HEADER_LIMIT - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}}


def _prose_blocks(section: Section) -> list[dict]:
    body = escape_keeping_mentions(section.body)
    if section.kind is SectionKind.ERROR:
        body = f":warning: *Error:* {body}"
    pieces = [body[i:i + SECTION_TEXT_LIMIT] for i in range(0, len(body), SECTION_TEXT_LIMIT)] or [" "]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in pieces]


def _citations_block(citations: tuple[Citation, ...], *, drawn_on: bool) -> dict:
    if drawn_on:
        line = "Drawn on: " + "; ".join(f"{c.title} — {c.heading}" for c in citations)
        elements = [_context_text(line)]
    else:  # /similar: what each found scene reads like (context blocks hold 10 elements)
        elements = [
            _context_text(f"{rank}. {c.title} — {c.heading}: {' '.join(c.excerpt.split())[:300]}")
            for rank, c in enumerate(citations[:10], 1)
        ]
    return {"type": "context", "elements": elements}


def _context_text(text: str) -> dict:
    text = escape(text)
    if len(text) > CONTEXT_TEXT_LIMIT:
        text = text[: CONTEXT_TEXT_LIMIT - 1] + "…"
    return {"type": "mrkdwn", "text": text}


def _details_block(reply: Reply) -> dict:
    parts = [f"generation {reply.generation_id}"]
    if reply.metadata.get("model"):
        parts.append(str(reply.metadata["model"]))
    if reply.metadata.get("adapter"):
        parts.append(f"adapter {reply.metadata['adapter']}")
    if reply.metadata.get("latency_ms") is not None:
        parts.append(f"{reply.metadata['latency_ms']} ms")
    return {"type": "context", "elements": [_context_text(" · ".join(parts))]}


def actions_block(reply: Reply) -> dict:
    buttons = []
    for action in reply.actions[:25]:
        button = {
            "type": "button",
            "action_id": action_id(action.kind),
            "text": {"type": "plain_text", "text": action.label[:75], "emoji": True},
            "value": action.value,
        }
        if action.kind in _BUTTON_STYLES:
            button["style"] = _BUTTON_STYLES[action.kind]
        buttons.append(button)
    return {"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": buttons}


def with_state(blocks: list[dict], state: str, *, keep_buttons: bool) -> list[dict]:
    """A scene message's blocks showing `state` where the buttons are; the buttons stay
    under it until the scene is settled (quorum met), then the state takes their place."""
    state_block = {"type": "context", "block_id": STATE_BLOCK_ID,
                   "elements": [{"type": "mrkdwn", "text": escape_keeping_mentions(state)[:CONTEXT_TEXT_LIMIT]}]}
    out: list[dict] = []
    placed = False
    for block in blocks:
        if block.get("block_id") == STATE_BLOCK_ID:
            continue
        if block.get("block_id") == ACTIONS_BLOCK_ID:
            out.append(state_block)
            placed = True
            if keep_buttons:
                out.append(block)
            continue
        out.append(block)
    if not placed:
        out.append(state_block)
    return out


def edit_expired_blocks(scene: str, *, partial: bool) -> tuple[list[dict], str]:
    """(blocks, text) of the note shown when the edit window could not be opened in time."""
    lead = (":hourglass: *The edit window expired before it could open* (Slack allows only a few seconds "
            "after a click). Click *Edit* under the scene again to reopen it. Here is the scene to copy, so "
            "nothing is lost:")
    if partial:
        lead += " This is only the start of the scene; the whole scene is attached in its thread."
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": lead}}]
    if scene:
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
                   for chunk in screenplay_chunks(scene)[: MAX_BLOCKS - 1]]
    text = "The edit window expired; click Edit under the scene again to reopen it."
    return blocks, text


def screenplay_from_message(message: dict) -> tuple[str, bool] | None:
    """(scene, was_cut) as shown in a posted message (Slack hands it back in block_actions)."""
    for block in message.get("blocks") or ():
        if block.get("block_id") == SCREENPLAY_BLOCK_ID:
            text = block.get("text", {}).get("text", "")
            text = text.removeprefix(_FENCE).removesuffix(_FENCE).strip("\n")
            cut = text.endswith(_CUT_NOTE)
            return unescape(text.removesuffix(_CUT_NOTE).rstrip("\n")), cut
    return None


# --- the edit modal ----------------------------------------------------------------


def edit_modal(generation_id: int | str, text: str, *, channel_id: str, message_ts: str | None = None,
               partial: bool = False, scene_ts: str | None = None) -> dict:
    """A modal to edit a scene; submitting it records an edited approval.

    `message_ts` is the thread to answer in, `scene_ts` the scene's own message (whose
    approval state is updated on submission). `partial`: the text is only the start of a
    longer scene (a plain_text_input holds 3000 characters); the writer is told that
    saving keeps only what the box holds.
    """
    blocks: list[dict] = []
    if partial or len(text) > INPUT_LIMIT:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            ":warning: This scene is longer than the box holds; only its start is shown, "
            "and saving keeps only what is in the box.")}]})
    blocks.append({
        "type": "input",
        "block_id": EDIT_BLOCK_ID,
        "label": {"type": "plain_text", "text": f"Scene (generation {generation_id})"},
        "element": {
            "type": "plain_text_input",
            "action_id": EDIT_INPUT_ID,
            "multiline": True,
            "max_length": INPUT_LIMIT,
            "initial_value": text[:INPUT_LIMIT],
        },
    })
    metadata = json.dumps({"generation_id": int(generation_id), "channel": channel_id, "message_ts": message_ts,
                           "scene_ts": scene_ts})
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK_ID,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Edit scene"},
        "submit": {"type": "plain_text", "text": "Save & approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


@dataclass(frozen=True)
class EditSubmission:
    generation_id: int
    channel: str
    message_ts: str | None
    text: str
    scene_ts: str | None = None


def parse_edit_submission(view: dict) -> EditSubmission:
    """The generation, the place to answer, and the edited text of a submitted edit modal."""
    metadata = json.loads(view.get("private_metadata") or "{}")
    value = view["state"]["values"][EDIT_BLOCK_ID][EDIT_INPUT_ID].get("value") or ""
    return EditSubmission(
        generation_id=int(metadata["generation_id"]),
        channel=str(metadata["channel"]),
        message_ts=metadata.get("message_ts"),
        text=value,
        scene_ts=metadata.get("scene_ts"),
    )

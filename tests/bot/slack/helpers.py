"""What the Slack tests read off the emulator: scenes, their buttons, their text, their threads."""

from __future__ import annotations

from emulators.slack import ApiCall
from store import feedback
from store.db import session_scope

SITUATION = "a detective corners her former partner in a rainy alley"
QUIET_S = 0.4  # how long "nothing more happens" is watched for


def top_level(call: ApiCall) -> bool:
    return not call.args.get("thread_ts")


def post_scene(room, text: str = SITUATION) -> ApiCall:
    response = room.sender.command("/dialogue", text)
    assert response.status_code == 200
    return room.api.wait_for("chat.postMessage", where=top_level)[-1]


def buttons(call: ApiCall) -> dict[str, str]:
    return {element["action_id"]: element["value"]
            for block in call.args["blocks"] if block["type"] == "actions" for element in block["elements"]}


def all_text(call: ApiCall) -> str:
    parts = [call.args.get("text", "")]
    for block in call.args.get("blocks") or []:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [element.get("text", "") for element in block.get("elements", []) if block["type"] == "context"]
    return "\n".join(parts)


def thread_replies(room, ts: str) -> list[ApiCall]:
    return [call for call in room.api.messages() if call.args.get("thread_ts") == ts]


def summary(room, generation_id: int):
    with session_scope(room.services.sessions) as session:
        return feedback.feedback_summary(session, generation_id=generation_id)

"""Turn a /dialogue request into chat messages (and the opening of the answer).

Normalizing the answer into Fountain lives in screenplay/form.py.

The template lives in config/prompts/dialogue.toml so a room can tune wording
without touching code.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from config.settings import REPO_ROOT
from retrieval.types import SceneHit
from screenplay.form import (
    HEADING_LINE,
    derive_heading,
    normalize_fountain,
    time_of_day,
)

__all__ = ["DialogueRequest", "parse_dialogue_request", "build_messages", "build_prefill", "with_prefill",
           "join_prefill", "heading_from_completion", "CONTINUE_FINAL_MESSAGE", "HEADING_PREFILL", "normalize_fountain", "load_template"]

PROMPT_FILE = REPO_ROOT / "config" / "prompts" / "dialogue.toml"

_CHARACTERS = re.compile(r"\bcharacters?\s*:\s*(?P<value>[^\n]*?)(?=\s+\btone\s*:|$)", re.IGNORECASE)
_TONE = re.compile(r"\btone\s*:\s*(?P<value>[^\n]*?)(?=\s+\bcharacters?\s*:|$)", re.IGNORECASE)


@dataclass(frozen=True)
class DialogueRequest:
    situation: str
    characters: tuple[str, ...] = ()
    tone: str = ""


def parse_dialogue_request(text: str) -> DialogueRequest:
    """'a heist goes wrong characters: Ann, Bo tone: farce' -> situation, characters, tone."""
    characters_match = _CHARACTERS.search(text)
    tone_match = _TONE.search(text)
    situation = text
    for match in (characters_match, tone_match):
        if match:
            situation = situation.replace(match.group(0), " ")
    characters = ()
    if characters_match:
        characters = tuple(
            name.strip().upper() for name in re.split(r",|\band\b", characters_match.group("value")) if name.strip()
        )
    tone = tone_match.group("value").strip() if tone_match else ""
    return DialogueRequest(situation=" ".join(situation.split()).strip(" .;"), characters=characters, tone=tone)


@lru_cache(maxsize=4)
def load_template(path: Path = PROMPT_FILE) -> dict[str, str]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def build_messages(request: DialogueRequest, exemplars: list[SceneHit], *, exemplar_chars: int,
                   template: dict[str, str] | None = None, worked_example: bool = True) -> list[dict[str, str]]:
    """The chat for one scene request.

    ``worked_example`` puts the template's example exchange before the request. Every scene
    is asked with it, adapters included: it anchors the form, the adapter brings the room's
    voice. Training examples leave it out (False): a third fewer tokens per example, so a
    run takes that much less time. Measured on the corpus proof's adapter (benchmarks/
    RESULTS.md): 14/16 valid scenes served with the example, 6/16 without, base model 12/16
    (in-sample: on the tuning prompts the heuristics were fitted to).
    """
    template = template or load_template()
    user = template["request"].format(
        situation=request.situation,
        characters=", ".join(request.characters) or template["default_characters"],
        tone=request.tone or template["default_tone"],
    )
    if exemplars:
        shown = "\n\n".join(_exemplar_text(hit, exemplar_chars) for hit in exemplars)
        user = f"{template['exemplar_intro']}\n\n{shown}\n\n{user}"
    example = [
        {"role": "user", "content": template["example_request"]},
        {"role": "assistant", "content": template["example_scene"]},
    ] if worked_example else []
    return [{"role": "system", "content": template["system"]}, *example, {"role": "user", "content": user}]


def _exemplar_text(hit: SceneHit, limit: int) -> str:
    body = (hit.scene.text or hit.scene.excerpt).strip()
    if len(body) > limit:
        body = body[:limit].rsplit("\n", 1)[0]
    return f"From {hit.title}:\n{body}"


HEADING_PREFILL = "INT."  # opens the answer when the situation names no place: the model names it
HEADING_MAX_TOKENS = 16


def build_prefill(request: DialogueRequest, heading: str | None = None) -> str:
    """The opening of the assistant's answer, for backends that continue a final assistant message.

    A 135M model that is handed the scene heading and the first speaker's cue stays in
    screenplay form far more often than one that has to choose a form itself. ``heading``
    defaults to one derived from the situation; without either only "INT." is given.
    """
    heading = heading or derive_heading(request.situation)
    if heading is None:
        return HEADING_PREFILL
    first_cue = f"{request.characters[0]}\n" if request.characters else ""
    return f"{heading}\n\n{first_cue}"


def heading_from_completion(text: str, situation: str) -> str | None:
    """The model's continuation of "INT." -> a clean heading line, or None when it wrote no place.

    ' KITCHEN - NIGHT\n\nMAYA...' -> 'INT. KITCHEN - NIGHT'; the time of day comes from the
    situation when the model gave none.
    """
    first = text.strip().split("\n", 1)[0]
    place = re.split(r"\s[-–—]+\s?|--|[.,:;!?(]", first, maxsplit=1)[0]
    words = re.findall(r"[A-Za-z][A-Za-z'’]*", place)[:5]
    if not words or (len(words) > 3 and place != place.upper()):
        return None  # prose ("The bank had been attacked"), not a place
    time_match = re.search(r"\b(DAY|NIGHT|DAWN|DUSK|MORNING|EVENING|LATER|CONTINUOUS)\b", first.upper())
    return f"INT. {' '.join(words).upper()} - {time_match.group(1) if time_match else time_of_day(situation)}"


def with_prefill(messages: list[dict[str, str]], prefill: str) -> list[dict[str, str]]:
    return [*messages, {"role": "assistant", "content": prefill}] if prefill else list(messages)


# vLLM's request fields for "continue the last assistant message"; our backend accepts them too.
CONTINUE_FINAL_MESSAGE = {"continue_final_message": True, "add_generation_prompt": False}


def join_prefill(prefill: str, completion: str) -> str:
    """The whole answer: the prefill plus its continuation.

    A server that ignored the continuation fields starts a fresh answer; when that answer
    opens with a scene heading of its own the prefill is not put in front of it.
    """
    if not prefill:
        return completion
    fresh = completion.lstrip()
    if HEADING_LINE.match(fresh):
        return completion
    if prefill.endswith("\n") or completion[:1].isspace():
        return prefill + completion
    return f"{prefill} {completion}" if prefill[-1:] in ".:" else prefill + completion


# A thread follow-up ("@writersroom make Cole angrier" under a scene): the usual prompt, then
# the scene as the model's own earlier answer and the direction as the writer's next turn.
# Serving and training build that conversation here, so an adapter trains on what it is served.
FOLLOW_UP_NOTE = ("Write the next version of the scene above, following this direction: {direction}\n"
                  "Keep the screenplay format, and keep what the direction does not change.")


def follow_up_turns(previous_scene: str, direction: str) -> list[dict[str, str]]:
    """The two turns a follow-up adds after the scene prompt."""
    return [{"role": "assistant", "content": previous_scene},
            {"role": "user", "content": FOLLOW_UP_NOTE.format(direction=direction)}]


def merged_request(parent_prompt: str, direction: str) -> DialogueRequest:
    """The parent's request, with characters and tone the direction adds or changes."""
    parent = parse_dialogue_request(parent_prompt)
    asked = parse_dialogue_request(direction)
    characters = parent.characters + tuple(name for name in asked.characters if name not in parent.characters)
    return DialogueRequest(parent.situation, characters, asked.tone or parent.tone)


def prompt_text(request: DialogueRequest) -> str:
    """A request as /dialogue text (what Regenerate re-runs), parsed back the same way."""
    text = request.situation
    if request.characters:
        text += f" characters: {', '.join(request.characters)}"
    if request.tone:
        text += f" tone: {request.tone}"
    return text

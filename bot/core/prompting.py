"""Turn a /dialogue request into chat messages, and the model's answer into Fountain.

The template lives in config/prompts/dialogue.toml so a room can tune wording
without touching code.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from retrieval.types import SceneHit

from bot.settings import REPO_ROOT

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
                   template: dict[str, str] | None = None) -> list[dict[str, str]]:
    template = template or load_template()
    user = template["request"].format(
        situation=request.situation,
        characters=", ".join(request.characters) or template["default_characters"],
        tone=request.tone or template["default_tone"],
    )
    if exemplars:
        shown = "\n\n".join(_exemplar_text(hit, exemplar_chars) for hit in exemplars)
        user = f"{template['exemplar_intro']}\n\n{shown}\n\n{user}"
    return [
        {"role": "system", "content": template["system"]},
        {"role": "user", "content": template["example_request"]},
        {"role": "assistant", "content": template["example_scene"]},
        {"role": "user", "content": user},
    ]


def _exemplar_text(hit: SceneHit, limit: int) -> str:
    body = (hit.scene.text or hit.scene.excerpt).strip()
    if len(body) > limit:
        body = body[:limit].rsplit("\n", 1)[0]
    return f"From {hit.title}:\n{body}"


_NAME_COLON = re.compile(r"^(?P<name>[A-Z][A-Za-z .'-]{0,30}):\s+(?P<line>\S.*)$")


def normalize_fountain(text: str) -> str:
    """Light clean-up of model output into Fountain.

    `NAME: line` becomes a cue and its dialogue, runs of blank lines collapse, and a
    trailing sentence cut off by the token limit is dropped. The validating, repairing
    screenplay layer of the backend issue builds on this.
    """
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        match = _NAME_COLON.match(line.strip())
        if match and not line.strip().upper().startswith(("INT", "EXT")):
            lines += ["", match.group("name").upper(), match.group("line")]
        else:
            lines.append(line)
    cleaned = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return _drop_cut_off_tail(cleaned)


def _drop_cut_off_tail(text: str) -> str:
    if not text or text[-1] in ".!?\"')—-:" or "\n" not in text:
        return text
    head, _, tail = text.rpartition("\n")
    if len(head) <= 40 or tail.isupper():  # dropping would leave nothing useful, or it is a cue
        return text
    head = head.rstrip()
    before, _, last = head.rpartition("\n")
    if last.isupper() and len(last) < 40 and before:  # a cue whose dialogue was the cut-off line
        head = before.rstrip()
    return head

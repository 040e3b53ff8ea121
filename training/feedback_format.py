"""The feedback JSONL format (docs/feedback-format.md): one approved scene per line.

    {"prompt": "a heist goes wrong characters: Ann, Bo", "text": "INT. VAULT - NIGHT\\n...",
     "room": "T1:C42", "author": "ana", "characters": ["ANN", "BO"], "edited_from": "..."}

``prompt`` and ``text`` are required; the rest is optional. ``label`` ("approved",
the default, "rejected" or "superseded") marks the preference-data lines that
``writersroom feedback export --include-rejected`` adds. Unknown keys are ignored, so
newer files still import.

Also here: the normalisation behind the content hash that deduplicates examples
(import, dataset) and splits them into train and validation.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

#: Longest scene a line may carry. A scene is a few pages; anything longer is a whole
#: script pasted by mistake, and training cuts examples at max_seq_len tokens anyway.
MAX_TEXT_CHARS = 20_000
#: Longest prompt, as settings.generation.max_prompt_chars by default (what chat accepts).
MAX_PROMPT_CHARS = 1500
LABELS = ("approved", "rejected", "superseded")
_OPTIONAL_STRINGS = ("room", "author", "edited_from")


# --- content hash ----------------------------------------------------------------------


def normalize_prompt(prompt: str) -> str:
    """Whitespace runs collapsed: the same request typed with other spacing is the same request."""
    return " ".join(unicodedata.normalize("NFC", prompt).split())


def normalize_text(text: str) -> str:
    """Line endings unified, trailing spaces and blank edges dropped; line breaks and
    indentation kept, since they carry the screenplay format."""
    lines = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def content_hash(prompt: str, text: str) -> str:
    """sha256 hex of the normalised prompt and text: an example's identity."""
    payload = f"{normalize_prompt(prompt)}\0{normalize_text(text)}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackLine:
    """One valid line of a feedback file."""

    line: int  # 1-based line number in the file
    prompt: str
    text: str
    room: str | None = None
    author: str | None = None
    characters: tuple[str, ...] = ()
    edited_from: str | None = None
    label: str = "approved"

    @property
    def content_hash(self) -> str:
        return content_hash(self.prompt, self.text)


class BadLine(NamedTuple):
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def parse_line(raw: str, *, line: int, max_prompt_chars: int = MAX_PROMPT_CHARS,
               max_text_chars: int = MAX_TEXT_CHARS) -> FeedbackLine:
    """One line -> FeedbackLine; ValueError with the reason (no line number) when it is bad."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:  # the line number is the file's, so only the column is told
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    prompt = _required_string(data, "prompt")
    text = _required_string(data, "text")
    if len(prompt) > max_prompt_chars:
        raise ValueError(f"prompt is {len(prompt):,} characters; the limit is {max_prompt_chars:,}")
    if len(text) > max_text_chars:
        raise ValueError(f"text is {len(text):,} characters; the limit is {max_text_chars:,}")
    optional = {name: _optional_string(data, name) for name in _OPTIONAL_STRINGS}
    label = "approved" if data.get("label") is None else data["label"]
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    edited_from = optional["edited_from"]
    if edited_from == text:  # an "edit" that changed nothing is no edit
        edited_from = None
    return FeedbackLine(line=line, prompt=prompt, text=text, room=optional["room"], author=optional["author"],
                        characters=_characters(data), edited_from=edited_from, label=label)


def _required_string(data: dict[str, Any], name: str) -> str:
    if name not in data or data[name] is None:
        raise ValueError(f"missing {name!r}")
    value = data[name]
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name!r} is empty")
    return value


def _optional_string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string or null, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name!r} is empty (leave it out instead)")
    return value.strip() if name != "edited_from" else value


def _characters(data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get("characters")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError("'characters' must be a list of strings")
    # Upper case, as parse_dialogue_request gives them: Fountain cues are upper case.
    return tuple(dict.fromkeys(name.strip().upper() for name in value if name.strip()))


def iter_feedback(lines: Iterable[bytes | str], **limits: int) -> Iterator[FeedbackLine | BadLine]:
    """Each non-blank line, parsed: a FeedbackLine or a BadLine with its number."""
    for number, raw in enumerate(lines, 1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield BadLine(number, f"not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
        if not raw.strip():
            continue
        try:
            yield parse_line(raw, line=number, **limits)
        except ValueError as exc:
            yield BadLine(number, str(exc))


def read_feedback(path: Path, **limits: int) -> tuple[list[FeedbackLine], list[BadLine]]:
    """Every line of ``path`` checked first: (good lines, bad lines), both in file order."""
    good: list[FeedbackLine] = []
    bad: list[BadLine] = []
    with Path(path).open("rb") as handle:
        for item in iter_feedback(handle, **limits):
            (bad if isinstance(item, BadLine) else good).append(item)  # type: ignore[arg-type]
    return good, bad


# --- writing -----------------------------------------------------------------------------


def record(*, prompt: str, text: str, room: str | None = None, author: str | None = None,
           characters: Iterable[str] = (), edited_from: str | None = None, label: str | None = None,
           approved_text: str | None = None) -> dict[str, Any]:
    """One line's object; optional keys only where they say something."""
    out: dict[str, Any] = {"prompt": prompt, "text": text}
    if room is not None:
        out["room"] = room
    if author is not None:
        out["author"] = author
    out["characters"] = list(characters)
    if edited_from is not None and edited_from != text:
        out["edited_from"] = edited_from
    if label is not None and label != "approved":
        out["label"] = label
        if approved_text is not None:
            out["approved_text"] = approved_text
    return out


def write_records(handle: IO[str], records: Iterable[dict[str, Any]]) -> int:
    """Write one compact JSON object per line; returns how many."""
    count = 0
    for item in records:
        handle.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count

"""Approved scenes from the store -> a deduplicated train/validation dataset.

    from training.dataset import build_dataset, write_jsonl
    data = build_dataset(sessions, validation_share=0.1, room="T1:C42", exemplar_text=lookup)
    write_jsonl("train.jsonl", data.train)

What counts as an example is the store's consent rule (``store.feedback``, module
doc): opted-out writers' scenes and votes are left out there, and edited text wins.
Each example's ``messages`` are the chat messages the bot sent when it wrote the scene
(``screenplay.prompting.build_messages`` over the same request and the same retrieved
exemplars), followed by the approved text as the assistant's answer, so the adapter learns
on the prompt it will be served, less the worked example (``build_messages`` says why).

Examples are identified by a content hash (normalised prompt and text): duplicates
keep the newest, and the split is a pure function of the hash, so an example never
moves between train and validation as more data arrives. The one exception: with no
example's hash landing in validation (tiny datasets), the lowest-bucket example is held
out so there is always one validation example once there are two; it moves back to
train as soon as another example lands in validation on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker

from screenplay.prompting import (
    DialogueRequest,
    build_messages,
    follow_up_turns,
    merged_request,
    parse_dialogue_request,
)
from store import feedback
from store.models import Generation
from training.feedback_format import (
    content_hash,
    normalize_prompt,
    record,
    write_records,
)

#: Maps a generation's retrieved scene ids to SceneHit-like exemplars (title, scene.text).
ExemplarLookup = Callable[[list[str]], list]

TRAIN, VALIDATION = "train", "validation"
_BUCKETS = 1000


@dataclass(frozen=True)
class Example:
    prompt: str  # the request as the writer typed it
    text: str  # the approved scene (Fountain): the latest consenting edit where edited
    messages: list[dict[str, str]]  # the serving prompt + {"role": "assistant", "content": text}
    characters: tuple[str, ...]
    room: str | None  # the room's platform id (what the adapter registry calls a room)
    author: str | None  # the requesting writer's name
    generation_id: int | None
    content_hash: str
    split: str  # "train" | "validation"
    edited_from: str | None = None  # the generated text, when a writer's edit replaced it


@dataclass(frozen=True)
class Dataset:
    train: list[Example]
    validation: list[Example]
    #: Rejected and superseded outputs, for preference training: prompt, text, reason,
    #: generation_id, approved_text (of the same prompt, newest, or None), room, author, content_hash.
    rejected: list[dict[str, Any]]
    data_hash: str  # sha256 over the sorted content hashes of train + validation
    #: Left out and why: opted_out, contested, duplicates.
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.train) + len(self.validation)

    @property
    def examples(self) -> list[Example]:
        """Train and validation together, oldest generation first."""
        return sorted([*self.train, *self.validation], key=lambda e: (e.generation_id is None, e.generation_id or 0))


@dataclass(frozen=True)
class _Approved:
    """What one approved generation contributes, read while the session is open."""

    generation_id: int
    prompt: str
    text: str
    output: str
    scene_ids: list[str]
    parameters: dict[str, Any]
    room: str
    author: str
    parent_prompt: str | None
    parent_output: str | None


def build_dataset(sessions: sessionmaker[Session], *, validation_share: float, room: str | None = None,
                  exemplar_text: ExemplarLookup | None = None, exemplar_chars: int = 600) -> Dataset:
    """The training data in the store now (one room's, given its platform id)."""
    if not 0 <= validation_share < 1:
        raise ValueError(f"validation_share must be in [0, 1), not {validation_share!r}")
    approved, rejected, excluded = _read_store(sessions, room)
    newest: dict[str, Example] = {}
    for row in approved:  # oldest first, so a later duplicate replaces an earlier one
        example = _example(row, exemplar_text, exemplar_chars)
        newest.pop(example.content_hash, None)
        newest[example.content_hash] = example
    examples = assign_splits(list(newest.values()), validation_share)
    hashes = sorted(newest)
    return Dataset(
        train=[e for e in examples if e.split == TRAIN],
        validation=[e for e in examples if e.split == VALIDATION],
        rejected=_rejected(rejected, examples),
        data_hash=hashlib.sha256("\n".join(hashes).encode()).hexdigest(),
        excluded={**excluded, "duplicates": len(approved) - len(newest)},
    )


def _read_store(sessions: sessionmaker[Session], room: str | None) -> tuple[list[_Approved], list[dict], dict]:
    # One short session: the exemplar lookups and prompt building happen after it closed.
    with sessions() as session:
        approved = [_approved_row(session, item.generation, item.text)
                    for item in feedback.approved_examples(session, room_ref=room)]
        rejected = [{"prompt": item.generation.prompt, "text": item.generation.output, "reason": item.reason,
                     "generation_id": item.generation.id, "room": item.generation.room.external_id,
                     "author": item.generation.user.label}
                    for item in feedback.rejected_outputs(session, room_ref=room)]
        excluded = feedback.training_exclusions(session, room_ref=room)
    return approved, rejected, excluded


def _approved_row(session: Session, generation: Generation, text: str) -> _Approved:
    parent = generation.parent if generation.parameters.get("follow_up") else None
    return _Approved(generation.id, generation.prompt, text, generation.output, list(generation.retrieved_scene_ids),
                     dict(generation.parameters), generation.room.external_id, generation.user.label,
                     parent.prompt if parent else None, parent.output if parent else None)


def _request(row: _Approved) -> DialogueRequest:
    request = parse_dialogue_request(row.prompt)
    stored = tuple(row.parameters.get("characters") or ())
    if not request.characters and stored:  # an imported line's "characters" field
        request = replace(request, characters=stored)
    return request


def _example(row: _Approved, exemplar_text: ExemplarLookup | None, exemplar_chars: int) -> Example:
    exemplars = exemplar_text(row.scene_ids) if exemplar_text and row.scene_ids else []
    if row.parent_prompt is not None:
        request, prompt_messages = _follow_up_messages(row, exemplars, exemplar_chars)
    else:
        request = _request(row)
        prompt_messages = build_messages(request, list(exemplars), exemplar_chars=exemplar_chars,
                                         worked_example=False)
    return Example(
        prompt=row.prompt, text=row.text, messages=[*prompt_messages, {"role": "assistant", "content": row.text}],
        characters=request.characters, room=row.room, author=row.author, generation_id=row.generation_id,
        content_hash=content_hash(row.prompt, row.text), split=TRAIN,
        edited_from=row.output if row.output != row.text else None,
    )


def _follow_up_messages(row: _Approved, exemplars: list, exemplar_chars: int) -> tuple[DialogueRequest, list]:
    """A follow-up was served the parent scene and the direction after the usual prompt:
    rebuild that conversation with the follow-up's own code."""
    direction = str(row.parameters["follow_up"])
    request = merged_request(row.parent_prompt or "", direction)
    messages = build_messages(request, list(exemplars), exemplar_chars=exemplar_chars, worked_example=False)
    messages += follow_up_turns(row.parent_output or "", direction)
    return request, messages


def bucket(hash_hex: str) -> int:
    """The example's fixed place in [0, 1000): below share*1000 is validation."""
    return int(hash_hex[:8], 16) % _BUCKETS


def assign_splits(examples: Sequence[Example], validation_share: float) -> list[Example]:
    """Each example with its split, by content hash; at least one of each once there are two."""
    cut = round(validation_share * _BUCKETS)
    out = [replace(e, split=VALIDATION if bucket(e.content_hash) < cut else TRAIN) for e in examples]
    if len(out) >= 2 and validation_share > 0:
        order = sorted(range(len(out)), key=lambda i: (bucket(out[i].content_hash), out[i].content_hash))
        if all(e.split == TRAIN for e in out):
            out[order[0]] = replace(out[order[0]], split=VALIDATION)
        elif all(e.split == VALIDATION for e in out):
            out[order[-1]] = replace(out[order[-1]], split=TRAIN)
    return out


def _rejected(rejected: list[dict[str, Any]], examples: list[Example]) -> list[dict[str, Any]]:
    """Newest approved text per prompt beside each rejected output; an output whose very
    text was approved elsewhere is not a negative, and duplicates keep the newest."""
    approved_hashes = {e.content_hash for e in examples}
    approved_text: dict[str, str] = {}
    for example in sorted(examples, key=lambda e: e.generation_id or 0):
        approved_text[normalize_prompt(example.prompt)] = example.text
    newest: dict[str, dict[str, Any]] = {}
    for item in rejected:
        digest = content_hash(item["prompt"], item["text"])
        if digest in approved_hashes:
            continue
        newest.pop(digest, None)
        newest[digest] = {**item, "content_hash": digest,
                          "approved_text": approved_text.get(normalize_prompt(item["prompt"]))}
    return list(newest.values())


# --- export ------------------------------------------------------------------------------


def example_record(example: Example) -> dict[str, Any]:
    """An example as a line of the feedback format (docs/feedback-format.md)."""
    return record(prompt=example.prompt, text=example.text, room=example.room, author=example.author,
                  characters=example.characters, edited_from=example.edited_from)


def rejected_record(item: dict[str, Any]) -> dict[str, Any]:
    """A rejected or superseded output as a labelled line of the feedback format."""
    return record(prompt=item["prompt"], text=item["text"], room=item.get("room"), author=item.get("author"),
                  characters=parse_dialogue_request(item["prompt"]).characters, label=item["reason"],
                  approved_text=item.get("approved_text"))


def write_jsonl(path: Path | str | IO[str], examples: Iterable[Example | dict[str, Any]]) -> int:
    """Write examples (and rejected-output dicts) in the feedback format; returns the line count.

    A path is written whole or not at all (temporary file, then renamed)."""
    records = (example_record(e) if isinstance(e, Example) else rejected_record(e) for e in examples)
    if not isinstance(path, (str, Path)):
        return write_records(path, records)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            count = write_records(handle, records)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return count

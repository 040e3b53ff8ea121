"""Store the lines of a feedback file as generations and feedback, like chat does.

Each approved line becomes a generation (model "imported", parameters naming the
source file and line) approved by its author, a writer on platform "local"; with
``edited_from`` the generation's output is that text and an edit event by the author
carries ``text``. Rejected and superseded lines (from ``export --include-rejected``)
become a generation rejected by the author. So imported scenes reach training through
the same ``approved_examples`` path as chat approvals, under the same consent rule: an
author who turned consent off contributes nothing.

Idempotent: the approval (or rejection) carries a delivery id derived from room, label
and content hash, and the store refuses a delivery id twice, so importing the same
file again, or a line twice, adds nothing, even from two processes at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from store import feedback, generations, rooms
from store.db import session_scope
from store.models import Room
from training.feedback_format import FeedbackLine

IMPORT_MODEL = "imported"
DEFAULT_ROOM = "local:import"
DEFAULT_AUTHOR = "import"
#: Lines per transaction: short transactions keep the bot's writes flowing (SQLite has one
#: writer at a time) and an interrupted import keeps its finished batches.
BATCH_LINES = 200


@dataclass
class ImportResult:
    imported: int = 0
    already: int = 0  # in the store already, or earlier in the same file
    rooms: dict[str, int] = field(default_factory=dict)  # imported lines per room


class _AlreadyThere(Exception):
    """Another import stored this line between our check and our insert."""


def delivery_key(room: str, line: FeedbackLine) -> str:
    """The delivery id of a line's vote: the same scene in the same room is imported once."""
    digest = hashlib.sha256(f"{room}\0{line.label}\0{line.content_hash}".encode()).hexdigest()
    return f"import:{digest}"


def import_lines(sessions: sessionmaker[Session], lines: Sequence[FeedbackLine], *, source: str,
                 room: str | None = None, progress: bool = False) -> ImportResult:
    """Store ``lines`` (already validated); ``room`` puts every line in that room."""
    result = ImportResult()
    with tqdm(total=len(lines), desc="import", unit="line", disable=None if progress else True) as bar:  # None: off when not a terminal
        for start in range(0, len(lines), BATCH_LINES):
            batch = lines[start:start + BATCH_LINES]
            with session_scope(sessions) as session:
                known_rooms: dict[str, Room] = {}
                for line in batch:
                    room_ref = room or line.room or DEFAULT_ROOM
                    if _import_line(session, line, source=source, room_ref=room_ref, known_rooms=known_rooms):
                        result.imported += 1
                        result.rooms[room_ref] = result.rooms.get(room_ref, 0) + 1
                    else:
                        result.already += 1
            bar.update(len(batch))
    return result


def _room(session: Session, room_ref: str, known_rooms: dict[str, Room]) -> Room:
    """The room with this platform id on any platform (the room's own data then trains
    with the imported lines), else a new local room of that name."""
    if room_ref not in known_rooms:
        found = rooms.rooms_by_ref(session, room_ref=room_ref)
        known_rooms[room_ref] = found[0] if found else rooms.get_or_create_room(
            session, platform="local", external_id=room_ref, name=room_ref)
    return known_rooms[room_ref]


def _import_line(session: Session, line: FeedbackLine, *, source: str, room_ref: str, known_rooms: dict[str, Room]) -> bool:
    """Store one line; False when it was there already."""
    key = delivery_key(room_ref, line)
    if feedback.feedback_by_delivery(session, delivery_id=key) is not None:
        return False
    room = _room(session, room_ref, known_rooms)
    author = rooms.get_or_create_user(session, platform="local", external_id=line.author or DEFAULT_AUTHOR)
    try:
        with session.begin_nested():
            generation = generations.record_generation(
                session, room=room, user=author, prompt=line.prompt, parameters=_parameters(line, source),
                retrieved_scene_ids=[], output=line.edited_from or line.text, model=IMPORT_MODEL, adapter=None,
                latency_ms=0,
            )
            if line.edited_from is not None:
                feedback.record_feedback(session, generation_id=generation.id, user=author, kind="edit",
                                         edited_text=line.text, delivery_id=f"{key}:edit")
            kind = "approve" if line.label == "approved" else "reject"
            _, created = feedback.record_feedback(session, generation_id=generation.id, user=author, kind=kind,
                                                  delivery_id=key)
            if not created:
                raise _AlreadyThere  # undoes this line's generation and edit
    except _AlreadyThere:
        return False
    return True


def _parameters(line: FeedbackLine, source: str) -> dict[str, Any]:
    parameters: dict[str, Any] = {"source": source, "line": line.line, "content_hash": line.content_hash}
    if line.characters:
        parameters["characters"] = list(line.characters)
    if line.label != "approved":
        parameters["label"] = line.label
    return parameters

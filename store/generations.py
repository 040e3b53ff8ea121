"""Generated scenes: recording them, fetching them, where they were posted, and which
scene a chat thread is about.

A scene is tied to a platform thread two ways: ``message_ref`` is where the adapter
posted it (the root of the thread that grows under it), ``thread_ref`` the thread it
was written in. A regeneration or follow-up names the scene it replaces (``parent_id``).

Like every store module: the session first, keyword-only arguments after it; functions
flush but never commit (the caller owns the transaction, see ``session_scope``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ._shared import choice
from .models import Generation, Platform, Room, User


def record_generation(
    session: Session,
    *,
    room: Room,
    user: User,
    prompt: str,
    parameters: dict[str, Any],
    retrieved_scene_ids: Sequence[str],
    output: str,
    model: str,
    adapter: str | None,
    latency_ms: int,
    thread_ref: str | None = None,
    parent_id: int | None = None,
) -> Generation:
    """Store one generated scene; ``adapter=None`` means the base model answered."""
    if parent_id is not None and session.get(Generation, parent_id) is None:
        raise ValueError(f"parent generation {parent_id} does not exist")
    generation = Generation(
        room=room,
        user=user,
        prompt=prompt,
        parameters=dict(parameters),
        retrieved_scene_ids=[str(scene_id) for scene_id in retrieved_scene_ids],
        output=output,
        model=model,
        adapter=adapter,
        latency_ms=int(latency_ms),
        thread_ref=thread_ref,
        parent_id=parent_id,
    )
    session.add(generation)
    session.flush()
    return generation


def get_generation(session: Session, *, generation_id: int) -> Generation | None:
    return session.get(Generation, generation_id)


def require_generation(session: Session, *, generation_id: int) -> Generation:
    """The generation, or a ValueError saying it does not exist."""
    generation = session.get(Generation, generation_id)
    if generation is None:
        raise ValueError(f"generation {generation_id} does not exist")
    return generation


def set_message_ref(session: Session, *, generation_id: int, message_ref: str) -> None:
    """Remember where the scene was posted (the platform's message reference)."""
    require_generation(session, generation_id=generation_id).message_ref = message_ref
    session.flush()


def latest_generation(
    session: Session, *, room: Room, user: User | None = None
) -> Generation | None:
    """The newest generation in ``room`` (by ``user`` if given)."""
    query = select(Generation).where(Generation.room_id == room.id)
    if user is not None:
        query = query.where(Generation.user_id == user.id)
    query = query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(1)
    return session.scalars(query).first()


def newest_in_thread(
    session: Session, *, platform: str, room_external_id: str, root_ref: str, thread_id: str
) -> int | None:
    """The id of the newest generation of a thread in the room (platform, room_external_id):
    posted as its root message (message_ref = ``root_ref``) or written inside it
    (thread_ref = ``thread_id``). None when the thread has no scene."""
    query = (
        select(Generation.id)
        .join(Room, Generation.room_id == Room.id)
        .where(Room.platform == choice(Platform, platform, "platform"), Room.external_id == room_external_id,
               or_(Generation.message_ref == root_ref, Generation.thread_ref == thread_id))
        .order_by(Generation.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def cited_scenes(session: Session, *, room: Room) -> list[tuple[int, list[str]]]:
    """(generation id, retrieved scene ids) of every generation in ``room``, newest first:
    the library scenes the room's scenes were grounded in."""
    rows = session.execute(
        select(Generation.id, Generation.retrieved_scene_ids)
        .where(Generation.room_id == room.id)
        .order_by(Generation.created_at.desc(), Generation.id.desc())
    )
    return [(generation_id, list(scene_ids or ())) for generation_id, scene_ids in rows]

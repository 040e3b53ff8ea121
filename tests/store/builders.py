"""Rows for the store tests: a room, writers, a generated scene, feedback on it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import feedback, generations, rooms
from store.models import FeedbackEvent, Generation, Room, User


def make_room(session: Session, external_id: str = "T1/C1") -> Room:
    return rooms.get_or_create_room(session, platform="slack", external_id=external_id, name="#pilot")


def make_user(session: Session, external_id: str, name: str | None = None) -> User:
    return rooms.get_or_create_user(
        session, platform="slack", external_id=external_id, display_name=name
    )


def make_generation(
    session: Session, room: Room, user: User, output: str = "INT. ALLEY - NIGHT", **kwargs
) -> Generation:
    """A generated scene; ``kwargs`` go to ``record_generation`` (thread_ref, parent_id, ...)."""
    return generations.record_generation(
        session,
        room=room,
        user=user,
        prompt="a detective corners her former partner",
        parameters={"temperature": 0.7, "top_p": 0.9},
        retrieved_scene_ids=kwargs.pop("retrieved_scene_ids", ["casablanca#12", "chinatown#3"]),
        output=output,
        model="smollm2-135m",
        adapter=None,
        latency_ms=1234,
        **kwargs,
    )


def give_feedback(
    session: Session, generation: Generation, user: User, kind: str, **kwargs: str
) -> tuple[FeedbackEvent, bool]:
    return feedback.record_feedback(session, generation_id=generation.id, user=user, kind=kind, **kwargs)


def events_of(session: Session, generation: Generation) -> list[FeedbackEvent]:
    query = select(FeedbackEvent).where(FeedbackEvent.generation_id == generation.id)
    return list(session.scalars(query))

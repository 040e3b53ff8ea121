"""Rooms, the writers in them and each writer's training consent.

A room (a channel) is the unit of tenancy; a writer is a platform user. Both are unique
by (platform, external_id) and keep the platform's display name current. ``room_ref``
is a room's platform id (``Room.external_id``, e.g. ``T1:C42``) on whichever platform
has it, the name the adapter registry's serving pointer and the command line use.
What consent changes is the consent rule in ``store.feedback``.

Like every store module: the session first, keyword-only arguments after it; functions
flush but never commit (the caller owns the transaction, see ``session_scope``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._shared import choice, insert_or_fetch
from .models import Platform, Room, User


def get_or_create_room(
    session: Session, *, platform: str, external_id: str, name: str | None = None
) -> Room:
    """The room for (platform, external_id), created if new; a given name is kept current."""
    return _get_or_create_named(session, Room, platform=platform, external_id=external_id, name_field="name",
                                name=name)


def get_or_create_user(
    session: Session, *, platform: str, external_id: str, display_name: str | None = None
) -> User:
    """The writer for (platform, external_id), created if new; a given name is kept current."""
    return _get_or_create_named(session, User, platform=platform, external_id=external_id,
                                name_field="display_name", name=display_name)


def _get_or_create_named(session: Session, model: type[Room | User], *, platform: str, external_id: str,
                         name_field: str, name: str | None):
    """Rooms and writers share one shape: unique by (platform, external_id), with a display
    name that follows the platform's."""
    platform_ = choice(Platform, platform, "platform")
    query = select(model).where(model.platform == platform_, model.external_id == external_id)
    row = session.scalars(query).one_or_none()
    if row is None:
        new = model(platform=platform_, external_id=external_id, **{name_field: name})
        row, created = insert_or_fetch(session, new, lambda: session.scalars(query).one_or_none())
        if created:
            return row
    if name is not None and getattr(row, name_field) != name:
        setattr(row, name_field, name)
        session.flush()
    return row


def find_room(session: Session, *, platform: str, external_id: str) -> Room | None:
    """The room for (platform, external_id), or None if it never used the bot (nothing is created)."""
    try:
        platform_ = Platform(platform)
    except ValueError:
        return None
    query = select(Room).where(Room.platform == platform_, Room.external_id == external_id)
    return session.scalars(query).one_or_none()


def rooms_by_ref(session: Session, *, room_ref: str) -> list[Room]:
    """Rooms whose platform id is ``room_ref``, on any platform, oldest first."""
    query = select(Room).where(Room.external_id == room_ref).order_by(Room.id)
    return list(session.scalars(query))


def rooms_named(session: Session, *, name: str, platform: str | None = None) -> list[Room]:
    """Rooms a person may mean by ``name``: its external id, its display name, or "platform/external_id"."""
    query = select(Room)
    if platform:
        query = query.where(Room.platform == choice(Platform, platform, "platform"))
    rooms = list(session.scalars(query.order_by(Room.id)))
    exact = [room for room in rooms if f"{room.platform.value}/{room.external_id}" == name]
    return exact or [room for room in rooms if name in (room.external_id, room.name)]


def set_training_consent(session: Session, *, user: User, consent: bool) -> User:
    """Turn a writer's training consent on or off (the consent rule is in ``store.feedback``)."""
    user.training_consent = bool(consent)
    session.flush()
    return user

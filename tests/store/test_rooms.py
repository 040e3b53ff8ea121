"""Rooms, writers and consent (store/rooms.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store import rooms, session_scope
from store.models import Room, User
from tests.store.builders import make_room, make_user


def test_get_or_create_room_returns_the_same_room(session: Session) -> None:
    first = rooms.get_or_create_room(session, platform="slack", external_id="T1/C1", name="#pilot")
    again = rooms.get_or_create_room(session, platform="slack", external_id="T1/C1")
    renamed = rooms.get_or_create_room(session, platform="slack", external_id="T1/C1", name="#s2")
    other_platform = rooms.get_or_create_room(session, platform="discord", external_id="T1/C1")
    assert first.id == again.id == renamed.id != other_platform.id
    assert renamed.name == "#s2"
    assert session.scalar(select(func.count()).select_from(Room)) == 2


def test_get_or_create_user_defaults_to_consent(session: Session) -> None:
    user = rooms.get_or_create_user(session, platform="discord", external_id="42", display_name="Ana")
    assert user.training_consent is True
    assert rooms.get_or_create_user(session, platform="discord", external_id="42").id == user.id
    assert user.display_name == "Ana"


def test_unknown_platform_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="unknown platform 'teams'"):
        rooms.get_or_create_room(session, platform="teams", external_id="x")


def test_get_or_create_user_survives_a_concurrent_insert(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker creates the same writer between our lookup and our insert."""
    with session_scope(session_factory) as other:
        winner = make_user(other, "U9", "Bo")
    real_scalars = Session.scalars
    calls = {"n": 0}

    def first_lookup_misses(self, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        result = real_scalars(self, statement, *args, **kwargs)
        if calls["n"] == 1:
            result = real_scalars(self, select(User).where(User.id == -1))
        return result

    with session_scope(session_factory) as session:
        room = make_room(session)  # work done before the savepoint must survive it
        monkeypatch.setattr(Session, "scalars", first_lookup_misses)
        calls["n"] = 0
        user = make_user(session, "U9")
        monkeypatch.undo()
        assert calls["n"] == 2  # lookup missed, insert hit the unique constraint, refetched
        assert user.id == winner.id
    with session_scope(session_factory) as session:
        assert session.get(Room, room.id) is not None
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_find_room_creates_nothing(session: Session) -> None:
    assert rooms.find_room(session, platform="slack", external_id="T1/C1") is None
    assert rooms.find_room(session, platform="teams", external_id="T1/C1") is None  # no such platform, no room
    room = make_room(session)
    assert rooms.find_room(session, platform="slack", external_id="T1/C1").id == room.id
    assert rooms.find_room(session, platform="discord", external_id="T1/C1") is None
    assert session.scalar(select(func.count()).select_from(Room)) == 1


def test_rooms_by_ref_and_by_name(session: Session) -> None:
    slack = rooms.get_or_create_room(session, platform="slack", external_id="C1", name="#pilot")
    discord = rooms.get_or_create_room(session, platform="discord", external_id="C1", name="pilot")
    local = rooms.get_or_create_room(session, platform="local", external_id="finale", name="#pilot")
    assert [r.id for r in rooms.rooms_by_ref(session, room_ref="C1")] == [slack.id, discord.id]
    assert rooms.rooms_by_ref(session, room_ref="nowhere") == []
    assert [r.id for r in rooms.rooms_named(session, name="C1")] == [slack.id, discord.id]
    assert [r.id for r in rooms.rooms_named(session, name="C1", platform="discord")] == [discord.id]
    assert [r.id for r in rooms.rooms_named(session, name="discord/C1")] == [discord.id]
    assert [r.id for r in rooms.rooms_named(session, name="#pilot")] == [slack.id, local.id]
    assert rooms.rooms_named(session, name="nowhere") == []
    with pytest.raises(ValueError, match="unknown platform 'teams'"):
        rooms.rooms_named(session, name="C1", platform="teams")


def test_consent_is_turned_off_and_on(session: Session) -> None:
    ana = make_user(session, "U1")
    assert rooms.set_training_consent(session, user=ana, consent=False).training_consent is False
    assert rooms.get_or_create_user(session, platform="slack", external_id="U1").training_consent is False
    rooms.set_training_consent(session, user=ana, consent=True)
    assert ana.training_consent is True

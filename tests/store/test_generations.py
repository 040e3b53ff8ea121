"""Generated scenes (store/generations.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import generations, session_scope
from tests.store.builders import make_generation, make_room, make_user


def test_generation_round_trips_json_and_utc_time(session_factory: sessionmaker[Session]) -> None:
    parameters = {
        "temperature": 0.7,
        "stop": ["FADE OUT."],
        "nested": {"k": [1, 2.5, None], "ok": True},
        "é": "ü",
    }
    with session_scope(session_factory) as session:
        room, user = make_room(session), make_user(session, "U1")
        generation = generations.record_generation(
            session,
            room=room,
            user=user,
            prompt="two writers argue about the ending",
            parameters=parameters,
            retrieved_scene_ids=["a#1", "b#2"],
            output="FADE IN:",
            model="smollm2-135m",
            adapter="room-t1-v3",
            latency_ms=900,
            thread_ref="1700000000.0001",
        )
        generation_id = generation.id
    with session_scope(session_factory) as session:
        stored = generations.get_generation(session, generation_id=generation_id)
        assert stored is not None
        assert stored.parameters == parameters
        assert stored.retrieved_scene_ids == ["a#1", "b#2"]
        assert stored.adapter == "room-t1-v3"
        assert (stored.thread_ref, stored.message_ref) == ("1700000000.0001", None)
        assert stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset().total_seconds() == 0
        assert stored.created_at.tzinfo == UTC
        assert stored.room.external_id == "T1/C1" and stored.user.external_id == "U1"


def test_message_ref_is_set_after_posting(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        generation_id = make_generation(session, make_room(session), make_user(session, "U1")).id
    with session_scope(session_factory) as session:
        generations.set_message_ref(session, generation_id=generation_id, message_ref="C1:1700000000.0002")
    with session_scope(session_factory) as session:
        stored = generations.get_generation(session, generation_id=generation_id)
        assert stored.message_ref == "C1:1700000000.0002"
        with pytest.raises(ValueError, match="generation 999999 does not exist"):
            generations.set_message_ref(session, generation_id=999999, message_ref="x")


def test_latest_generation_per_room_and_writer(session: Session) -> None:
    room, other_room = make_room(session), make_room(session, "T1/C2")
    ana, bo = make_user(session, "U1"), make_user(session, "U2")
    assert generations.latest_generation(session, room=room) is None
    first = make_generation(session, room, ana)
    second = make_generation(session, room, bo)
    make_generation(session, other_room, ana)
    regenerated = generations.record_generation(
        session, room=room, user=ana, prompt=first.prompt, parameters={}, retrieved_scene_ids=[],
        output="take two", model="m", adapter=None, latency_ms=1, parent_id=first.id,
    )
    assert generations.latest_generation(session, room=room).id == regenerated.id
    assert generations.latest_generation(session, room=room, user=bo).id == second.id
    assert regenerated.parent is first


def test_regenerate_needs_an_existing_parent(session: Session) -> None:
    with pytest.raises(ValueError, match="parent generation 424242 does not exist"):
        generations.record_generation(
            session, room=make_room(session), user=make_user(session, "U1"), prompt="p", parameters={},
            retrieved_scene_ids=[], output="o", model="m", adapter=None, latency_ms=1,
            parent_id=424242,
        )


def test_newest_in_thread_finds_the_root_scene_or_one_written_inside(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1")

    def newest(*, platform: str = "slack", room_external_id: str = "T1/C1", root_ref: str = "C1:100.1",
               thread_id: str = "100.1") -> int | None:
        return generations.newest_in_thread(session, platform=platform, room_external_id=room_external_id,
                                            root_ref=root_ref, thread_id=thread_id)

    assert newest() is None
    posted = make_generation(session, room, ana)
    generations.set_message_ref(session, generation_id=posted.id, message_ref="C1:100.1")
    assert newest() == posted.id
    inside = make_generation(session, room, ana, thread_ref="100.1", parent_id=posted.id)
    assert newest() == inside.id
    make_generation(session, room, ana, thread_ref="200.2")  # another thread
    make_generation(session, make_room(session, "T1/C2"), ana, thread_ref="100.1")  # the same id in another room
    assert newest() == inside.id
    assert newest(root_ref="C1:999.9") == inside.id  # written inside is enough
    assert newest(platform="discord") is None
    assert newest(root_ref="nope", thread_id="nope") is None


def test_cited_scenes_newest_first_in_one_room(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1")
    first = make_generation(session, room, ana, retrieved_scene_ids=["a#1", "b#2"])
    second = make_generation(session, room, ana, retrieved_scene_ids=[])
    make_generation(session, make_room(session, "T1/C2"), ana, retrieved_scene_ids=["c#3"])
    assert generations.cited_scenes(session, room=room) == [(second.id, []), (first.id, ["a#1", "b#2"])]

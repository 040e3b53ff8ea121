"""Feedback, approval state, room counts and training data (store/feedback.py), on SQLite
and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import feedback, rooms, session_scope
from store.models import FeedbackKind, User
from tests.store.builders import (
    events_of,
    give_feedback,
    make_generation,
    make_room,
    make_user,
)

# --- recording feedback ----------------------------------------------------------------


def test_double_approval_stores_one_event(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1", "Ana")
    generation = make_generation(session, room, ana)
    first, created = give_feedback(session, generation, ana, "approve")
    again, created_again = give_feedback(session, generation, ana, "approve")
    assert created and not created_again
    assert again.id == first.id
    assert len(events_of(session, generation)) == 1
    assert feedback.feedback_summary(session, generation_id=generation.id).approvals == 1


def test_concurrent_double_click_stores_one_event(session_factory: sessionmaker[Session]) -> None:
    """Two workers handle the same click at once (Slack retries, double clicks)."""
    with session_scope(session_factory) as session:
        generation_id = make_generation(session, make_room(session), make_user(session, "U1")).id
    barrier = threading.Barrier(4)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            barrier.wait()
            with session_scope(session_factory) as session:
                user = make_user(session, "U1")
                event, created = feedback.record_feedback(
                    session, generation_id=generation_id, user=user, kind="approve"
                )
                results.append((event.id, created))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len({event_id for event_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with session_scope(session_factory) as session:
        assert feedback.feedback_summary(session, generation_id=generation_id).approvals == 1


def test_lost_insert_race_returns_the_stored_event(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our duplicate check ran before the other worker committed: the unique index decides."""
    with session_scope(session_factory) as session:
        room, ana = make_room(session), make_user(session, "U1")
        generation_id = make_generation(session, room, ana).id
    with session_scope(session_factory) as other:
        winner, _ = feedback.record_feedback(
            other, generation_id=generation_id, user=make_user(other, "U1"), kind="approve"
        )

    real_existing = feedback._existing_feedback
    calls = {"n": 0}

    def misses_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return None if calls["n"] == 1 else real_existing(*args, **kwargs)

    monkeypatch.setattr(feedback, "_existing_feedback", misses_once)
    with session_scope(session_factory) as session:
        bo = make_user(session, "U2")  # earlier work in the transaction must survive the savepoint
        event, created = feedback.record_feedback(
            session, generation_id=generation_id, user=make_user(session, "U1"), kind="approve"
        )
        assert (event.id, created) == (winner.id, False)
        assert calls["n"] == 2  # check missed, insert hit the unique index, refetched
    with session_scope(session_factory) as session:
        assert session.get(User, bo.id) is not None
        assert feedback.feedback_summary(session, generation_id=generation_id).approvals == 1


def test_redelivered_edit_stores_one_event(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1")
    generation = make_generation(session, room, ana)
    first, created = give_feedback(
        session, generation, ana, "edit", edited_text="new", delivery_id="d-1"
    )
    again, created_again = give_feedback(
        session, generation, ana, "edit", edited_text="new", delivery_id="d-1"
    )
    assert created and not created_again and again.id == first.id
    assert len(events_of(session, generation)) == 1


def test_redelivered_approval_stores_nothing(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1")
    generation = make_generation(session, room, ana)
    give_feedback(session, generation, ana, "approve", delivery_id="d-7")
    _, created = give_feedback(session, generation, ana, "approve", delivery_id="d-7")
    assert not created
    assert len(events_of(session, generation)) == 1


def test_edits_may_repeat_and_the_latest_wins(session: Session) -> None:
    room, ana, bo = make_room(session), make_user(session, "U1"), make_user(session, "U2")
    generation = make_generation(session, room, ana)
    give_feedback(session, generation, ana, "edit", edited_text="draft 2", delivery_id="a")
    give_feedback(session, generation, ana, "edit", edited_text="draft 3", delivery_id="b")
    give_feedback(session, generation, bo, "edit", edited_text="draft 4")
    summary = feedback.feedback_summary(session, generation_id=generation.id)
    assert summary.edits == 3
    assert summary.latest_edit == "draft 4"


def test_two_approvers_count_two(session: Session) -> None:
    room = make_room(session)
    ana, bo, cy = make_user(session, "U1", "Ana"), make_user(session, "U2"), make_user(session, "U3", "Cy")
    generation = make_generation(session, room, ana)
    give_feedback(session, generation, ana, "approve")
    give_feedback(session, generation, bo, "approve")
    give_feedback(session, generation, cy, "reject")
    summary = feedback.feedback_summary(session, generation_id=generation.id)
    assert (summary.approvals, summary.rejections, summary.edits) == (2, 1, 0)
    assert summary.approvers == ["Ana", "U2"]  # display name, else the platform id
    assert summary.latest_edit is None


def test_approve_and_reject_by_one_writer_are_separate_votes(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1")
    generation = make_generation(session, room, ana)
    _, approved = give_feedback(session, generation, ana, FeedbackKind.APPROVE)
    _, rejected = give_feedback(session, generation, ana, "reject")
    assert approved and rejected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "edit"}, "an edit needs the edited text"),
        ({"kind": "edit", "edited_text": "   "}, "an edit needs the edited text"),
        ({"kind": "approve", "edited_text": "x"}, "edited_text only goes with an edit"),
        ({"kind": "love"}, "unknown feedback kind 'love'"),
    ],
)
def test_bad_feedback_is_refused_clearly(session: Session, kwargs: dict, message: str) -> None:
    room, ana = make_room(session), make_user(session, "U1")
    generation = make_generation(session, room, ana)
    with pytest.raises(ValueError, match=message):
        feedback.record_feedback(session, generation_id=generation.id, user=ana, **kwargs)
    assert events_of(session, generation) == []


def test_feedback_on_a_missing_generation_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="generation 31337 does not exist"):
        feedback.record_feedback(session, generation_id=31337, user=make_user(session, "U1"), kind="approve")


def test_feedback_by_delivery(session: Session) -> None:
    room, ana = make_room(session), make_user(session, "U1")
    generation = make_generation(session, room, ana)
    assert feedback.feedback_by_delivery(session, delivery_id="d-1") is None
    event, _ = give_feedback(session, generation, ana, "approve", delivery_id="d-1")
    assert feedback.feedback_by_delivery(session, delivery_id="d-1").id == event.id


def test_people_by_kind_names_each_writer_once_first_first(session: Session) -> None:
    room = make_room(session)
    ana, bo, cy = make_user(session, "U1", "Ana"), make_user(session, "U2"), make_user(session, "U3")
    generation = make_generation(session, room, ana)
    assert feedback.people_by_kind(session, generation_id=generation.id) == {kind: [] for kind in FeedbackKind}
    give_feedback(session, generation, bo, "approve")
    give_feedback(session, generation, ana, "approve")
    give_feedback(session, generation, cy, "reject")
    give_feedback(session, generation, bo, "edit", edited_text="one")
    give_feedback(session, generation, bo, "edit", edited_text="two")
    assert feedback.people_by_kind(session, generation_id=generation.id) == {
        FeedbackKind.APPROVE: ["U2", "U1"],  # platform ids (adapters mention them), not display names
        FeedbackKind.REJECT: ["U3"],
        FeedbackKind.EDIT: ["U2"],
    }


# --- training data -----------------------------------------------------------------


def test_approved_examples_use_the_latest_edit(session: Session) -> None:
    room, ana, bo = make_room(session), make_user(session, "U1"), make_user(session, "U2")
    edited = make_generation(session, room, ana, output="original")
    plain = make_generation(session, room, ana, output="kept as is")
    unreviewed = make_generation(session, room, ana, output="nobody looked")
    give_feedback(session, edited, bo, "edit", edited_text="first fix")
    give_feedback(session, edited, ana, "edit", edited_text="final fix")
    for generation in (edited, plain):
        give_feedback(session, generation, bo, "approve")
    give_feedback(session, unreviewed, bo, "edit", edited_text="edit alone")
    examples = feedback.approved_examples(session)
    assert [(e.generation.id, e.text) for e in examples] == [
        (edited.id, "final fix"),
        (plain.id, "kept as is"),
    ]
    generation, text = examples[0]  # a plain (generation, text) pair for training
    assert generation.output == "original" and text == "final fix"


def test_contested_scenes_are_left_out(session: Session) -> None:
    room, ana, bo = make_room(session), make_user(session, "U1"), make_user(session, "U2")
    generation = make_generation(session, room, ana)
    give_feedback(session, generation, ana, "approve")
    give_feedback(session, generation, bo, "reject")
    assert feedback.approved_examples(session) == []


def test_consent_off_excludes_the_writers_generations(session: Session) -> None:
    room, ana, bo = make_room(session), make_user(session, "U1"), make_user(session, "U2")
    by_ana = make_generation(session, room, ana, output="ana's scene")
    by_bo = make_generation(session, room, bo, output="bo's scene")
    for generation in (by_ana, by_bo):
        give_feedback(session, generation, bo, "approve")
    rooms.set_training_consent(session, user=ana, consent=False)
    assert [e.generation.id for e in feedback.approved_examples(session)] == [by_bo.id]
    rooms.set_training_consent(session, user=ana, consent=True)
    assert [e.generation.id for e in feedback.approved_examples(session)] == [by_ana.id, by_bo.id]


def test_consent_off_ignores_the_writers_edits_and_votes(session: Session) -> None:
    room, ana, bo = make_room(session), make_user(session, "U1"), make_user(session, "U2")
    generation = make_generation(session, room, ana, output="original")
    only_bo_approved = make_generation(session, room, ana, output="second")
    give_feedback(session, generation, ana, "approve")
    give_feedback(session, generation, ana, "edit", edited_text="ana's fix")
    give_feedback(session, generation, bo, "edit", edited_text="bo's fix")
    give_feedback(session, only_bo_approved, bo, "approve")
    rooms.set_training_consent(session, user=bo, consent=False)
    examples = feedback.approved_examples(session)
    # bo's later edit and bo's approval no longer count; ana's edit is the text
    assert [(e.generation.id, e.text) for e in examples] == [(generation.id, "ana's fix")]


def test_approved_examples_per_room(session: Session) -> None:
    ana = make_user(session, "U1")
    pilot, finale = make_room(session, "T1/C1"), make_room(session, "T1/C2")
    in_pilot, in_finale = make_generation(session, pilot, ana), make_generation(session, finale, ana)
    for generation in (in_pilot, in_finale):
        give_feedback(session, generation, ana, "approve")
    assert [e.generation.id for e in feedback.approved_examples(session, room=finale)] == [in_finale.id]
    assert len(feedback.approved_examples(session)) == 2


# --- counts ------------------------------------------------------------------------------


def test_room_stats(session: Session) -> None:
    room, other = make_room(session), make_room(session, "T1/C2")
    ana, bo = make_user(session, "U1"), make_user(session, "U2")
    empty = {"generations": 0, "approvals": 0, "rejections": 0, "edits": 0}
    assert feedback.room_stats(session, room=room) == empty
    first, second = make_generation(session, room, ana), make_generation(session, room, bo)
    elsewhere = make_generation(session, other, ana)
    give_feedback(session, first, ana, "approve")
    give_feedback(session, first, bo, "approve")
    give_feedback(session, second, ana, "reject")
    give_feedback(session, second, bo, "edit", edited_text="x")
    give_feedback(session, elsewhere, bo, "approve")
    expected = {"generations": 2, "approvals": 2, "rejections": 1, "edits": 1}
    assert feedback.room_stats(session, room=room) == expected


def test_approved_generation_ids_count_every_writer(session: Session) -> None:
    room, other = make_room(session), make_room(session, "T1/C2")
    ana, bo = make_user(session, "U1"), make_user(session, "U2")
    approved, contested, edited_only = (make_generation(session, room, ana) for _ in range(3))
    elsewhere = make_generation(session, other, ana)
    give_feedback(session, approved, bo, "approve")
    give_feedback(session, contested, ana, "approve")
    give_feedback(session, contested, bo, "reject")
    give_feedback(session, edited_only, bo, "edit", edited_text="x")
    give_feedback(session, elsewhere, bo, "approve")
    rooms.set_training_consent(session, user=bo, consent=False)  # taste, not training: consent does not count
    assert feedback.approved_generation_ids(session, room=room) == {approved.id}


def test_approvals_since_counts_approvals_and_edits(session: Session) -> None:
    room, other = make_room(session, "T1/C1"), make_room(session, "T1/C2")
    ana, bo = make_user(session, "U1"), make_user(session, "U2")
    here, there = make_generation(session, room, ana), make_generation(session, other, ana)
    give_feedback(session, here, ana, "approve")
    give_feedback(session, here, bo, "reject")  # not counted
    give_feedback(session, here, bo, "edit", edited_text="x")
    give_feedback(session, there, bo, "approve")
    now = datetime.now(UTC)
    assert feedback.approvals_since(session, since=None) == 3
    assert feedback.approvals_since(session, since=now - timedelta(hours=1)) == 3
    assert feedback.approvals_since(session, since=now + timedelta(hours=1)) == 0
    assert feedback.approvals_since(session, since=None, room_ref="T1/C1") == 2

"""Store queries as the chat commands and training use them, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import (
    FeedbackEvent,
    FeedbackKind,
    Generation,
    Room,
    TrainingRun,
    TrainingStatus,
    User,
    approved_examples,
    feedback_summary,
    finish_training_run,
    get_generation,
    get_or_create_room,
    get_or_create_user,
    latest_generation,
    queries,
    record_feedback,
    record_generation,
    room_stats,
    session_scope,
    set_message_ref,
    set_training_consent,
    start_training_run,
)


def _room(session: Session, external_id: str = "T1/C1") -> Room:
    return get_or_create_room(session, platform="slack", external_id=external_id, name="#pilot")


def _user(session: Session, external_id: str, name: str | None = None) -> User:
    return get_or_create_user(
        session, platform="slack", external_id=external_id, display_name=name
    )


def _generate(
    session: Session, room: Room, user: User, output: str = "INT. ALLEY - NIGHT"
) -> Generation:
    return record_generation(
        session,
        room=room,
        user=user,
        prompt="a detective corners her former partner",
        parameters={"temperature": 0.7, "top_p": 0.9},
        retrieved_scene_ids=["casablanca#12", "chinatown#3"],
        output=output,
        model="smollm2-135m",
        adapter=None,
        latency_ms=1234,
    )


def _feedback(
    session: Session, generation: Generation, user: User, kind: str, **kwargs: str
) -> tuple[FeedbackEvent, bool]:
    return record_feedback(session, generation_id=generation.id, user=user, kind=kind, **kwargs)


def _events(session: Session, generation: Generation) -> list[FeedbackEvent]:
    query = select(FeedbackEvent).where(FeedbackEvent.generation_id == generation.id)
    return list(session.scalars(query))


# --- rooms and users -----------------------------------------------------------------


def test_get_or_create_room_returns_the_same_room(session: Session) -> None:
    first = get_or_create_room(session, platform="slack", external_id="T1/C1", name="#pilot")
    again = get_or_create_room(session, platform="slack", external_id="T1/C1")
    renamed = get_or_create_room(session, platform="slack", external_id="T1/C1", name="#s2")
    other_platform = get_or_create_room(session, platform="discord", external_id="T1/C1")
    assert first.id == again.id == renamed.id != other_platform.id
    assert renamed.name == "#s2"
    assert session.scalar(select(func.count()).select_from(Room)) == 2


def test_get_or_create_user_defaults_to_consent(session: Session) -> None:
    user = get_or_create_user(session, platform="discord", external_id="42", display_name="Ana")
    assert user.training_consent is True
    assert get_or_create_user(session, platform="discord", external_id="42").id == user.id
    assert user.display_name == "Ana"


def test_unknown_platform_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="unknown platform 'teams'"):
        get_or_create_room(session, platform="teams", external_id="x")


def test_get_or_create_user_survives_a_concurrent_insert(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker creates the same writer between our lookup and our insert."""
    with session_scope(session_factory) as other:
        winner = _user(other, "U9", "Bo")
    real_scalars = Session.scalars
    calls = {"n": 0}

    def first_lookup_misses(self, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        result = real_scalars(self, statement, *args, **kwargs)
        if calls["n"] == 1:
            result = real_scalars(self, select(User).where(User.id == -1))
        return result

    with session_scope(session_factory) as session:
        room = _room(session)  # work done before the savepoint must survive it
        monkeypatch.setattr(Session, "scalars", first_lookup_misses)
        calls["n"] = 0
        user = _user(session, "U9")
        monkeypatch.undo()
        assert calls["n"] == 2  # lookup missed, insert hit the unique constraint, refetched
        assert user.id == winner.id
    with session_scope(session_factory) as session:
        assert session.get(Room, room.id) is not None
        assert session.scalar(select(func.count()).select_from(User)) == 1


# --- generations -------------------------------------------------------------------


def test_generation_round_trips_json_and_utc_time(session_factory: sessionmaker[Session]) -> None:
    parameters = {
        "temperature": 0.7,
        "stop": ["FADE OUT."],
        "nested": {"k": [1, 2.5, None], "ok": True},
        "é": "ü",
    }
    with session_scope(session_factory) as session:
        room, user = _room(session), _user(session, "U1")
        generation = record_generation(
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
        stored = get_generation(session, generation_id=generation_id)
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
        generation_id = _generate(session, _room(session), _user(session, "U1")).id
    with session_scope(session_factory) as session:
        set_message_ref(session, generation_id=generation_id, message_ref="C1:1700000000.0002")
    with session_scope(session_factory) as session:
        stored = get_generation(session, generation_id=generation_id)
        assert stored.message_ref == "C1:1700000000.0002"
        with pytest.raises(ValueError, match="generation 999999 does not exist"):
            set_message_ref(session, generation_id=999999, message_ref="x")


def test_latest_generation_per_room_and_writer(session: Session) -> None:
    room, other_room = _room(session), _room(session, "T1/C2")
    ana, bo = _user(session, "U1"), _user(session, "U2")
    assert latest_generation(session, room=room) is None
    first = _generate(session, room, ana)
    second = _generate(session, room, bo)
    _generate(session, other_room, ana)
    regenerated = record_generation(
        session, room=room, user=ana, prompt=first.prompt, parameters={}, retrieved_scene_ids=[],
        output="take two", model="m", adapter=None, latency_ms=1, parent_id=first.id,
    )
    assert latest_generation(session, room=room).id == regenerated.id
    assert latest_generation(session, room=room, user=bo).id == second.id
    assert regenerated.parent is first


def test_regenerate_needs_an_existing_parent(session: Session) -> None:
    with pytest.raises(ValueError, match="parent generation 424242 does not exist"):
        record_generation(
            session, room=_room(session), user=_user(session, "U1"), prompt="p", parameters={},
            retrieved_scene_ids=[], output="o", model="m", adapter=None, latency_ms=1,
            parent_id=424242,
        )


# --- feedback ------------------------------------------------------------------------


def test_double_approval_stores_one_event(session: Session) -> None:
    room, ana = _room(session), _user(session, "U1", "Ana")
    generation = _generate(session, room, ana)
    first, created = _feedback(session, generation, ana, "approve")
    again, created_again = _feedback(session, generation, ana, "approve")
    assert created and not created_again
    assert again.id == first.id
    assert len(_events(session, generation)) == 1
    assert feedback_summary(session, generation_id=generation.id).approvals == 1


def test_concurrent_double_click_stores_one_event(session_factory: sessionmaker[Session]) -> None:
    """Two workers handle the same click at once (Slack retries, double clicks)."""
    with session_scope(session_factory) as session:
        generation_id = _generate(session, _room(session), _user(session, "U1")).id
    barrier = threading.Barrier(4)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            barrier.wait()
            with session_scope(session_factory) as session:
                user = _user(session, "U1")
                event, created = record_feedback(
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
        assert feedback_summary(session, generation_id=generation_id).approvals == 1


def test_lost_insert_race_returns_the_stored_event(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our duplicate check ran before the other worker committed: the unique index decides."""
    with session_scope(session_factory) as session:
        room, ana = _room(session), _user(session, "U1")
        generation_id = _generate(session, room, ana).id
    with session_scope(session_factory) as other:
        winner, _ = record_feedback(
            other, generation_id=generation_id, user=_user(other, "U1"), kind="approve"
        )

    real_existing = queries._existing_feedback
    calls = {"n": 0}

    def misses_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return None if calls["n"] == 1 else real_existing(*args, **kwargs)

    monkeypatch.setattr(queries, "_existing_feedback", misses_once)
    with session_scope(session_factory) as session:
        bo = _user(session, "U2")  # earlier work in the transaction must survive the savepoint
        event, created = record_feedback(
            session, generation_id=generation_id, user=_user(session, "U1"), kind="approve"
        )
        assert (event.id, created) == (winner.id, False)
        assert calls["n"] == 2  # check missed, insert hit the unique index, refetched
    with session_scope(session_factory) as session:
        assert session.get(User, bo.id) is not None
        assert feedback_summary(session, generation_id=generation_id).approvals == 1


def test_redelivered_edit_stores_one_event(session: Session) -> None:
    room, ana = _room(session), _user(session, "U1")
    generation = _generate(session, room, ana)
    first, created = _feedback(
        session, generation, ana, "edit", edited_text="new", delivery_id="d-1"
    )
    again, created_again = _feedback(
        session, generation, ana, "edit", edited_text="new", delivery_id="d-1"
    )
    assert created and not created_again and again.id == first.id
    assert len(_events(session, generation)) == 1


def test_redelivered_approval_stores_nothing(session: Session) -> None:
    room, ana = _room(session), _user(session, "U1")
    generation = _generate(session, room, ana)
    _feedback(session, generation, ana, "approve", delivery_id="d-7")
    _, created = _feedback(session, generation, ana, "approve", delivery_id="d-7")
    assert not created
    assert len(_events(session, generation)) == 1


def test_edits_may_repeat_and_the_latest_wins(session: Session) -> None:
    room, ana, bo = _room(session), _user(session, "U1"), _user(session, "U2")
    generation = _generate(session, room, ana)
    _feedback(session, generation, ana, "edit", edited_text="draft 2", delivery_id="a")
    _feedback(session, generation, ana, "edit", edited_text="draft 3", delivery_id="b")
    _feedback(session, generation, bo, "edit", edited_text="draft 4")
    summary = feedback_summary(session, generation_id=generation.id)
    assert summary.edits == 3
    assert summary.latest_edit == "draft 4"


def test_two_approvers_count_two(session: Session) -> None:
    room = _room(session)
    ana, bo, cy = _user(session, "U1", "Ana"), _user(session, "U2"), _user(session, "U3", "Cy")
    generation = _generate(session, room, ana)
    _feedback(session, generation, ana, "approve")
    _feedback(session, generation, bo, "approve")
    _feedback(session, generation, cy, "reject")
    summary = feedback_summary(session, generation_id=generation.id)
    assert (summary.approvals, summary.rejections, summary.edits) == (2, 1, 0)
    assert summary.approvers == ["Ana", "U2"]  # display name, else the platform id
    assert summary.latest_edit is None


def test_approve_and_reject_by_one_writer_are_separate_votes(session: Session) -> None:
    room, ana = _room(session), _user(session, "U1")
    generation = _generate(session, room, ana)
    _, approved = _feedback(session, generation, ana, FeedbackKind.APPROVE)
    _, rejected = _feedback(session, generation, ana, "reject")
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
    room, ana = _room(session), _user(session, "U1")
    generation = _generate(session, room, ana)
    with pytest.raises(ValueError, match=message):
        record_feedback(session, generation_id=generation.id, user=ana, **kwargs)
    assert _events(session, generation) == []


def test_feedback_on_a_missing_generation_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="generation 31337 does not exist"):
        record_feedback(session, generation_id=31337, user=_user(session, "U1"), kind="approve")


# --- training data -----------------------------------------------------------------


def test_approved_examples_use_the_latest_edit(session: Session) -> None:
    room, ana, bo = _room(session), _user(session, "U1"), _user(session, "U2")
    edited = _generate(session, room, ana, output="original")
    plain = _generate(session, room, ana, output="kept as is")
    unreviewed = _generate(session, room, ana, output="nobody looked")
    _feedback(session, edited, bo, "edit", edited_text="first fix")
    _feedback(session, edited, ana, "edit", edited_text="final fix")
    for generation in (edited, plain):
        _feedback(session, generation, bo, "approve")
    _feedback(session, unreviewed, bo, "edit", edited_text="edit alone")
    examples = approved_examples(session)
    assert [(e.generation.id, e.text) for e in examples] == [
        (edited.id, "final fix"),
        (plain.id, "kept as is"),
    ]
    generation, text = examples[0]  # a plain (generation, text) pair for training
    assert generation.output == "original" and text == "final fix"


def test_contested_scenes_are_left_out(session: Session) -> None:
    room, ana, bo = _room(session), _user(session, "U1"), _user(session, "U2")
    generation = _generate(session, room, ana)
    _feedback(session, generation, ana, "approve")
    _feedback(session, generation, bo, "reject")
    assert approved_examples(session) == []


def test_consent_off_excludes_the_writers_generations(session: Session) -> None:
    room, ana, bo = _room(session), _user(session, "U1"), _user(session, "U2")
    by_ana = _generate(session, room, ana, output="ana's scene")
    by_bo = _generate(session, room, bo, output="bo's scene")
    for generation in (by_ana, by_bo):
        _feedback(session, generation, bo, "approve")
    set_training_consent(session, user=ana, consent=False)
    assert [e.generation.id for e in approved_examples(session)] == [by_bo.id]
    set_training_consent(session, user=ana, consent=True)
    assert [e.generation.id for e in approved_examples(session)] == [by_ana.id, by_bo.id]


def test_consent_off_ignores_the_writers_edits_and_votes(session: Session) -> None:
    room, ana, bo = _room(session), _user(session, "U1"), _user(session, "U2")
    generation = _generate(session, room, ana, output="original")
    only_bo_approved = _generate(session, room, ana, output="second")
    _feedback(session, generation, ana, "approve")
    _feedback(session, generation, ana, "edit", edited_text="ana's fix")
    _feedback(session, generation, bo, "edit", edited_text="bo's fix")
    _feedback(session, only_bo_approved, bo, "approve")
    set_training_consent(session, user=bo, consent=False)
    examples = approved_examples(session)
    # bo's later edit and bo's approval no longer count; ana's edit is the text
    assert [(e.generation.id, e.text) for e in examples] == [(generation.id, "ana's fix")]


def test_approved_examples_per_room(session: Session) -> None:
    ana = _user(session, "U1")
    pilot, finale = _room(session, "T1/C1"), _room(session, "T1/C2")
    in_pilot, in_finale = _generate(session, pilot, ana), _generate(session, finale, ana)
    for generation in (in_pilot, in_finale):
        _feedback(session, generation, ana, "approve")
    assert [e.generation.id for e in approved_examples(session, room=finale)] == [in_finale.id]
    assert len(approved_examples(session)) == 2


def test_room_stats(session: Session) -> None:
    room, other = _room(session), _room(session, "T1/C2")
    ana, bo = _user(session, "U1"), _user(session, "U2")
    empty = {"generations": 0, "approvals": 0, "rejections": 0, "edits": 0}
    assert room_stats(session, room=room) == empty
    first, second = _generate(session, room, ana), _generate(session, room, bo)
    elsewhere = _generate(session, other, ana)
    _feedback(session, first, ana, "approve")
    _feedback(session, first, bo, "approve")
    _feedback(session, second, ana, "reject")
    _feedback(session, second, bo, "edit", edited_text="x")
    _feedback(session, elsewhere, bo, "approve")
    expected = {"generations": 2, "approvals": 2, "rejections": 1, "edits": 1}
    assert room_stats(session, room=room) == expected


# --- training runs and sessions ------------------------------------------------------


def test_training_run_lifecycle(session_factory: sessionmaker[Session]) -> None:
    metrics = {"eval_loss": 1.25, "win_rate": 0.6, "per_task": {"dialogue": [0.5, 0.7]}}
    with session_scope(session_factory) as session:
        run = start_training_run(
            session, base_model="smollm2-135m", dataset_hash="sha256:ab12", example_count=40
        )
        assert run.status is TrainingStatus.RUNNING and run.started_at is not None
        run_id = run.id
    with session_scope(session_factory) as session:
        finish_training_run(
            session, run_id=run_id, status="succeeded", adapter_version="room-v4",
            metrics=metrics,
            notes="beat room-v3 on held-out scenes",
        )
    with session_scope(session_factory) as session:
        stored = session.get(TrainingRun, run_id)
        assert stored.status == "succeeded" and stored.adapter_version == "room-v4"
        assert stored.metrics == metrics
        assert stored.finished_at.tzinfo == UTC and stored.finished_at >= stored.started_at
        with pytest.raises(ValueError, match="a run finishes as one of"):
            finish_training_run(session, run_id=run_id, status="running")
        with pytest.raises(ValueError, match="training run 999 does not exist"):
            finish_training_run(session, run_id=999, status="failed")


def test_session_scope_commits_or_rolls_back(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError):
        with session_scope(session_factory) as session:
            _user(session, "U1")
            raise RuntimeError("boom")
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
        _user(session, "U1")
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(FeedbackEvent(generation_id=123456, user_id=654321, kind=FeedbackKind.APPROVE))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()

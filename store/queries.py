"""Store queries used by the chat commands and by training.

Every function takes the session first and keyword-only arguments after it. Functions
flush but never commit: the caller owns the transaction (see ``session_scope``).

Training consent rule (``approved_examples``): a writer who turns consent off
contributes nothing to training data, neither as requester nor as reviewer:

* a generation *requested* by a non-consenting writer is never an example;
* approvals, rejections and edits *by* a non-consenting writer are ignored;
* a generation is an example when, counting consenting writers only, it has at least
  one approval and more approvals than rejections (a contested scene is left out);
  an edit alone does not approve a scene;
* its text is the latest edit by a consenting writer, or else the generated output.

The same counting sorts out what is not an example (``rejected_outputs``,
``training_exclusions``): with consenting writers' votes only, more rejections than
approvals is *rejected*; as many approvals as rejections is *contested*; no vote at
all but a regeneration or follow-up asked for by a consenting writer (a child
generation, ``parent_id``) is *superseded*.

Rooms: ``room`` is a Room row; ``room_ref`` is a room's platform id
(``Room.external_id``, e.g. ``T1:C42``) on whichever platform has it, the name the
adapter registry's serving pointer and the command line use for a room.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, and_, case, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from .models import (
    FeedbackEvent,
    FeedbackKind,
    Generation,
    Platform,
    Room,
    TrainingRun,
    TrainingStatus,
    User,
    utcnow,
)

T = TypeVar("T")

FINISHED_STATUSES = frozenset(
    {TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.REJECTED}
)


def _choice(enum_cls: type[T], value: object, what: str) -> T:
    try:
        return enum_cls(value)  # type: ignore[call-arg]
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)  # type: ignore[attr-defined]
        raise ValueError(f"unknown {what} {value!r}; expected one of: {allowed}") from None


def _insert_or_fetch(session: Session, obj: T, fetch: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert ``obj`` in a savepoint; if a unique constraint says another writer won the
    race, return the row they stored instead. Returns (row, created)."""
    try:
        with session.begin_nested():
            session.add(obj)
            session.flush()
    except IntegrityError:
        existing = fetch()
        if existing is None:
            raise
        return existing, False
    return obj, True


# --- rooms and users ---------------------------------------------------------------


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


def _get_or_create_named(session: Session, model: type[Room] | type[User], *, platform: str, external_id: str,
                         name_field: str, name: str | None):
    """Rooms and writers share one shape: unique by (platform, external_id), with a display
    name that follows the platform's."""
    platform_ = _choice(Platform, platform, "platform")
    query = select(model).where(model.platform == platform_, model.external_id == external_id)
    row = session.scalars(query).one_or_none()
    if row is None:
        new = model(platform=platform_, external_id=external_id, **{name_field: name})
        row, created = _insert_or_fetch(session, new, lambda: session.scalars(query).one_or_none())
        if created:
            return row
    if name is not None and getattr(row, name_field) != name:
        setattr(row, name_field, name)
        session.flush()
    return row


def rooms_by_ref(session: Session, *, room_ref: str) -> list[Room]:
    """Rooms whose platform id is ``room_ref``, on any platform, oldest first."""
    query = select(Room).where(Room.external_id == room_ref).order_by(Room.id)
    return list(session.scalars(query))


def set_training_consent(session: Session, *, user: User, consent: bool) -> User:
    """Turn a writer's training consent on or off (see the consent rule above)."""
    user.training_consent = bool(consent)
    session.flush()
    return user


# --- generations -------------------------------------------------------------------


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


def _require_generation(session: Session, generation_id: int) -> Generation:
    generation = session.get(Generation, generation_id)
    if generation is None:
        raise ValueError(f"generation {generation_id} does not exist")
    return generation


def set_message_ref(session: Session, *, generation_id: int, message_ref: str) -> None:
    """Remember where the scene was posted (the platform's message reference)."""
    _require_generation(session, generation_id).message_ref = message_ref
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


# --- feedback ------------------------------------------------------------------------


def _by_delivery(delivery_id: str) -> Select[tuple[FeedbackEvent]]:
    return select(FeedbackEvent).where(FeedbackEvent.delivery_id == delivery_id)


def _existing_feedback(
    session: Session, *, generation_id: int, user: User, kind: FeedbackKind, delivery_id: str | None
) -> FeedbackEvent | None:
    """The event this one would duplicate: same delivery, or the same writer's vote."""
    if delivery_id is not None:
        found = session.scalars(_by_delivery(delivery_id)).one_or_none()
        if found is not None:
            return found
    if kind is FeedbackKind.EDIT:
        return None
    vote = select(FeedbackEvent).where(
        FeedbackEvent.generation_id == generation_id,
        FeedbackEvent.user_id == user.id,
        FeedbackEvent.kind == kind,
    )
    return session.scalars(vote).one_or_none()


def record_feedback(
    session: Session,
    *,
    generation_id: int,
    user: User,
    kind: str,
    edited_text: str | None = None,
    delivery_id: str | None = None,
) -> tuple[FeedbackEvent, bool]:
    """Record an approval, rejection or edit; returns (event, created).

    A second approval (or rejection) of the same generation by the same writer, and any
    event whose ``delivery_id`` was already stored, returns the stored event with
    ``created=False``. Edits may repeat: each new text is a new event.
    """
    kind_ = _choice(FeedbackKind, kind, "feedback kind")
    if kind_ is FeedbackKind.EDIT and not (edited_text and edited_text.strip()):
        raise ValueError("an edit needs the edited text (edited_text is empty)")
    if kind_ is not FeedbackKind.EDIT and edited_text is not None:
        raise ValueError(f"edited_text only goes with an edit, not with {kind_.value}")
    _require_generation(session, generation_id)

    def existing() -> FeedbackEvent | None:
        return _existing_feedback(
            session, generation_id=generation_id, user=user, kind=kind_, delivery_id=delivery_id
        )

    found = existing()
    if found is not None:
        return found, False
    event = FeedbackEvent(
        generation_id=generation_id,
        user=user,
        kind=kind_,
        edited_text=edited_text,
        delivery_id=delivery_id,
    )
    return _insert_or_fetch(session, event, existing)


def feedback_by_delivery(session: Session, *, delivery_id: str) -> FeedbackEvent | None:
    """The event stored under ``delivery_id``, if any (how redeliveries and re-imports are recognised)."""
    return session.scalars(_by_delivery(delivery_id)).one_or_none()


@dataclass(frozen=True)
class FeedbackSummary:
    """What the room thinks of one generation."""

    approvals: int = 0
    rejections: int = 0
    #: Who approved, oldest first: display names, else platform ids.
    approvers: list[str] = field(default_factory=list)
    #: The newest edited text, if anyone edited.
    latest_edit: str | None = None
    edits: int = 0


def feedback_summary(session: Session, *, generation_id: int) -> FeedbackSummary:
    query = (
        select(FeedbackEvent, User)
        .join(User, FeedbackEvent.user_id == User.id)
        .where(FeedbackEvent.generation_id == generation_id)
        .order_by(FeedbackEvent.created_at, FeedbackEvent.id)
    )
    approvers: list[str] = []
    rejections = edits = 0
    latest_edit: str | None = None
    for event, user in session.execute(query):
        if event.kind is FeedbackKind.APPROVE:
            approvers.append(user.label)
        elif event.kind is FeedbackKind.REJECT:
            rejections += 1
        else:
            edits += 1
            latest_edit = event.edited_text
    return FeedbackSummary(
        approvals=len(approvers),
        rejections=rejections,
        approvers=approvers,
        latest_edit=latest_edit,
        edits=edits,
    )


# --- training data -----------------------------------------------------------------


class ApprovedExample(NamedTuple):
    generation: Generation
    #: The latest consenting edit, else the generated output.
    text: str


def _count(kind: FeedbackKind) -> Any:
    return func.coalesce(func.sum(case((FeedbackEvent.kind == kind, 1), else_=0)), 0)


def _in_room(query: Select[Any], *, room: Room | None, room_ref: str | None) -> Select[Any]:
    if room is not None:
        query = query.where(Generation.room_id == room.id)
    if room_ref is not None:
        query = query.where(Generation.room_id.in_(select(Room.id).where(Room.external_id == room_ref)))
    return query


def approved_examples(
    session: Session, *, room: Room | None = None, room_ref: str | None = None
) -> list[ApprovedExample]:
    """Approved scenes for training, oldest first, under the consent rule in the module doc.

    Each generation comes with its ``user`` and ``room`` loaded."""
    requester = select(User.id).where(
        User.id == Generation.user_id, User.training_consent.is_(True)
    )
    approvals, rejections = _count(FeedbackKind.APPROVE), _count(FeedbackKind.REJECT)
    votes = (
        select(FeedbackEvent.generation_id)
        .join(User, and_(User.id == FeedbackEvent.user_id, User.training_consent.is_(True)))
        .group_by(FeedbackEvent.generation_id)
        .having(approvals > 0, approvals > rejections)
    )
    query = select(Generation).where(Generation.id.in_(votes), requester.exists())
    query = _in_room(query, room=room, room_ref=room_ref)
    query = query.options(selectinload(Generation.user), selectinload(Generation.room))
    generations = list(session.scalars(query.order_by(Generation.created_at, Generation.id)))
    if not generations:
        return []

    edits = (
        select(FeedbackEvent.generation_id, FeedbackEvent.edited_text)
        .join(User, and_(User.id == FeedbackEvent.user_id, User.training_consent.is_(True)))
        .where(
            FeedbackEvent.kind == FeedbackKind.EDIT,
            FeedbackEvent.generation_id.in_([g.id for g in generations]),
        )
        .order_by(FeedbackEvent.created_at, FeedbackEvent.id)
    )
    latest_edit: dict[int, str] = {}
    for generation_id, text in session.execute(edits):
        if text is not None:
            latest_edit[generation_id] = text  # later rows overwrite earlier ones
    return [ApprovedExample(g, latest_edit.get(g.id, g.output)) for g in generations]


class RejectedOutput(NamedTuple):
    generation: Generation
    #: "rejected" or "superseded" (see the module doc).
    reason: str


class _Tally(NamedTuple):
    generation_id: int
    requester_consents: bool
    approvals: int  # every writer's
    rejections: int
    consenting_approvals: int  # consenting writers' only
    consenting_rejections: int
    superseded: bool  # a consenting writer asked for another version


def _votes(*, consenting_only: bool) -> Any:
    voter = User.id == FeedbackEvent.user_id
    if consenting_only:
        voter = and_(voter, User.training_consent.is_(True))
    return (
        select(
            FeedbackEvent.generation_id.label("generation_id"),
            _count(FeedbackKind.APPROVE).label("approvals"),
            _count(FeedbackKind.REJECT).label("rejections"),
        )
        .join(User, voter)
        .group_by(FeedbackEvent.generation_id)
        .subquery()
    )


def _tallies(session: Session, *, room: Room | None, room_ref: str | None) -> list[_Tally]:
    """Vote counts of every generation that has votes or a consenting writer's child."""
    everyone, consenting = _votes(consenting_only=False), _votes(consenting_only=True)
    child, child_user = aliased(Generation), aliased(User)
    superseded = exists(
        select(child.id)
        .join(child_user, child_user.id == child.user_id)
        .where(child.parent_id == Generation.id, child_user.training_consent.is_(True))
    )
    query = (
        select(
            Generation.id,
            User.training_consent,
            func.coalesce(everyone.c.approvals, 0),
            func.coalesce(everyone.c.rejections, 0),
            func.coalesce(consenting.c.approvals, 0),
            func.coalesce(consenting.c.rejections, 0),
            superseded,
        )
        .join(User, User.id == Generation.user_id)
        .outerjoin(everyone, everyone.c.generation_id == Generation.id)
        .outerjoin(consenting, consenting.c.generation_id == Generation.id)
        .where(everyone.c.generation_id.is_not(None) | superseded)
        .order_by(Generation.created_at, Generation.id)
    )
    rows = session.execute(_in_room(query, room=room, room_ref=room_ref))
    return [_Tally(row[0], bool(row[1]), *(int(n) for n in row[2:6]), bool(row[6])) for row in rows]


def _verdict(tally: _Tally) -> str | None:
    """approved, rejected, contested, superseded or None, by the consent rule."""
    if not tally.requester_consents:
        return None
    approvals, rejections = tally.consenting_approvals, tally.consenting_rejections
    if approvals > rejections:
        return "approved"
    if rejections > approvals:
        return "rejected"
    if approvals:
        return "contested"
    return "superseded" if tally.superseded else None


def rejected_outputs(
    session: Session, *, room: Room | None = None, room_ref: str | None = None
) -> list[RejectedOutput]:
    """Rejected and superseded outputs (preference data), oldest first, under the consent rule.

    Each generation comes with its ``user`` and ``room`` loaded."""
    reasons = {
        t.generation_id: verdict
        for t in _tallies(session, room=room, room_ref=room_ref)
        if (verdict := _verdict(t)) in ("rejected", "superseded")
    }
    if not reasons:
        return []
    query = (
        select(Generation)
        .where(Generation.id.in_(reasons))
        .options(selectinload(Generation.user), selectinload(Generation.room))
        .order_by(Generation.created_at, Generation.id)
    )
    return [RejectedOutput(g, reasons[g.id]) for g in session.scalars(query)]


def training_exclusions(
    session: Session, *, room: Room | None = None, room_ref: str | None = None
) -> dict[str, int]:
    """Scenes left out of training and why.

    ``opted_out``: approved if every writer's votes counted, left out because of writers
    who turned consent off (as requester or as voters); ``contested``: as many consenting
    approvals as rejections.
    """
    counts = {"opted_out": 0, "contested": 0}
    for tally in _tallies(session, room=room, room_ref=room_ref):
        verdict = _verdict(tally)
        if verdict == "contested":
            counts["contested"] += 1
        elif verdict != "approved" and tally.approvals > tally.rejections:
            counts["opted_out"] += 1
    return counts


def room_stats(session: Session, *, room: Room) -> dict[str, int]:
    """Counts for a room: generations, approvals, rejections, edits."""
    generations = session.scalar(
        select(func.count()).select_from(Generation).where(Generation.room_id == room.id)
    )
    feedback = session.execute(
        select(
            _count(FeedbackKind.APPROVE), _count(FeedbackKind.REJECT), _count(FeedbackKind.EDIT)
        )
        .select_from(FeedbackEvent)
        .join(Generation, Generation.id == FeedbackEvent.generation_id)
        .where(Generation.room_id == room.id)
    ).one()
    return {
        "generations": int(generations or 0),
        "approvals": int(feedback[0]),
        "rejections": int(feedback[1]),
        "edits": int(feedback[2]),
    }


# --- training runs -----------------------------------------------------------------


def start_training_run(
    session: Session, *, base_model: str, dataset_hash: str, example_count: int
) -> TrainingRun:
    """Record a run that starts now (status ``running``)."""
    run = TrainingRun(
        status=TrainingStatus.RUNNING,
        base_model=base_model,
        dataset_hash=dataset_hash,
        example_count=int(example_count),
        metrics={},
        started_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def finish_training_run(
    session: Session,
    *,
    run_id: int,
    status: str,
    adapter_version: str | None = None,
    metrics: dict[str, Any] | None = None,
    notes: str | None = None,
) -> TrainingRun:
    """Close a run as succeeded, failed or rejected (by the evaluation gate)."""
    status_ = _choice(TrainingStatus, status, "training status")
    if status_ not in FINISHED_STATUSES:
        allowed = ", ".join(sorted(s.value for s in FINISHED_STATUSES))
        raise ValueError(f"a run finishes as one of: {allowed}; got {status_.value!r}")
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise ValueError(f"training run {run_id} does not exist")
    run.status = status_
    run.finished_at = utcnow()
    if adapter_version is not None:
        run.adapter_version = adapter_version
    if metrics is not None:
        run.metrics = dict(metrics)
    if notes is not None:
        run.notes = notes
    session.flush()
    return run


def interrupt_running_runs(session: Session, *, note: str) -> list[TrainingRun]:
    """Close every run still marked running as failed. Call it only while holding the
    training lock: a run can be running only under the lock, so these died mid-way."""
    runs = list(session.scalars(select(TrainingRun).where(TrainingRun.status == TrainingStatus.RUNNING)))
    for run in runs:
        run.status = TrainingStatus.FAILED
        run.finished_at = utcnow()
        run.notes = f"{run.notes}; {note}" if run.notes else note
    session.flush()
    return runs


def latest_training_run(session: Session) -> TrainingRun | None:
    """The newest run that started (queued requests are not runs yet)."""
    return session.scalars(select(TrainingRun).where(TrainingRun.status != TrainingStatus.QUEUED)
                           .order_by(TrainingRun.id.desc()).limit(1)).first()


def claim_training_request(session: Session, *, run_id: int, base_model: str, dataset_hash: str,
                           example_count: int) -> TrainingRun:
    """Turn a queued request into the running run that serves it."""
    run = session.get(TrainingRun, run_id)
    if run is None or run.status != TrainingStatus.QUEUED:
        raise ValueError(f"training request {run_id} is not queued")
    run.status, run.started_at = TrainingStatus.RUNNING, utcnow()
    run.base_model, run.dataset_hash, run.example_count = base_model, dataset_hash, int(example_count)
    session.flush()
    return run


def training_runs(session: Session, *, limit: int = 20) -> list[TrainingRun]:
    """The newest runs first."""
    return list(session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)))


def approvals_since(session: Session, *, since: Any | None, room_ref: str | None = None) -> int:
    """Approvals and edits recorded after ``since`` (all of them when None): what the
    trainer's threshold counts. Votes, not examples: cheap to count every minute."""
    query = (select(func.count(FeedbackEvent.id)).join(Generation, FeedbackEvent.generation_id == Generation.id)
             .where(FeedbackEvent.kind.in_([FeedbackKind.APPROVE, FeedbackKind.EDIT])))
    if since is not None:
        query = query.where(FeedbackEvent.created_at > since)
    if room_ref is not None:
        query = query.join(Room, Generation.room_id == Room.id).where(Room.external_id == room_ref)
    return int(session.scalar(query) or 0)


def request_training_run(session: Session, *, note: str) -> TrainingRun:
    """A run asked for from chat (``/room retrain``), queued for `writersroom trainer`."""
    run = TrainingRun(status=TrainingStatus.QUEUED, base_model="", dataset_hash="", example_count=0, metrics={},
                      notes=note)
    session.add(run)
    session.flush()
    return run


def pending_training_request(session: Session) -> TrainingRun | None:
    """The oldest queued request, if any."""
    return session.scalars(select(TrainingRun).where(TrainingRun.status == TrainingStatus.QUEUED)
                           .order_by(TrainingRun.id).limit(1)).first()

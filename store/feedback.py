"""Feedback on generated scenes: approvals, rejections and edits, what a room thinks of
a scene (summary, who stands where for the approval quorum, room counts), and which
scenes are training data under the consent rule.

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

Rooms are given as a Room row (``room``) or as a platform id (``room_ref``, see
``store.rooms``).

Like every store module: the session first, keyword-only arguments after it; functions
flush but never commit (the caller owns the transaction, see ``session_scope``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from ._shared import choice, insert_or_fetch
from .generations import require_generation
from .models import FeedbackEvent, FeedbackKind, Generation, Room, User

# --- recording feedback ----------------------------------------------------------------


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
    kind_ = choice(FeedbackKind, kind, "feedback kind")
    if kind_ is FeedbackKind.EDIT and not (edited_text and edited_text.strip()):
        raise ValueError("an edit needs the edited text (edited_text is empty)")
    if kind_ is not FeedbackKind.EDIT and edited_text is not None:
        raise ValueError(f"edited_text only goes with an edit, not with {kind_.value}")
    require_generation(session, generation_id=generation_id)

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
    return insert_or_fetch(session, event, existing)


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


def people_by_kind(session: Session, *, generation_id: int) -> dict[FeedbackKind, list[str]]:
    """Who approved, rejected and edited the generation, as platform user ids (adapters
    render them as mentions), first event first, each person once per kind; every kind
    is a key. What the approval quorum counts."""
    query = (
        select(FeedbackEvent.kind, User.external_id)
        .join(User, FeedbackEvent.user_id == User.id)
        .where(FeedbackEvent.generation_id == generation_id)
        .order_by(FeedbackEvent.created_at, FeedbackEvent.id)
    )
    people: dict[FeedbackKind, list[str]] = {kind: [] for kind in FeedbackKind}
    for kind, user_id in session.execute(query):
        if user_id not in people[kind]:  # edits may repeat; a person is named once
            people[kind].append(user_id)
    return people


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


# --- counts ------------------------------------------------------------------------------


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


def approved_generation_ids(session: Session, *, room: Room) -> set[int]:
    """Generations of ``room`` with at least one approval and more approvals than rejections,
    counting every writer: the room's taste for /recommend. Not training data: that is
    ``approved_examples``, under the consent rule."""
    approvals, rejections = _count(FeedbackKind.APPROVE), _count(FeedbackKind.REJECT)
    query = (
        select(FeedbackEvent.generation_id)
        .join(Generation, Generation.id == FeedbackEvent.generation_id)
        .where(Generation.room_id == room.id, or_(FeedbackEvent.kind == FeedbackKind.APPROVE,
                                                  FeedbackEvent.kind == FeedbackKind.REJECT))
        .group_by(FeedbackEvent.generation_id)
        .having(approvals > 0, approvals > rejections)
    )
    return set(session.scalars(query))


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

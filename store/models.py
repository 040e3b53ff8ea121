"""ORM models of the store: rooms, users, generations, feedback, training runs and locks.

Every timestamp is stored timezone-aware and always comes back in UTC, on SQLite
(which keeps no offset) as on PostgreSQL. The schema itself is created by the
Alembic migrations in ``store/migrations``; a test checks that these models and
the migrations describe the same schema on both backends.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Constraint names are fixed so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that stores UTC and always returns aware UTC values.

    SQLite drops the offset, so values are converted to UTC before they are written
    and naive values read back are marked UTC. Naive values handed in are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Platform(enum.StrEnum):
    LOCAL = "local"
    SLACK = "slack"
    DISCORD = "discord"


class FeedbackKind(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    EDIT = "edit"


class TrainingStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


def _string_enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """An enum stored as VARCHAR of its values with a CHECK constraint (no native type)."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, server_default=func.now(), nullable=False)


class Room(Base):
    """A channel (Slack), a guild channel (Discord) or a terminal room (local)."""

    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_string_enum(Platform, "platform"))
    #: Workspace/guild and channel, e.g. ``T123/C456``.
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = _created_at()

    def __repr__(self) -> str:
        return f"Room(id={self.id!r}, platform={self.platform!r}, external_id={self.external_id!r})"


class User(Base):
    """A writer, identified by the platform's user id."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_string_enum(Platform, "platform"))
    external_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    training_consent: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()

    @property
    def label(self) -> str:
        """The name to show for this writer: display name, else the platform id."""
        return self.display_name or self.external_id

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, platform={self.platform!r}, external_id={self.external_id!r})"


class Generation(Base):
    """One generated scene: what was asked, what grounded it, what came out."""

    __tablename__ = "generations"
    __table_args__ = (
        Index(None, "room_id", "created_at"),
        Index(None, "user_id"),
        Index(None, "parent_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    prompt: Mapped[str] = mapped_column(Text)
    #: Sampling parameters: temperature, top_p, max_tokens, ...
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retrieved_scene_ids: Mapped[list[str]] = mapped_column(default=list)
    output: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(255))
    #: Adapter version name; ``None`` means the base model.
    adapter: Mapped[str | None] = mapped_column(String(255))
    latency_ms: Mapped[int] = mapped_column(Integer)
    thread_ref: Mapped[str | None] = mapped_column(String(255))
    #: The platform's reference to the posted message, set once it is posted.
    message_ref: Mapped[str | None] = mapped_column(String(255))
    #: The generation this one regenerates or continues.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created_at()

    room: Mapped[Room] = relationship()
    user: Mapped[User] = relationship()
    parent: Mapped[Generation | None] = relationship(remote_side=[id])
    feedback: Mapped[list[FeedbackEvent]] = relationship(
        back_populates="generation", order_by="FeedbackEvent.id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Generation(id={self.id!r}, room_id={self.room_id!r}, model={self.model!r})"


#: Approve and reject are one per (generation, user, kind); edits may repeat.
VOTE_KINDS_SQL = "kind IN ('approve', 'reject')"


class FeedbackEvent(Base):
    """An approval, rejection or edit of a generation by a writer."""

    __tablename__ = "feedback_events"
    __table_args__ = (
        Index(None, "generation_id", "kind"),
        Index(
            "uq_feedback_events_vote",
            "generation_id",
            "user_id",
            "kind",
            unique=True,
            sqlite_where=text(VOTE_KINDS_SQL),
            postgresql_where=text(VOTE_KINDS_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[FeedbackKind] = mapped_column(_string_enum(FeedbackKind, "feedback_kind"))
    edited_text: Mapped[str | None] = mapped_column(Text)
    #: The platform's delivery id: a redelivered event is recognised and not stored twice.
    delivery_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _created_at()

    generation: Mapped[Generation] = relationship(back_populates="feedback")
    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return (
            f"FeedbackEvent(id={self.id!r}, generation_id={self.generation_id!r}, "
            f"user_id={self.user_id!r}, kind={self.kind!r})"
        )


class TrainingRun(Base):
    """One LoRA fine-tuning run over the approved examples."""

    __tablename__ = "training_runs"
    __table_args__ = (Index(None, "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[TrainingStatus] = mapped_column(
        _string_enum(TrainingStatus, "training_status"), default=TrainingStatus.QUEUED
    )
    base_model: Mapped[str] = mapped_column(String(255))
    adapter_version: Mapped[str | None] = mapped_column(String(255))
    dataset_hash: Mapped[str] = mapped_column(String(128))
    example_count: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = _created_at()

    def __repr__(self) -> str:
        return f"TrainingRun(id={self.id!r}, status={self.status!r})"


class Lock(Base):
    """A named lock shared by every process that reaches the store (e.g. "training").

    A holder refreshes ``heartbeat_at`` while it works; a lock whose heartbeat is older
    than the caller's staleness limit belongs to a dead process and may be taken over
    (see ``store.locks``).
    """

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Who holds it, e.g. ``host:pid``: shown to whoever is refused.
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"Lock(name={self.name!r}, holder={self.holder!r})"

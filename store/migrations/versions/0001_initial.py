"""Initial schema: rooms, users, generations, feedback events, training runs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLATFORMS = ("local", "slack", "discord")
FEEDBACK_KINDS = ("approve", "reject", "edit")
TRAINING_STATUSES = ("queued", "running", "succeeded", "failed", "rejected")
VOTE_KINDS_SQL = "kind IN ('approve', 'reject')"


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", _enum(PLATFORMS, "platform"), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_rooms"),
        sa.UniqueConstraint("platform", "external_id", name="uq_rooms_platform_external_id"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", _enum(PLATFORMS, "platform"), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column(
            "training_consent", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("platform", "external_id", name="uq_users_platform_external_id"),
    )
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("retrieved_scene_ids", sa.JSON(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("adapter", sa.String(255), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("thread_ref", sa.String(255), nullable=True),
        sa.Column("message_ref", sa.String(255), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_generations"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name="fk_generations_room_id_rooms", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_generations_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["generations.id"],
            name="fk_generations_parent_id_generations",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_generations_room_id_created_at", "generations", ["room_id", "created_at"])
    op.create_index("ix_generations_user_id", "generations", ["user_id"])
    op.create_index("ix_generations_parent_id", "generations", ["parent_id"])

    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum(FEEDBACK_KINDS, "feedback_kind"), nullable=False),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("delivery_id", sa.String(255), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_feedback_events"),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name="fk_feedback_events_generation_id_generations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_feedback_events_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("delivery_id", name="uq_feedback_events_delivery_id"),
    )
    op.create_index(
        "ix_feedback_events_generation_id_kind", "feedback_events", ["generation_id", "kind"]
    )
    # One approval and one rejection per writer and generation; edits may repeat.
    op.create_index(
        "uq_feedback_events_vote",
        "feedback_events",
        ["generation_id", "user_id", "kind"],
        unique=True,
        sqlite_where=sa.text(VOTE_KINDS_SQL),
        postgresql_where=sa.text(VOTE_KINDS_SQL),
    )

    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", _enum(TRAINING_STATUSES, "training_status"), nullable=False),
        sa.Column("base_model", sa.String(255), nullable=False),
        sa.Column("adapter_version", sa.String(255), nullable=True),
        sa.Column("dataset_hash", sa.String(128), nullable=False),
        sa.Column("example_count", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_training_runs"),
    )
    op.create_index("ix_training_runs_status", "training_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_training_runs_status", table_name="training_runs")
    op.drop_table("training_runs")
    op.drop_index("uq_feedback_events_vote", table_name="feedback_events")
    op.drop_index("ix_feedback_events_generation_id_kind", table_name="feedback_events")
    op.drop_table("feedback_events")
    op.drop_index("ix_generations_parent_id", table_name="generations")
    op.drop_index("ix_generations_user_id", table_name="generations")
    op.drop_index("ix_generations_room_id_created_at", table_name="generations")
    op.drop_table("generations")
    op.drop_table("users")
    op.drop_table("rooms")

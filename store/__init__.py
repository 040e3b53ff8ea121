"""The store: SQLAlchemy models, queries and Alembic migrations.

Typical use::

    from store import make_engine, make_session_factory, session_scope, upgrade
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    with session_scope(factory) as session:
        room = get_or_create_room(session, platform="slack", external_id="T1/C1")
"""

from . import queries
from .db import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    make_session_factory,
    session_scope,
    upgrade,
)
from .models import (
    Base,
    FeedbackEvent,
    FeedbackKind,
    Generation,
    Lock,
    Platform,
    Room,
    TrainingRun,
    TrainingStatus,
    User,
)
from .queries import (
    ApprovedExample,
    FeedbackSummary,
    RejectedOutput,
    approved_examples,
    feedback_summary,
    finish_training_run,
    get_generation,
    get_or_create_room,
    get_or_create_user,
    latest_generation,
    record_feedback,
    record_generation,
    rejected_outputs,
    room_stats,
    set_message_ref,
    set_training_consent,
    start_training_run,
    training_exclusions,
)

__all__ = [
    "ApprovedExample",
    "Base",
    "FeedbackEvent",
    "FeedbackKind",
    "FeedbackSummary",
    "Generation",
    "Lock",
    "Platform",
    "RejectedOutput",
    "Room",
    "TrainingRun",
    "TrainingStatus",
    "User",
    "alembic_config",
    "approved_examples",
    "current_revision",
    "downgrade",
    "feedback_summary",
    "finish_training_run",
    "get_generation",
    "get_or_create_room",
    "get_or_create_user",
    "head_revision",
    "latest_generation",
    "make_engine",
    "make_session_factory",
    "queries",
    "record_feedback",
    "record_generation",
    "rejected_outputs",
    "room_stats",
    "session_scope",
    "set_message_ref",
    "set_training_consent",
    "start_training_run",
    "training_exclusions",
    "upgrade",
]

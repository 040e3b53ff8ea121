"""The store: SQLAlchemy models, Alembic migrations and the queries, one module per concern.

* ``store.rooms``: rooms, writers and their training consent;
* ``store.generations``: generated scenes, where they were posted, thread lookups;
* ``store.feedback``: approvals, rejections and edits, approval state, room counts and the
  training data they make (the consent rule);
* ``store.training_runs``: training runs and queued requests for them;
* ``store.locks``: named locks shared by every process (one training run at a time).

Typical use::

    from store import make_engine, make_session_factory, rooms, session_scope, upgrade
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    with session_scope(factory) as session:
        room = rooms.get_or_create_room(session, platform="slack", external_id="T1/C1")

No SQL outside the store: other packages call these functions, which take the session
first and keyword-only arguments after it, and flush but never commit.
"""

from . import feedback, generations, locks, rooms, training_runs
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

__all__ = [
    "Base",
    "FeedbackEvent",
    "FeedbackKind",
    "Generation",
    "Lock",
    "Platform",
    "Room",
    "TrainingRun",
    "TrainingStatus",
    "User",
    "alembic_config",
    "current_revision",
    "downgrade",
    "feedback",
    "generations",
    "head_revision",
    "locks",
    "make_engine",
    "make_session_factory",
    "rooms",
    "session_scope",
    "training_runs",
    "upgrade",
]

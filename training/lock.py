"""One training run at a time, across processes and hosts that share the store.

    with training_lock(sessions, holder=default_holder(), stale_after_s=120) as held:
        ...train...
        if held.lost.is_set():   # paused longer than stale_after_s and someone took over
            ...do not promote...

The lock is a row in the store (``store.locks``). While it is held a daemon thread
refreshes its heartbeat every ``heartbeat_s`` (default: a quarter of ``stale_after_s``),
so a long run keeps it however long it takes, and a SIGKILLed trainer's lock goes
stale ``stale_after_s`` after its last heartbeat and may then be taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from store.db import session_scope
from store.locks import acquire_lock, lock_state, refresh_lock, release_lock

log = logging.getLogger(__name__)

LOCK_NAME = "training"


class TrainingBusy(RuntimeError):
    """Another live process is training; ``holder`` and ``since`` say who and from when."""

    def __init__(self, holder: str, since: datetime | None) -> None:
        self.holder = holder
        self.since = since
        when = f" since {since.isoformat(timespec='seconds')}" if since else ""
        super().__init__(f"training is already running ({holder}{when})")


@dataclass
class HeldLock:
    """The lock while it is held. ``lost`` is set if a heartbeat found it taken over."""

    name: str
    holder: str
    lost: threading.Event = field(default_factory=threading.Event)


def default_holder() -> str:
    """``host:pid``: enough for an operator to find the process that holds the lock."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def training_lock(sessions: sessionmaker[Session], *, holder: str, stale_after_s: float,
                  heartbeat_s: float | None = None, name: str = LOCK_NAME) -> Iterator[HeldLock]:
    """Hold the training lock for the block; raise TrainingBusy when another live process has it."""
    interval = heartbeat_s if heartbeat_s is not None else stale_after_s / 4
    if not 0 < interval < stale_after_s:
        raise ValueError(f"heartbeat_s must be positive and shorter than stale_after_s ({stale_after_s}), "
                         f"not {interval}")
    busy: TrainingBusy | None = None
    with session_scope(sessions) as session:
        if not acquire_lock(session, name=name, holder=holder, stale_after_s=stale_after_s):
            current = lock_state(session, name=name)
            # No row any more: it was released between the attempt and the look.
            busy = TrainingBusy(current.holder, current.acquired_at) if current else TrainingBusy("another process", None)
    if busy is not None:
        raise busy
    held = HeldLock(name, holder)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(sessions, held, interval, stop),
                            name=f"{name}-lock-heartbeat", daemon=True)
    beat.start()
    try:
        yield held
    finally:
        stop.set()
        beat.join()
        _release(sessions, held)


def _heartbeat(sessions: sessionmaker[Session], held: HeldLock, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            with session_scope(sessions) as session:
                still_ours = refresh_lock(session, name=held.name, holder=held.holder)
        except Exception:  # a database hiccup: keep trying; the lock only goes stale after several misses
            log.warning("could not refresh the %s lock", held.name, exc_info=True)
            continue
        if not still_ours:
            log.error("the %s lock of %s was taken over by another process", held.name, held.holder)
            held.lost.set()
            return


def _release(sessions: sessionmaker[Session], held: HeldLock) -> None:
    try:
        with session_scope(sessions) as session:
            release_lock(session, name=held.name, holder=held.holder)
    except Exception:  # the lock then goes stale on its own; do not mask the block's own error
        log.warning("could not release the %s lock; it frees itself when stale", held.name, exc_info=True)

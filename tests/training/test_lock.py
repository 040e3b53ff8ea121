"""One training at a time: the lock refuses a second trainer while the first is alive,
keeps itself fresh while held, and is taken over once its holder was SIGKILLed.
Real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import REPO_ROOT
from store import Lock, session_scope
from store.locks import acquire_lock, lock_state, refresh_lock, release_lock
from store.models import utcnow
from training.lock import TrainingBusy, training_lock

HOLD = textwrap.dedent("""
    import sys, time
    from store import make_engine, make_session_factory
    from training.lock import training_lock

    url, holder, stale, beat = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    with training_lock(make_session_factory(make_engine(url)), holder=holder, stale_after_s=stale, heartbeat_s=beat):
        print("held", flush=True)
        time.sleep(600)
""")

RACE = textwrap.dedent("""
    import sys
    from store import make_engine, make_session_factory, session_scope
    from store.locks import acquire_lock

    url, holder = sys.argv[1], sys.argv[2]
    engine = make_engine(url)
    engine.connect().close()
    sessions = make_session_factory(engine)
    print("ready", flush=True)
    sys.stdin.readline()  # the test says go once every racer is ready
    with session_scope(sessions) as session:
        won = acquire_lock(session, name="training", holder=holder, stale_after_s=300)
    print("won" if won else "lost", flush=True)
""")


def _python(script: str, *args: str, stdin: int | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO_ROOT, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


@pytest.fixture
def holder_process(db_url: str):
    """Start a process holding the training lock; it is killed at the end whatever happens."""
    started: list[subprocess.Popen] = []

    def start(holder: str, *, stale: float, beat: float) -> subprocess.Popen:
        process = _python(HOLD, db_url, holder, str(stale), str(beat))
        started.append(process)
        line = process.stdout.readline()
        assert line.strip() == "held", process.stderr.read()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


def _acquire(sessions: sessionmaker[Session], holder: str, stale: float = 60.0) -> bool:
    with session_scope(sessions) as session:
        return acquire_lock(session, name="training", holder=holder, stale_after_s=stale)


def _age_heartbeat(sessions: sessionmaker[Session], seconds: float) -> None:
    """As if the holder's last heartbeat was `seconds` ago."""
    with session_scope(sessions) as session:
        session.execute(update(Lock).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


# --- the store functions ----------------------------------------------------------------


def test_a_held_lock_is_refused_to_others_until_released(session_factory) -> None:
    assert _acquire(session_factory, "a")
    assert not _acquire(session_factory, "b")
    assert _acquire(session_factory, "a")  # the holder may take it again
    with session_scope(session_factory) as session:
        assert lock_state(session, name="training").holder == "a"
        assert not release_lock(session, name="training", holder="b")
        assert release_lock(session, name="training", holder="a")
        assert lock_state(session, name="training") is None
    assert _acquire(session_factory, "b")


def test_a_stale_lock_is_taken_over_and_its_old_holder_told(session_factory) -> None:
    assert _acquire(session_factory, "a")
    _age_heartbeat(session_factory, 90)
    assert not _acquire(session_factory, "b", stale=120)  # not stale yet by b's measure
    assert _acquire(session_factory, "b", stale=60)
    with session_scope(session_factory) as session:
        assert lock_state(session, name="training").holder == "b"
        assert not refresh_lock(session, name="training", holder="a")
        assert refresh_lock(session, name="training", holder="b")


def test_only_one_of_several_processes_takes_a_stale_lock(db_url: str, session_factory) -> None:
    assert _acquire(session_factory, "dead")
    _age_heartbeat(session_factory, 600)
    # Started together by a go line once all have imported and connected, not at a time agreed
    # in advance (which a busy machine could miss); and the winner's lock stays fresh for the
    # racers (300 s), however late a slow one comes.
    racers = [_python(RACE, db_url, f"racer-{i}", stdin=subprocess.PIPE) for i in range(4)]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready", racer.stderr.read()
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = []
        for racer in racers:
            out, err = racer.communicate(timeout=120)
            assert racer.returncode == 0, err
            results.append(out.strip())
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    assert sorted(results) == ["lost", "lost", "lost", "won"]
    with session_scope(session_factory) as session:
        assert lock_state(session, name="training").holder == f"racer-{results.index('won')}"


# --- training_lock across processes ------------------------------------------------------


def test_training_is_refused_while_another_process_trains(session_factory, holder_process) -> None:
    holder_process("trainer-1", stale=1.0, beat=0.2)
    with pytest.raises(TrainingBusy) as busy:
        with training_lock(session_factory, holder="trainer-2", stale_after_s=60.0):
            pytest.fail("two trainings at once")
    assert busy.value.holder == "trainer-1" and busy.value.since is not None
    assert "trainer-1" in str(busy.value)
    # Only the heartbeat keeps the lock: made to look 10 minutes old, it is brought back by the
    # holder's next beat. (This slept past a 1-s staleness limit and counted on a beat every
    # 0.2 s, which a busy machine can delay.)
    _age_heartbeat(session_factory, 600)
    with session_scope(session_factory) as session:
        aged = lock_state(session, name="training").heartbeat_at
    deadline = time.monotonic() + 30
    while True:
        with session_scope(session_factory) as session:
            if lock_state(session, name="training").heartbeat_at > aged:
                break
        assert time.monotonic() < deadline, "the holder's heartbeat never refreshed the lock"
        time.sleep(0.05)
    with pytest.raises(TrainingBusy):
        with training_lock(session_factory, holder="trainer-2", stale_after_s=60.0):
            pytest.fail("the heartbeat did not keep the lock fresh")


def test_a_sigkilled_trainer_s_lock_is_taken_over_once_stale(session_factory, holder_process) -> None:
    holder = holder_process("doomed", stale=1.0, beat=0.2)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with session_scope(session_factory) as session:
        assert lock_state(session, name="training").holder == "doomed"  # nobody released it
    deadline = time.monotonic() + 15
    while True:
        try:
            with training_lock(session_factory, holder="survivor", stale_after_s=1.0) as held:
                with session_scope(session_factory) as session:
                    assert lock_state(session, name="training").holder == "survivor"
                assert not held.lost.is_set()
            break
        except TrainingBusy:
            assert time.monotonic() < deadline, "the dead trainer's lock never went stale"
            time.sleep(0.2)
    with session_scope(session_factory) as session:
        assert lock_state(session, name="training") is None  # released on exit


def test_losing_the_lock_while_training_is_noticed(session_factory) -> None:
    with training_lock(session_factory, holder="slow", stale_after_s=10.0, heartbeat_s=0.1) as held:
        with session_scope(session_factory) as session:  # another process took it over
            session.execute(update(Lock).values(holder="intruder"))
        assert held.lost.wait(timeout=5)
    with session_scope(session_factory) as session:
        assert lock_state(session, name="training").holder == "intruder"  # ours was not to release


def test_the_lock_is_released_when_training_fails(session_factory) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with training_lock(session_factory, holder="a", stale_after_s=10.0):
            raise RuntimeError("boom")
    with training_lock(session_factory, holder="b", stale_after_s=10.0):
        pass


def test_heartbeat_must_be_shorter_than_staleness(session_factory) -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        with training_lock(session_factory, holder="a", stale_after_s=1.0, heartbeat_s=2.0):
            pass

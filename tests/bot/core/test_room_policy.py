"""Room policy as writers meet it: who may approve, quorum, rate limit, /room."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.commands import dispatch
from bot.core.feedback import record
from bot.core.ratelimit import RateLimiter
from bot.core.replies import ActionKind, Invocation
from emulators.core_services import make_core_services
from emulators.openai_backend import FakeBackend
from store import feedback, training_runs
from store.db import session_scope


@pytest.fixture
def backend():
    with FakeBackend() as fake:
        yield fake


def ask(text: str, user: str = "U1", roles: tuple[str, ...] = ()) -> Invocation:
    return Invocation(platform="discord", room_id="G1:C1", user_id=user, user_name=user.lower(), text=text,
                      roles=roles)


def run(coroutine):
    return asyncio.run(coroutine)


def test_only_approvers_may_approve_and_quorum_shows_progress(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url,
                                  room={"approvers": ["U1"], "approver_roles": ["R-showrunner"], "quorum": 2})
    scene = run(dispatch(services, "dialogue", ask("a robot boots up", user="U9")))
    refused = run(record(services, ask("", user="U9"), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    first = run(record(services, ask("", user="U1"), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    second = run(record(services, ask("", user="U7", roles=("R-showrunner",)), generation_id=scene.generation_id,
                        kind=ActionKind.APPROVE))
    assert refused.is_error and "Only the room's approvers" in refused.text
    assert "Awaiting approval (1/2: 1 more needed)" in first.text and not first.metadata["approved"]
    assert "Approved (2/2)" in second.text and second.metadata["approved"]
    with session_scope(services.sessions) as session:
        assert feedback.feedback_summary(session, generation_id=scene.generation_id).approvals == 2


def test_a_writer_over_the_rate_limit_is_told_when_to_retry(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"rate_limit_per_minute": 2})
    replies = [run(dispatch(services, "dialogue", ask(f"scene {n}"))) for n in range(3)]
    other_writer = run(dispatch(services, "dialogue", ask("scene for someone else", user="U2")))
    assert not replies[0].is_error and not replies[1].is_error
    assert replies[2].is_error and "2 scenes a minute" in replies[2].text
    assert not other_writer.is_error
    assert len(backend.requests) == 3


def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.retry_after("a") == 0 and limiter.retry_after("a") == 0
    assert limiter.retry_after("a") == pytest.approx(60)
    now[0] = 59.5
    assert limiter.retry_after("a") == pytest.approx(0.5)
    now[0] = 60.0
    assert limiter.retry_after("a") == 0


def test_room_status_consent_and_model(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"quorum": 2})
    scene = run(dispatch(services, "dialogue", ask("a robot boots up")))
    run(record(services, ask(""), generation_id=scene.generation_id, kind=ActionKind.APPROVE))
    status = run(dispatch(services, "room", ask("status")))
    assert "Scenes written: 1 · approvals 1" in status.text and "Approvals needed per scene: 2" in status.text

    off = run(dispatch(services, "room", ask("consent off")))
    assert "kept out of training" in off.text
    with session_scope(services.sessions) as session:
        assert feedback.approved_examples(session) == []

    model = run(dispatch(services, "room", ask("model")))
    assert "`fake-model`" in model.text

    unknown = run(dispatch(services, "room", ask("explode")))
    assert "Unknown /room action `explode`" in unknown.text and "consent on|off" in unknown.text
    bad = run(dispatch(services, "room", ask("consent maybe")))
    assert bad.is_error


def test_commands_outside_the_channel_allowlist_are_refused_naming_where_to_go(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"channels": ["C1", "C5"]})
    outside = Invocation(platform="discord", room_id="G1:C2", user_id="U1", text="a robot boots up")
    for name in ("dialogue", "help", "nonsense"):
        refused = run(dispatch(services, name, outside))
        assert refused.is_error and "only takes commands in <#C1>, <#C5>" in refused.text
    assert not backend.requests
    assert not run(dispatch(services, "dialogue", ask("a robot boots up"))).is_error  # G1:C1 is allowed

    everywhere = make_core_services(tmp_path / "open", backend.url)
    assert not run(dispatch(everywhere, "help", outside)).is_error


def test_feedback_carries_who_approved_rejected_and_edited(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"quorum": 2})
    scene = run(dispatch(services, "dialogue", ask("a robot boots up")))
    gid = scene.generation_id
    first = run(record(services, ask("", user="U1"), generation_id=gid, kind=ActionKind.APPROVE))
    assert first.metadata["approval"].describe() == "Approved 1 of 2 — by <@U1>"
    run(record(services, ask("", user="U3"), generation_id=gid, kind=ActionKind.REJECT))
    last = run(record(services, ask("", user="U2"), generation_id=gid, kind=ActionKind.EDIT, edited_text="INT. X"))
    state = last.metadata["approval"]
    assert state.approved and state.approvers == ("U1", "U2")
    assert state.describe() == "Approved by <@U1>, <@U2> · Rejected by <@U3> · Edited by <@U2>"


def _fake_adapter(directory):
    """The two files the registry checks for (it never loads weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (directory / "adapter_model.safetensors").write_bytes(b"weights")
    return directory


def test_retrain_and_rollback_are_for_room_admins_only(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"admins": ["U-ADMIN"]})
    for action in ("retrain", "rollback"):
        refused = run(dispatch(services, "room", ask(action, user="U1")))
        assert refused.is_error and "Only room admins" in refused.text
    with session_scope(services.sessions) as session:
        assert training_runs.pending_training_request(session) is None


def test_retrain_queues_one_request_for_the_trainer(tmp_path, backend):
    services = make_core_services(tmp_path, backend.url, room={"admin_roles": ["R-showrunner"]})
    first = run(dispatch(services, "room", ask("retrain", user="U7", roles=("R-showrunner",))))
    again = run(dispatch(services, "room", ask("retrain", user="U8", roles=("R-showrunner",))))
    assert not first.is_error and "Training requested (request 1)" in first.text
    assert "already waiting (request 1)" in again.text
    with session_scope(services.sessions) as session:
        request = training_runs.pending_training_request(session)
        assert request.id == 1 and "requested by u7 in G1:C1" in request.notes
        assert training_runs.latest_training_run(session) is None  # a request is not a run yet


def test_rollback_undoes_the_latest_promotion(tmp_path, backend):
    from registry import versions as registry

    services = make_core_services(tmp_path, backend.url, room={"admins": ["U-ADMIN"]})
    adapters = services.settings.adapter_dir
    for version in ("r0001-aaaa", "r0002-bbbb"):
        registry.write_adapter_version(adapters, version, source=_fake_adapter(tmp_path / version),
                                       base_model="smollm2-135m-instruct")
        registry.promote(adapters, version)
    reply = run(dispatch(services, "room", ask("rollback", user="U-ADMIN")))
    assert not reply.is_error and "`r0002-bbbb` → `r0001-aaaa`" in reply.text
    assert registry.serving(adapters).default == "r0001-aaaa"
    run(dispatch(services, "room", ask("rollback", user="U-ADMIN")))
    assert registry.serving(adapters).default is None  # back to the base model
    nothing = run(dispatch(services, "room", ask("rollback", user="U-ADMIN")))
    assert nothing.is_error and "nothing to roll back" in nothing.text

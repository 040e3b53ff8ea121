"""The probes and metrics endpoint an orchestrator and Prometheus read, over real HTTP."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from observability import metrics, ops_server
from observability.ops_server import LoopHeartbeat, OpsServer


def failing() -> str:
    raise RuntimeError("store unreachable: connection refused")


@pytest.fixture
def serve():
    servers: list[OpsServer] = []

    def start(**kwargs) -> str:
        server = OpsServer(host="127.0.0.1", port=0, **kwargs).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.close()


def test_ready_when_every_check_passes_and_says_what_it_checked(serve):
    url = serve(ready_checks={"store": lambda: "store answers"}, live_checks={"loop": lambda: "turning"})
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": {"ok": True, "detail": "store answers"}}
    assert httpx.get(f"{url}/healthz").json()["checks"]["loop"]["ok"] is True


def test_a_failing_check_makes_it_unready_and_names_the_problem(serve):
    url = serve(ready_checks={"store": failing, "slack": lambda: "listening"})
    response = httpx.get(f"{url}/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["store"] == {"ok": False, "detail": "store unreachable: connection refused"}
    assert body["checks"]["slack"]["ok"] is True
    assert httpx.get(f"{url}/healthz").status_code == 200  # not ready is not dead: no restart for it


def test_information_checks_show_but_never_fail_readiness(serve):
    url = serve(ready_checks={"store": lambda: "ok"}, info_checks={"backend": failing})
    response = httpx.get(f"{url}/readyz")
    assert response.status_code == 200
    assert response.json()["info"]["backend"]["ok"] is False


def test_checks_added_after_start_count(serve):
    checks: dict = {}
    url = serve(ready_checks=checks)
    checks["discord"] = failing
    assert httpx.get(f"{url}/readyz").status_code == 503


def test_metrics_are_prometheus_text_with_the_bot_counters(serve):
    url = serve()
    metrics.FEEDBACK.labels("slack", "approve").inc()
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert 'writersroom_bot_feedback_total{kind="approve",platform="slack"}' in response.text
    assert httpx.get(f"{url}/nope").status_code == 404


def test_a_stalled_event_loop_fails_liveness(monkeypatch):
    # The heartbeat's clock is moved by hand: with real time, a busy machine could let 0.05 s
    # pass between constructing it and the first check.
    now = [100.0]
    monkeypatch.setattr(ops_server, "time", SimpleNamespace(monotonic=lambda: now[0]))
    heartbeat = LoopHeartbeat(every_s=0.01, stale_after_s=0.05)
    assert "turned" in heartbeat.check()
    now[0] += 0.1  # never started: as good as a loop that stopped turning
    with pytest.raises(RuntimeError, match="has not turned"):
        heartbeat.check()

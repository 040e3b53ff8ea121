"""/healthz, /readyz and /metrics for processes that have no HTTP server of their own to
hang them on (the Discord gateway client, Slack in Socket Mode, the trainer).

The standard library's threading HTTP server is enough for a probe every few seconds
and a scrape every fifteen; it runs beside the event loop, so a wedged loop cannot take
the probes down with it — which is why liveness checks the loop's heartbeat instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from observability.metrics import REGISTRY

log = logging.getLogger(__name__)

PATHS = ("/healthz", "/readyz", "/metrics")
# A check returns a short detail when its dependency is usable and raises when it is not.
Check = Callable[[], str]


class LoopHeartbeat:
    """Proof that an event loop still turns: a task stamps the time every `every_s` seconds."""

    def __init__(self, *, every_s: float = 5.0, stale_after_s: float = 60.0) -> None:
        self.every_s, self.stale_after_s = every_s, stale_after_s
        self._last = time.monotonic()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Call from inside the loop to watch."""
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            self._last = time.monotonic()
            await asyncio.sleep(self.every_s)

    def check(self) -> str:
        age = time.monotonic() - self._last
        if age > self.stale_after_s:
            raise RuntimeError(f"event loop has not turned for {age:.0f} s")
        return f"event loop turned {age:.1f} s ago"


class OpsServer:
    """Serves the probes and metrics of one process on host:port (port 0: any free port)."""

    def __init__(self, *, host: str, port: int, ready_checks: Mapping[str, Check] | None = None,
                 live_checks: Mapping[str, Check] | None = None, info_checks: Mapping[str, Check] | None = None,
                 registry: CollectorRegistry = REGISTRY, role: str = "bot") -> None:
        """ready_checks gate /readyz; info_checks are shown there but never fail it (a backend that is
        down is every replica's problem: marking them all unready would only hide the bots' clear error
        replies behind the platform's own); live_checks gate /healthz. The mappings are read at each
        probe, so checks added later (a platform once connected) count."""
        self.ready_checks = ready_checks if ready_checks is not None else {}
        self.live_checks = live_checks if live_checks is not None else {}
        self.info_checks = info_checks if info_checks is not None else {}
        self.registry, self.role = registry, role
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"ops-{role}", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "OpsServer":
        self._thread.start()
        log.info("%s health and metrics on http://%s:%d (%s)", self.role, *self._server.server_address[:2],
                 ", ".join(PATHS))
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def report(self, checks: Mapping[str, Check], info: Mapping[str, Check] | None = None) -> tuple[int, dict]:
        results = _run(checks)
        healthy = all(result["ok"] for result in results.values())
        body = {"status": "ok" if healthy else "unavailable", "role": self.role, "checks": results}
        if info:
            body["info"] = _run(info)
        return (200 if healthy else 503), body


def _run(checks: Mapping[str, Check]) -> dict[str, dict]:
    results = {}
    for name, check in list(checks.items()):
        try:
            results[name] = {"ok": True, "detail": check()}
        except Exception as exc:  # a probe must answer, whatever the dependency did
            results[name] = {"ok": False, "detail": str(exc) or type(exc).__name__}
    return results


def _handler_for(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(ops.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                status, body = (ops.report(ops.live_checks) if path == "/healthz"
                                else ops.report(ops.ready_checks, ops.info_checks))
                self._send(status, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, json.dumps({"error": f"no such path; try {', '.join(PATHS)}"}).encode(),
                           "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # probes every few seconds would drown the log
            return

    return Handler

"""An OpenAI-compatible chat server on a loopback socket that answers with a fixed scene.

For tests of the chat side only (bots, local room): the real backend and the real
model are tested on their own in tests/backend. `delay_s` makes it slow (each request
sleeps in its own thread, so concurrent requests overlap), `fail_with` makes it answer
an error status, and `requests` records the scene requests the bot sent (`cast_requests` the
short ones that name characters a writer left to the model).

A scene request with "stream": true (the bot's client always streams) is answered as our
backend streams: `queue_positions` first, as the backend's queue reports (`: queue position
3`, sent before a held request waits), then the scene in chunks and `data: [DONE]`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CANNED_SCENE = """EXT. ALLEY - NIGHT

Rain hammers the dumpsters. MAYA blocks the only way out.

MAYA
You sold us out, Cole.

COLE
(backing away)
I kept you alive.

MAYA
Alive is not the same as free.

COLE
Then walk away while you still can."""


# Longer than any test waits: a request left held by a failed test ends by itself.
HOLD_LIMIT_S = 120.0


class _Server(ThreadingHTTPServer):
    # The standard library listens with a backlog of 5: more concurrent scene requests
    # than that would wait on TCP retransmits (seconds) before the server even saw them.
    request_queue_size = 128
    daemon_threads = True


@dataclass
class FakeBackend:
    scene: str = CANNED_SCENE
    model: str = "fake-model"
    delay_s: float = 0.0
    fail_with: int | None = None
    requests: list[dict] = field(default_factory=list)
    scenes: list[str] | None = None  # answers in turn; None: always `scene`
    model_list_requests: int = 0  # GET /v1/models calls seen
    # held=True: every chat request waits, recorded, until release(). A test that the bots
    # acknowledge before the backend answers then needs no clock: the acknowledgements cannot
    # have waited for a scene nobody has been given yet. Model listings are never held.
    held: bool = False
    # A scene request whose writer named fewer than two characters is preceded by a short one in
    # which the model names them (screenplay.grammar.cast_grammar); it is answered with `cast`,
    # as a model decoding under that grammar would, and kept apart from `requests` (the scenes).
    cast: str = " Maya, Cole"
    cast_requests: list[dict] = field(default_factory=list)
    queue_positions: tuple[int, ...] = ()  # queue reports streamed before each scene

    @staticmethod
    def is_cast_request(body: dict) -> bool:
        last = (body.get("messages") or [{}])[-1]
        return last.get("role") == "assistant" and last.get("content") == "Characters:"

    def answer(self, number: int) -> str:
        """The scene for the request numbered ``number`` (from 0)."""
        if not self.scenes:
            return self.scene
        return self.scenes[min(number, len(self.scenes) - 1)]

    def release(self) -> None:
        """Answer the held requests, and every later one at once."""
        self._released.set()

    def __post_init__(self) -> None:
        backend = self
        self._released = threading.Event()
        if not self.held:
            self._released.set()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                backend.model_list_requests += 1
                self._send(200, {"object": "list", "data": [{"id": backend.model, "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if backend.is_cast_request(body):  # the model names characters the writer left open
                    backend.cast_requests.append(body)
                    self._answer(backend.cast)
                    return
                backend.requests.append(body)
                number = len(backend.requests) - 1
                if body.get("stream") and not backend.fail_with:
                    self._stream(number)
                    return
                backend._released.wait(HOLD_LIMIT_S)
                time.sleep(backend.delay_s)
                if backend.fail_with:
                    self._send(backend.fail_with, {"error": {"message": "backend unavailable", "type": "server_error"}})
                    return
                self._answer(backend.answer(number))

            def _stream(self, number: int) -> None:
                if backend.queue_positions:
                    self._start_events()
                    for position in backend.queue_positions:
                        self._write(f": queue position {position}\n\n")
                backend._released.wait(HOLD_LIMIT_S)
                time.sleep(backend.delay_s)
                if not backend.queue_positions:
                    self._start_events()
                text = backend.answer(number)
                for start in range(0, len(text), 40):
                    delta = {"content": text[start:start + 40]} if start else {"role": "assistant",
                                                                                "content": text[:40]}
                    self._write(self._chunk(delta, None))
                self._write(self._chunk({}, "stop"))
                self._write("data: [DONE]\n\n")

            def _start_events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes

            def _write(self, event: str) -> None:
                self.wfile.write(event.encode())
                self.wfile.flush()

            @staticmethod
            def _chunk(delta: dict, finish_reason: str | None) -> str:
                body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                        "model": backend.model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
                return f"data: {json.dumps(body)}\n\n"

            def _answer(self, text: str) -> None:
                self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": backend.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
                })

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "FakeBackend":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Hold a FakeBackend's scene requests until the test lets them go.

A test that the bots acknowledge before the backend has answered used to make the backend
slow (`delay_s=3`) and then time the acknowledgements; on a busy machine the timing, not the
bot, decided the outcome. Holding every scene request until all acknowledgements are in says
the same thing with no clock in it: the acknowledgements cannot have waited for a scene that
nobody has been given yet.

    requests = HeldRequests()
    with FakeBackend(requests=requests) as backend:
        ...                    # every POST /v1/chat/completions waits in its server thread
        requests.release()     # now they are answered

FakeBackend's handler appends each chat request to `backend.requests` before it answers it,
so the wait goes in `append`. Model listings (GET) are never held.
"""

from __future__ import annotations

import threading

# Longer than any test waits: a held request left behind by a failed test ends by itself.
HOLD_LIMIT_S = 120.0


class HeldRequests(list):
    """FakeBackend's `requests` list whose `append` waits (in the server's thread) until release()."""

    def __init__(self) -> None:
        super().__init__()
        self._gate = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0  # requests held right now

    def append(self, body: dict) -> None:
        super().append(body)
        with self._lock:
            self.waiting += 1
        try:
            self._gate.wait(HOLD_LIMIT_S)
        finally:
            with self._lock:
                self.waiting -= 1

    def release(self) -> None:
        """Answer the held requests and every later one at once."""
        self._gate.set()

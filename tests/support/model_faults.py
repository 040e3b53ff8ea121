"""Make a real model slow, stuck or broken on demand, for scheduler and backend tests.

A forward pre-hook on the model's top module sees every forward pass the decode loop
makes; it can sleep, wait on a gate, or raise, without replacing any part of the loop.
A forward hook can also forbid the stop tokens, so a test that needs a long generation
does not depend on when a tiny random model happens to sample its end of text.
"""

from __future__ import annotations

import threading
import time


class ModelFaults:
    def __init__(self, model) -> None:
        self.delay_s = 0.0
        self.failures_left = 0
        self.passes = 0
        self.entered = threading.Event()  # set once a forward pass has started
        self._gate = threading.Event()
        self._gate.set()
        self._model = model
        self._stop_handle = None
        self._handle = model.register_forward_pre_hook(self._before_forward)

    def hold(self) -> None:
        """Block every forward pass until release()."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_next(self, passes: int = 1) -> None:
        self.failures_left = passes

    def never_stop(self, stop_ids) -> None:
        """Every later forward pass gives the stop tokens zero probability: rows run to max_tokens."""
        banned = sorted(stop_ids)

        def _forbid(module, args, output):
            output.logits[..., banned] = float("-inf")
            return output

        self._stop_handle = self._model.register_forward_hook(_forbid)

    def remove(self) -> None:
        self.release()
        self._handle.remove()
        if self._stop_handle is not None:
            self._stop_handle.remove()

    def _before_forward(self, module, args) -> None:
        self.passes += 1
        self.entered.set()
        self._gate.wait(timeout=60)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("CUDA error: device-side assert triggered")

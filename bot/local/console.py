"""The room's terminal: one prompt, replies, and notices from other threads that leave the prompt whole.

A notice (the library's loading progress) can arrive while the writer is typing at the
prompt. Printed as is, it would land in the middle of their line; instead the line is
cleared, the notice printed, and the prompt redrawn with what they had typed so far
(GNU readline keeps it; without readline the typed text is still there, only not redrawn).
When the output is not a terminal (a pipe, a test), notices are plain lines.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import IO

PROMPT = "> "
CLEAR_LINE = "\r\x1b[K"


class Console:
    def __init__(self, *, prompt: str = PROMPT, read: Callable[[str], str] | None = None,
                 out: IO[str] | None = None) -> None:
        self.prompt = prompt
        self._read = read
        self._out = out
        self._lock = threading.Lock()
        self._prompting = False

    @property
    def out(self) -> IO[str]:
        return self._out or sys.stdout  # looked up late: a test (or pytest's capture) may swap stdout

    def read_line(self) -> str:
        """One line from the writer (blocking: call it off the event loop); EOFError at the end."""
        read = self._read or _readline_input()
        with self._lock:
            self._prompting = True
        try:
            return read(self.prompt)
        finally:
            with self._lock:
                self._prompting = False

    def show(self, text: str) -> None:
        """A reply or a line of the room itself (written while no prompt is showing)."""
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def notice(self, text: str) -> None:
        """A line from elsewhere (any thread), without garbling the prompt."""
        with self._lock:
            out = self.out
            if self._prompting and _is_terminal(out):
                out.write(f"{CLEAR_LINE}{text}\n{self.prompt}{_typed_so_far()}")
            else:
                out.write(text + "\n")
            out.flush()


def _is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _readline_input() -> Callable[[str], str]:
    """input(), with line editing and history when reading from a terminal."""
    if sys.stdin is not None and _is_terminal(sys.stdin):
        try:
            import readline  # noqa: F401  (importing it is what gives input() line editing)
        except ImportError:
            pass
    return input


def _typed_so_far() -> str:
    readline = sys.modules.get("readline")
    try:
        return readline.get_line_buffer() if readline is not None else ""
    except AttributeError:  # a readline build without it: the prompt alone is redrawn
        return ""

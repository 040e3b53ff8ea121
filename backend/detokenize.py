"""Turn a growing list of token ids into text deltas that never have to be taken back.

A byte-level BPE token can hold half of a UTF-8 character (an accented letter, an emoji),
and the decoder shows the missing half as U+FFFD until the next token arrives. So each
update decodes the row's ids and sends only the part that is stable: nothing ending in
U+FFFD, and no trailing whitespace (the complete text is stripped, and whitespace that
turns out to be trailing must never have been sent). The sum of the deltas is therefore
exactly the non-streamed text.
"""

from __future__ import annotations

from typing import Callable

REPLACEMENT = "\ufffd"


class IncrementalText:
    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self.sent = ""

    def update(self, token_ids: list[int]) -> str:
        """The new stable text since the last call ("" when nothing is stable yet)."""
        return self._advance(self._decode(token_ids).rstrip(REPLACEMENT).strip())

    def finish(self, token_ids: list[int]) -> str:
        """The rest of the text once the row is done."""
        return self._advance(self._decode(token_ids).strip())

    def _advance(self, visible: str) -> str:
        # A decoder that rewrites earlier text (rare clean-up rules) cannot be followed
        # without retracting; then the rest waits for a later prefix-consistent text.
        if len(visible) <= len(self.sent) or not visible.startswith(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent):], visible
        return delta

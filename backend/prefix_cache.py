"""Prompt openings computed once: the keys and values of the tokens many requests begin with.

Every /dialogue prompt opens the same way (the system prompt and the worked example, a few
hundred tokens), and one writer's scene requests (naming the cast, the scene, a retry) share
nearly their whole prompt. Prefilling that opening again for every row was a quarter of the
backend's time at 16 writers on a CPU. This is what vLLM calls automatic prefix caching; it
is written here because the engine's left-padded batches (backend.engine) are ours.

How an opening is learned: when a group of rows is admitted, the longest run of tokens all
of them share with each other and with the prompt admitted before them (same owner) is an
opening worth keeping once it is at least MIN_TOKENS long. An opening's owner is whatever
computed it: the engine says the model and the adapter name (an adapter, or the int8 copy
of a model, changes the keys and values; every adapter version has its own name). The
least recently used opening is dropped past MAX_ENTRIES.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

MIN_TOKENS = 48
MAX_ENTRIES = 8

Opening = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values, [1, heads, tokens, dim]


@dataclass(frozen=True)
class Known:
    tokens: int  # how many prompt tokens the opening covers
    layers: Opening | None  # None: learned now, still to be computed


def shared_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many tokens two prompts share from the start."""
    limit = min(len(first), len(second))
    for index in range(limit):
        if first[index] != second[index]:
            return index
    return limit


class PrefixCache:
    def __init__(self, *, min_tokens: int = MIN_TOKENS, max_entries: int = MAX_ENTRIES) -> None:
        self.min_tokens, self.max_entries = min_tokens, max_entries
        self._entries: OrderedDict[tuple[Hashable, tuple[int, ...]], Opening] = OrderedDict()
        self._last: dict[Hashable, list[int]] = {}  # the prompt admitted last, per owner
        self.hits = 0  # rows that started from a kept opening (tests, metrics)

    def opening_for(self, owner: Hashable, prompts: list[list[int]]) -> Known | None:
        """The opening this group of prompts (one owner) can start from: a kept one, or a new one
        to compute and `keep`; None when they share nothing worth keeping."""
        last = self._last.get(owner)
        self._last[owner] = list(prompts[-1])
        # Each row must keep at least one token of its own: its logits pick the first token.
        room = min(len(prompt) for prompt in prompts) - 1
        kept = max((key for key in self._entries
                    if key[0] == owner and len(key[1]) <= room
                    and all(tuple(prompt[:len(key[1])]) == key[1] for prompt in prompts)),
                   key=lambda key: len(key[1]), default=None)
        others = [*prompts[1:], *([last] if last else [])]
        shared = min(min(shared_length(prompts[0], other) for other in others), room) if others else 0
        if shared >= self.min_tokens and (kept is None or shared > len(kept[1])):
            return Known(shared, None)  # longer than anything kept: worth computing
        if kept is None:
            return None
        self._entries.move_to_end(kept)
        self.hits += len(prompts)
        return Known(len(kept[1]), self._entries[kept])

    def keep(self, owner: Hashable, tokens: Sequence[int], layers: Opening) -> None:
        self._entries[(owner, tuple(tokens))] = layers
        self._entries.move_to_end((owner, tuple(tokens)))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._last.clear()

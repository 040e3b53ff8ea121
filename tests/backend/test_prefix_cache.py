"""Prompt openings computed once (backend.prefix_cache): rows that start from a kept opening
compute exactly what they would alone, and the opening is learned, kept per adapter and reused."""

from __future__ import annotations

import pytest

from backend.engine import BatchEngine, Row
from backend.prefix_cache import PrefixCache, shared_length
from backend.sampling import SamplingParams

SYSTEM = "You write scenes in screenplay format. The rain hammers the roof. She turns away from the window."
REQUESTS = ["MAYA", "COLE", "You sold us out.", "I kept you alive.", "INT. KITCHEN - NIGHT"]


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def rows(generator, params: list[SamplingParams]) -> list[Row]:
    return [Row(generator.encode_prompt(messages(text), p.max_tokens), p) for text, p in zip(REQUESTS, params)]


def decode(engine: BatchEngine, batch: list[Row]) -> list[list[int]]:
    """One row first, then the rest joining the running batch together, as writers arrive."""
    engine.admit(batch[:1])
    engine.step()
    engine.admit(batch[1:3])
    engine.step()
    engine.admit(batch[3:])
    while engine.rows:
        engine.step()
    return [row.generated for row in batch]


PARAMS = [SamplingParams(max_tokens=n, temperature=t, top_p=0.9, repetition_penalty=1.15, seed=seed)
          for n, t, seed in [(15, 0.7, 1), (9, 0.0, 2), (20, 1.0, 3), (12, 0.7, 4), (10, 0.0, 5)]]


def test_rows_from_a_kept_opening_compute_what_they_would_without_it(tiny_generator):
    without = BatchEngine(tiny_generator)
    without.openings.min_tokens = 10**9  # never keeps one
    expected = decode(without, rows(tiny_generator, PARAMS))

    engine = BatchEngine(tiny_generator)
    assert engine.openings.min_tokens < len(tiny_generator.encode_prompt(messages(""), 1))  # the test means something
    first = decode(engine, rows(tiny_generator, PARAMS))
    assert first == expected
    again = decode(engine, rows(tiny_generator, PARAMS))  # every admission now starts from the kept opening
    assert again == expected
    assert engine.openings.hits >= len(REQUESTS)


def test_an_opening_costs_fewer_prefill_tokens(tiny_generator):
    engine = BatchEngine(tiny_generator)
    seen: list[int] = []
    original = engine._forward

    def counting(ids, mask, positions, cache, batch):
        seen.append(ids.numel())
        return original(ids, mask, positions, cache, batch)

    engine._forward = counting
    batch = rows(tiny_generator, [SamplingParams(max_tokens=2, temperature=0.0)] * 5)
    engine.admit(batch[:1])
    prompt_tokens = sum(len(row.prompt_ids) for row in batch[1:])
    seen.clear()
    engine.admit(batch[1:])  # learns the opening: one pass over it, then only the rows' own tokens
    learned = sum(seen)
    seen.clear()
    engine.reset()
    engine.admit(batch[1:])  # the kept opening: only the rows' own tokens
    assert learned < prompt_tokens
    assert sum(seen) < learned


def test_openings_are_kept_per_adapter_and_only_when_long_enough():
    cache = PrefixCache(min_tokens=4)
    opening = [1, 2, 3, 4, 5, 6]
    assert cache.opening_for(None, [opening + [7]]) is None  # nothing to share with yet
    learned = cache.opening_for(None, [opening + [8, 9]])
    assert learned is not None and learned.tokens == 6 and learned.layers is None
    cache.keep(None, opening, layers=[])
    assert cache.opening_for(None, [opening + [10]]).tokens == 6
    assert cache.opening_for("house-v2", [opening + [11]]) is None  # another adapter's keys differ
    assert cache.opening_for(None, [[1, 2, 9, 9, 9]]) is None  # shares 2 tokens: not worth keeping


def test_every_row_keeps_a_token_of_its_own():
    cache = PrefixCache(min_tokens=2)
    cache.opening_for(None, [[1, 2, 3, 4]])
    known = cache.opening_for(None, [[1, 2, 3, 4]])  # the same prompt again
    assert known.tokens == 3  # not 4: the last token's logits pick the first new token


def test_the_least_recently_used_opening_is_dropped():
    cache = PrefixCache(min_tokens=2, max_entries=2)
    for first in (1, 2, 3):
        cache.keep(None, [first, 0, 0], layers=[])
    assert cache.opening_for(None, [[1, 0, 0, 5]]) is None or cache.opening_for(None, [[1, 0, 0, 5]]).layers is None
    assert cache.opening_for(None, [[3, 0, 0, 5]]).layers == []


@pytest.mark.parametrize("first, second, shared", [([1, 2, 3], [1, 2, 4], 2), ([1], [2], 0), ([1, 2], [1, 2, 3], 2)])
def test_shared_length(first, second, shared):
    assert shared_length(first, second) == shared

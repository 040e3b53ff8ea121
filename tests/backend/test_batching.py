"""The batching scheduler and its decode loop, on the tiny model: batching, per-row sampling,
limits, cancellation, failures; and once on the real SmolLM2 (integration)."""

from __future__ import annotations

import asyncio
import time
import itertools
import threading
from contextlib import contextmanager

import pytest
import torch

from backend.batching import (
    GenerationFailedError,
    QueueFullError,
    RequestTimeoutError,
    Scheduler,
)
from backend.engine import BatchEngine, Row
from backend.generator import ChatGenerator, PromptTooLongError
from backend.sampling import SamplingParams
from tests.support.model_faults import ModelFaults

PROMPTS = ["MAYA", "COLE", "Scene: a detective corners her partner.", "The rain hammers the roof.",
           "You sold us out.", "I kept you alive.", "INT. KITCHEN - NIGHT", "She turns away from the window."]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@contextmanager
def running(generator, **settings):
    scheduler = Scheduler(generator, **settings)
    try:
        yield scheduler
    finally:
        scheduler.close()


def ask(scheduler: Scheduler, text: str, params: SamplingParams, **options):
    return scheduler.submit(scheduler.generator.encode_prompt(chat(text), params.max_tokens), params, **options)


async def gather_results(tickets):
    return await asyncio.gather(*(ticket.wait() for ticket in tickets))


def hf_greedy(generator, messages, max_new_tokens: int, **processors) -> list[int]:
    ids = torch.tensor([generator.encode_prompt(messages, max_new_tokens)])
    with torch.inference_mode():
        output = generator.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                          do_sample=False, pad_token_id=generator.pad_id, **processors)
    return output[0, ids.shape[1]:].tolist()


def decode_alone(generator, text: str, params: SamplingParams) -> list[int]:
    engine = BatchEngine(generator)
    row = Row(generator.encode_prompt(chat(text), params.max_tokens), params)
    engine.admit([row])
    while engine.rows:
        engine.step()
    return row.generated


@pytest.fixture
def fresh_generator(tiny_model_dir):
    """A generator of its own, so hooks that slow or break it touch no other test."""
    return ChatGenerator(tiny_model_dir, name="tiny", device="cpu")


# -- the decode loop ---------------------------------------------------------------------------

@pytest.mark.parametrize("processors", [{}, {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2}])
def test_greedy_batch_of_one_equals_model_generate(tiny_generator, processors):
    params = SamplingParams(max_tokens=24, temperature=0.0, **processors)
    for text in PROMPTS[:3]:
        ours = decode_alone(tiny_generator, text, params)
        assert ours == hf_greedy(tiny_generator, chat(text), 24, **processors)


def test_rows_joining_a_running_batch_compute_what_they_would_alone(tiny_generator):
    params = [SamplingParams(max_tokens=n, temperature=t, top_p=0.9, repetition_penalty=1.15, seed=seed)
              for n, t, seed in [(15, 0.7, 1), (9, 0.0, 2), (20, 1.0, 3), (12, 0.7, 4)]]
    alone = [decode_alone(tiny_generator, text, p) for text, p in zip(PROMPTS, params)]
    engine = BatchEngine(tiny_generator)
    rows = [Row(tiny_generator.encode_prompt(chat(text), p.max_tokens), p) for text, p in zip(PROMPTS, params)]
    engine.admit(rows[:2])
    engine.step()
    engine.step()
    engine.admit(rows[2:3])  # a longer prompt joins mid-way: the cache is padded on the left
    engine.step()
    engine.admit(rows[3:])
    while engine.rows:
        engine.step()
    assert [row.generated for row in rows] == alone


def test_a_finished_row_leaves_the_batch(tiny_generator):
    engine = BatchEngine(tiny_generator)
    short, long = (Row(tiny_generator.encode_prompt(chat(text), n), SamplingParams(max_tokens=n, temperature=0.0))
                   for text, n in [("Scene: a detective corners her partner.", 2), ("MAYA", 6)])
    engine.admit([short, long])
    engine.step()
    assert engine.rows == [long]
    assert engine._mask.shape[1] == len(long.prompt_ids) + 1  # the long prompt's padding columns were cut
    while engine.rows:
        engine.step()
    assert len(short.generated) == 2 and len(long.generated) == 6


def test_an_adapter_on_a_plain_model_or_an_oversized_request_is_refused(tiny_generator):
    with running(tiny_generator) as scheduler:
        with pytest.raises(ValueError, match="no LoRA adapters"):
            ask(scheduler, "MAYA", SamplingParams(max_tokens=4), adapter="house-style-v1")
        with pytest.raises(PromptTooLongError):
            scheduler.submit([1] * 200, SamplingParams(max_tokens=100))  # the tiny window is 256


def test_mixed_adapter_rows_match_their_single_adapter_runs(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    generator = ChatGenerator(tiny_model_dir, name="tiny", device="cpu")
    config = dict(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    generator.model = get_peft_model(generator.model, LoraConfig(**config), adapter_name="alpha")
    generator.model.add_adapter("beta", LoraConfig(**config))
    generator.model.eval()
    params = SamplingParams(max_tokens=10, temperature=0.0)
    adapters = [None, "alpha", "beta", "alpha"]

    def run(rows):
        engine = BatchEngine(generator)
        engine.admit(rows)
        while engine.rows:
            engine.step()
        return [row.generated for row in rows]

    def make(adapter, text):
        return Row(generator.encode_prompt(chat(text), 10), params, adapter)

    alone = [run([make(adapter, text)])[0] for adapter, text in zip(adapters, PROMPTS)]
    mixed = run([make(adapter, text) for adapter, text in zip(adapters, PROMPTS)])
    assert mixed == alone
    assert run([make("alpha", PROMPTS[0])]) != run([make(None, PROMPTS[0])])  # the adapter does something


# -- the scheduler -----------------------------------------------------------------------------

def test_concurrent_requests_with_their_own_settings_share_forward_batches(tiny_generator):
    params = [SamplingParams(max_tokens=4 + 3 * i, temperature=[0.0, 0.7, 1.0, 1.3][i % 4], top_p=0.8 + 0.02 * i,
                             repetition_penalty=1.0 + 0.05 * i, no_repeat_ngram_size=i % 3, seed=i)
              for i in range(8)]

    async def scenario():
        # The batch closes once all 8 are in (max_batch), not when a 300 ms window that a busy
        # machine could let pass between two submissions runs out.
        with running(tiny_generator, max_batch=8, batch_wait_ms=30_000) as scheduler:
            tickets = [ask(scheduler, text, p) for text, p in zip(PROMPTS, params)]
            return scheduler, await gather_results(tickets)

    scheduler, results = asyncio.run(scenario())
    for result, p in zip(results, params):
        assert 0 < result.completion_tokens <= p.max_tokens
        assert result.finish_reason == "stop" or result.completion_tokens == p.max_tokens
    assert scheduler.stats.completed == 8
    assert scheduler.stats.prefill_batches < 8
    assert scheduler.stats.largest_batch > 1
    assert scheduler.engine.forward_passes < sum(result.completion_tokens for result in results)


def test_a_seed_gives_the_same_text_whoever_shares_the_batch(tiny_generator):
    mine = SamplingParams(max_tokens=16, temperature=1.0, top_p=0.95, repetition_penalty=1.15, seed=1234)

    async def scenario(neighbours: int):
        # One batch by construction: it closes when the last neighbour is in, not after 200 ms.
        with running(tiny_generator, max_batch=1 + neighbours, batch_wait_ms=30_000) as scheduler:
            tickets = [ask(scheduler, "Scene: a detective corners her partner.", mine)]
            tickets += [ask(scheduler, PROMPTS[i], SamplingParams(max_tokens=8 + i, temperature=0.9, seed=i))
                        for i in range(neighbours)]
            results = await gather_results(tickets)
            assert scheduler.stats.prefill_batches == 1
            return results[0].text

    assert asyncio.run(scenario(0)) == asyncio.run(scenario(3))


def test_a_late_request_joins_the_running_batch(fresh_generator):
    late = SamplingParams(max_tokens=6, temperature=0.8, seed=9)
    expected = fresh_generator.generate(chat("COLE"), late).text
    # The first request's fourth forward pass (its third decode step) waits until the second
    # has been submitted, so the first is still running when it comes, however slow the
    # machine (this used to race a 10 ms-per-step first request with a 5 ms polling loop).
    passes, held, go_on = itertools.count(), threading.Event(), threading.Event()

    def hold_the_fourth_pass(module, args):
        if next(passes) == 3:
            held.set()
            go_on.wait(30)

    hook = fresh_generator.model.register_forward_pre_hook(hold_the_fourth_pass)

    async def scenario():
        with running(fresh_generator, batch_wait_ms=0) as scheduler:
            try:
                first = ask(scheduler, "MAYA", SamplingParams(max_tokens=40, temperature=0.8, seed=1))
                assert await asyncio.to_thread(held.wait, 30)
                second = ask(scheduler, "COLE", late)
            finally:
                go_on.set()
            results = await gather_results([first, second])
            return scheduler.stats, results

    try:
        stats, results = asyncio.run(scenario())
    finally:
        hook.remove()
    assert stats.prefill_batches == 2 and stats.largest_batch == 2
    assert results[1].text == expected


def test_a_full_queue_refuses_with_a_retry_hint(fresh_generator):
    faults = ModelFaults(fresh_generator.model)
    faults.hold()

    async def scenario():
        with running(fresh_generator, max_queue=1, max_batch=1, batch_wait_ms=0) as scheduler:
            running_one = ask(scheduler, "MAYA", SamplingParams(max_tokens=3))
            await asyncio.to_thread(faults.entered.wait, 10)
            waiting = ask(scheduler, "COLE", SamplingParams(max_tokens=3))
            with pytest.raises(QueueFullError) as refused:
                ask(scheduler, "MAYA", SamplingParams(max_tokens=3))
            assert refused.value.retry_after_s >= 1
            faults.release()
            await gather_results([running_one, waiting])
            return scheduler.stats

    stats = asyncio.run(scenario())
    assert (stats.rejected, stats.completed) == (1, 2)


def test_a_stalled_request_fails_and_leaves_the_batch(fresh_generator):
    # One forward pass outlasts the stall limit; with the stop tokens forbidden the tiny random
    # model cannot end the row first (a long budget alone proves nothing).
    faults = ModelFaults(fresh_generator.model)
    faults.never_stop(fresh_generator.stop_ids)

    async def scenario():
        with running(fresh_generator, stall_timeout_s=0.4) as scheduler:
            ticket = ask(scheduler, "MAYA", SamplingParams(max_tokens=200))
            await asyncio.sleep(0.1)
            faults.delay_s = 1.0
            with pytest.raises(RequestTimeoutError, match="produced nothing"):
                await ticket.wait()
            for _ in range(400):  # the row leaves at the next step boundary (each step is slow here)
                if not scheduler.engine.rows:
                    break
                await asyncio.sleep(0.02)
            return scheduler

    scheduler = asyncio.run(scenario())
    assert scheduler.engine.rows == []
    assert scheduler.stats.timed_out == 1


def test_a_request_whose_tokens_keep_coming_outlives_the_stall_limit(fresh_generator):
    faults = ModelFaults(fresh_generator.model)
    faults.delay_s = 0.05
    faults.never_stop(fresh_generator.stop_ids)

    async def scenario():
        with running(fresh_generator, stall_timeout_s=0.3) as scheduler:
            started = time.monotonic()
            result = await ask(scheduler, "MAYA", SamplingParams(max_tokens=30)).wait()
            return result, time.monotonic() - started

    result, took = asyncio.run(scenario())
    assert result.completion_tokens == 30 and result.finish_reason == "length"
    assert took > 0.3


def test_the_queue_timeout_counts_only_the_wait_for_a_place(fresh_generator):
    faults = ModelFaults(fresh_generator.model)
    faults.delay_s = 0.05
    faults.never_stop(fresh_generator.stop_ids)

    async def scenario():
        with running(fresh_generator, max_batch=1, batch_wait_ms=0, queue_timeout_s=0.3) as scheduler:
            first = ask(scheduler, "MAYA", SamplingParams(max_tokens=20))  # 1 s of work, admitted at once
            deadline = time.monotonic() + 5  # on a busy machine the worker may take a moment to admit it
            while scheduler.position(first) != 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            second = ask(scheduler, "COLE", SamplingParams(max_tokens=5))  # waits behind it
            assert scheduler.position(second) == 1
            outcomes = await asyncio.gather(first.wait(), second.wait(), return_exceptions=True)
            return outcomes, scheduler.position(second)

    (first, second), position = asyncio.run(scenario())
    assert first.completion_tokens == 20  # ran past the queue limit: it was not waiting
    assert isinstance(second, RequestTimeoutError) and "in the queue" in str(second)
    assert position == 0


def test_a_cancelled_request_leaves_the_batch_at_the_next_step(fresh_generator):
    faults = ModelFaults(fresh_generator.model)
    faults.delay_s = 0.02
    faults.never_stop(fresh_generator.stop_ids)  # the row must still be running when it is cancelled

    async def scenario():
        with running(fresh_generator) as scheduler:
            ticket = ask(scheduler, "MAYA", SamplingParams(max_tokens=200), stream=True)
            stream = ticket.stream()
            await anext(stream)
            steps = scheduler.stats.decode_steps
            ticket.cancel()
            for _ in range(100):
                if scheduler.stats.cancelled:
                    break
                await asyncio.sleep(0.01)
            assert scheduler.engine.rows == []
            assert scheduler.stats.decode_steps <= steps + 1
            return scheduler.stats

    assert asyncio.run(scenario()).cancelled == 1


def test_a_crash_in_one_batch_fails_only_its_requests(fresh_generator):
    faults = ModelFaults(fresh_generator.model)
    passes = itertools.count()

    def fail_the_third_pass(module, args):
        if next(passes) == 2:
            raise RuntimeError("CUDA error: device-side assert triggered")

    async def scenario():
        # The doomed pair shares one prefill by construction: the batch closes once both are in
        # (max_batch=2), not when a 200 ms window that a busy machine could miss runs out.
        with running(fresh_generator, max_batch=2, batch_wait_ms=30_000) as scheduler:
            faults.fail_next(1)
            doomed = [ask(scheduler, text, SamplingParams(max_tokens=4)) for text in PROMPTS[:2]]
            outcomes = await asyncio.gather(*(ticket.wait() for ticket in doomed), return_exceptions=True)
            assert all(isinstance(outcome, GenerationFailedError) for outcome in outcomes)
            prefill_crash = scheduler.stats
        # A failure in a decode step (not the prefill) also fails its rows only: the victim's
        # third forward pass (its second decode step) fails, wherever the test's own thread is
        # by then (this used to race a polling loop against 20 ms steps).
        with running(fresh_generator, batch_wait_ms=0) as scheduler:
            hook = fresh_generator.model.register_forward_pre_hook(fail_the_third_pass)
            try:
                victim = ask(scheduler, "MAYA", SamplingParams(max_tokens=50, temperature=0.0))
                with pytest.raises(GenerationFailedError):
                    await victim.wait()
            finally:
                hook.remove()
            after = await ask(scheduler, "COLE", SamplingParams(max_tokens=4)).wait()
            return prefill_crash, scheduler.stats, after

    prefill_crash, decode_crash, after = asyncio.run(scenario())
    assert after.completion_tokens > 0
    assert (prefill_crash.failed, prefill_crash.completed) == (2, 0)
    assert (decode_crash.failed, decode_crash.completed) == (1, 1)


def test_streamed_pieces_add_up_to_the_whole_text(tiny_generator):
    params = SamplingParams(max_tokens=30, temperature=1.0, seed=5)

    async def scenario():
        with running(tiny_generator) as scheduler:
            ticket = ask(scheduler, "COLE", params, stream=True)
            pieces = [piece async for piece in ticket.stream()]
            return pieces, ticket.result

    pieces, result = asyncio.run(scenario())
    assert len(pieces) > 1
    assert "".join(pieces) == result.text == tiny_generator.generate(chat("COLE"), params).text


def test_split_characters_are_held_back_until_complete(tiny_generator):
    from backend.detokenize import IncrementalText

    tokenizer = tiny_generator.tokenizer
    ids = tokenizer.encode("  Maya é 🎬 Cole  ", add_special_tokens=False)
    text = IncrementalText(tiny_generator.decode)
    pieces = [text.update(ids[:end]) for end in range(1, len(ids) + 1)] + [text.finish(ids)]
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == "Maya é 🎬 Cole"


# -- the real model ----------------------------------------------------------------------------

@pytest.mark.integration
def test_smollm2_greedy_matches_generate_and_a_batch_of_four_writes(generator_dir):
    generator = ChatGenerator(generator_dir, name="smollm2-135m-instruct", device="cpu")
    messages = chat("Write one line of dialogue for a detective in the rain.")
    greedy = SamplingParams(max_tokens=16, temperature=0.0)
    engine = BatchEngine(generator)
    row = Row(generator.encode_prompt(messages, 16), greedy)
    engine.admit([row])
    while engine.rows:
        engine.step()
    assert row.generated == hf_greedy(generator, messages, 16)

    situations = ["a detective corners her former partner in a rainy alley",
                  "two sisters argue about selling the family farm",
                  "a chef confesses to burning the wedding cake", "a pilot refuses to fly in a storm"]
    sampling = SamplingParams(max_tokens=40, temperature=0.7, top_p=0.9, repetition_penalty=1.15, seed=3)

    async def scenario():
        with running(generator, batch_wait_ms=200) as scheduler:
            tickets = [ask(scheduler, f"Write a short screenplay scene: {situation}.", sampling)
                       for situation in situations]
            return scheduler.stats, await gather_results(tickets)

    stats, results = asyncio.run(scenario())
    assert stats.prefill_batches == 1
    assert len({result.text for result in results}) == 4
    for result in results:
        assert len(result.text.split()) > 8
        assert sum(ch.isalpha() for ch in result.text) > len(result.text) / 2


def test_sampling_from_the_head_of_a_large_vocabulary_matches_a_full_sort(monkeypatch):
    import backend.sampling as sampling
    from backend.sampling import RowSampler, pick_tokens

    torch.manual_seed(0)
    logits = torch.randn(6, 5000) * 4  # peaked enough for the head to hold top_p of the mass

    def picks():
        rows = [RowSampler(SamplingParams(max_tokens=8, temperature=0.7, top_p=0.9, seed=seed), [1, 2])
                for seed in range(6)]
        seen = torch.zeros_like(logits, dtype=torch.bool)
        return [pick_tokens(logits.clone(), rows, seen) for _ in range(20)]

    head_only = picks()
    monkeypatch.setattr(sampling, "_CANDIDATES", 10**9)
    assert picks() == head_only

"""The chat client streams every completion: it gives up on silence, never on length, and
hears the backend's queue reports. Proven against the real backend on a tiny model (slowed,
held or stalled with ModelFaults) and against the emulators."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from backend.app import create_app
from backend.generator import ChatGenerator
from emulators.openai_backend import FakeBackend
from emulators.servers import serve_asgi
from llm.client import ChatClient, GenerationError
from tests.support.model_faults import ModelFaults

MESSAGES = [{"role": "user", "content": "MAYA"}]


@pytest.fixture
def faulty(tiny_model_dir):
    generator = ChatGenerator(tiny_model_dir, name="tiny", device="cpu")
    faults = ModelFaults(generator.model)
    yield generator, faults
    faults.remove()


def complete(url: str, *, silence_s: float = 30.0, **options):
    client = ChatClient(f"{url}/v1", silence_timeout_s=silence_s, retries=0)
    return asyncio.run(client.complete(model="tiny", messages=MESSAGES, **options))


def test_a_long_scene_whose_tokens_keep_coming_is_never_cut_off(faulty):
    # 40 tokens, 0.05 s each: the scene takes several times the client's silence limit.
    generator, faults = faulty
    faults.delay_s = 0.05
    faults.never_stop(generator.stop_ids)
    with serve_asgi(create_app(generator)) as url:
        started = time.monotonic()
        completion = complete(url, silence_s=0.5, max_tokens=40)
    assert time.monotonic() - started > 0.5
    assert completion.finish_reason == "length" and completion.completion_tokens == 40
    assert completion.text and completion.model == "tiny"


def test_the_text_is_the_same_streamed_or_not(faulty):
    generator, _ = faulty
    with serve_asgi(create_app(generator)) as url:
        streamed = complete(url, max_tokens=12, seed=5, temperature=1.0)
        whole = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": "tiny", "messages": MESSAGES, "max_tokens": 12, "seed": 5, "temperature": 1.0}).json()
    assert streamed.text == whole["choices"][0]["message"]["content"]
    assert streamed.completion_tokens == whole["usage"]["completion_tokens"]
    assert streamed.prompt_tokens == whole["usage"]["prompt_tokens"]


def test_a_backend_that_says_nothing_is_given_up_on_with_a_plain_message():
    with FakeBackend(held=True) as silent:
        try:
            with pytest.raises(GenerationError, match="sent nothing for 0.3 s"):
                asyncio.run(ChatClient(silent.url, silence_timeout_s=0.3, retries=0).complete(
                    model="fake-model", messages=MESSAGES))
        finally:
            silent.release()


def complete_behind_a_held_request(faulty, monkeypatch, on_queue, heard: list):
    """(first, waiting): a request the model is held on, and one that waits behind it with
    ``on_queue``; the model is let go once ``heard`` holds a report (or after 10 s)."""
    monkeypatch.setattr("backend.app.QUEUE_REPORT_S", 0.1)
    generator, faults = faulty
    faults.hold()
    app = create_app(generator, max_batch=1, batch_wait_ms=0)
    with serve_asgi(app) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(complete, url, max_tokens=3)
        assert faults.entered.wait(10)
        waiting = pool.submit(complete, url, max_tokens=3, on_queue=on_queue)
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            time.sleep(0.02)
        faults.release()
        return first.result(), waiting.result()


def test_a_request_waiting_in_the_queue_hears_where_it_stands(faulty, monkeypatch):
    heard: list[int] = []

    async def on_queue(position: int) -> None:
        heard.append(position)

    first, waiting = complete_behind_a_held_request(faulty, monkeypatch, on_queue, heard)
    assert first.finish_reason in ("stop", "length")
    assert waiting.finish_reason in ("stop", "length")
    assert heard and set(heard) == {1}


def test_a_listener_that_fails_costs_the_notice_not_the_scene(faulty, monkeypatch):
    calls: list[int] = []

    async def broken(position: int) -> None:
        calls.append(position)
        raise RuntimeError("the chat platform refused the post")

    _, waiting = complete_behind_a_held_request(faulty, monkeypatch, broken, calls)
    assert waiting.finish_reason in ("stop", "length")
    assert calls


def test_a_scene_that_stalls_mid_stream_fails_with_the_backends_reason(faulty):
    # The backend's stall limit ends a row whose forward pass hangs after the stream has begun:
    # the client reads the error event and says so, instead of returning half a scene.
    generator, faults = faulty
    faults.never_stop(generator.stop_ids)
    app = create_app(generator, stall_timeout_s=0.5)

    def hold_after_a_few_passes() -> None:
        deadline = time.monotonic() + 10
        while faults.passes < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        faults.hold()

    holder = threading.Thread(target=hold_after_a_few_passes)
    faults.delay_s = 0.02
    with serve_asgi(app) as url:
        holder.start()
        try:
            with pytest.raises(GenerationError, match="mid-scene: the model produced nothing"):
                complete(url, max_tokens=200, temperature=1.0)
        finally:
            holder.join()
            faults.release()


def test_vllm_streams_are_read_too():
    from emulators.vllm import FakeVllm

    with FakeVllm(base_name="base-model") as vllm:
        completion = asyncio.run(ChatClient(vllm.url, retries=0).complete(model="base-model", messages=MESSAGES))
    assert completion.text.startswith("INT.") or completion.text.startswith("EXT.")
    assert completion.finish_reason == "stop" and completion.completion_tokens > 0

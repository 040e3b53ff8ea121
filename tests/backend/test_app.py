"""The backend speaks the OpenAI API: proven with the official `openai` client over a
real socket, on a tiny model built from a config."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import openai
import pytest

from backend.app import create_app
from backend.generator import ChatGenerator
from backend.requests import MAX_TOKENS_CAP
from emulators.servers import serve_asgi
from tests.support.model_faults import ModelFaults


@pytest.fixture(scope="module")
def server(tiny_generator):
    with serve_asgi(create_app(tiny_generator)) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_server(tiny_generator):
    with serve_asgi(create_app(tiny_generator, api_key="s3cret-key-for-tests")) as url:
        yield url


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_models_lists_the_base_model(server):
    assert [model.id for model in client(server).models.list()] == ["tiny"]


def test_chat_completion_with_the_official_client(server):
    completion = client(server).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Scene: a detective corners her partner."}],
        max_tokens=12, temperature=0.7, extra_body={"repetition_penalty": 1.15, "seed": 1})
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert 0 < completion.usage.completion_tokens <= 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_same_seed_gives_the_same_scene(server):
    ask = dict(model="tiny", messages=[{"role": "user", "content": "MAYA"}], max_tokens=10,
               extra_body={"seed": 7})
    first = client(server).chat.completions.create(**ask).choices[0].message.content
    second = client(server).chat.completions.create(**ask).choices[0].message.content
    assert first == second


def test_streaming_is_read_by_the_official_client(server):
    ask = dict(model="tiny", messages=[{"role": "user", "content": "COLE"}], max_tokens=8, extra_body={"seed": 3})
    whole = client(server).chat.completions.create(**ask).choices[0].message.content
    chunks = list(client(server).chat.completions.create(**ask, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == whole


def test_streaming_sends_text_token_by_token(server):
    ask = dict(model="tiny", messages=[{"role": "user", "content": "MAYA"}], max_tokens=24, temperature=1.0,
               extra_body={"seed": 21})
    whole = client(server).chat.completions.create(**ask).choices[0].message.content
    pieces = [chunk.choices[0].delta.content for chunk in client(server).chat.completions.create(**ask, stream=True)
              if chunk.choices[0].delta.content]
    assert len(pieces) > 3
    assert "".join(pieces) == whole


def test_unknown_model_is_404_naming_the_available_ones(server):
    with pytest.raises(openai.NotFoundError) as error:
        client(server).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert "tiny" in str(error.value)


@pytest.mark.parametrize("payload, fragment", [
    ({"model": "tiny", "messages": []}, "messages"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "   "}]}, "empty"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS_CAP + 1}, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}, "role"),
])
def test_bad_requests_get_400_with_an_openai_error_body(server, payload, fragment):
    response = httpx.post(f"{server}/v1/chat/completions", json=payload)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_invalid_json_is_400(server):
    response = httpx.post(f"{server}/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request body is not valid JSON."


def test_prompt_beyond_the_context_window_is_400(server):
    long_prompt = "rain " * 400  # the tiny model's window is 256 tokens
    with pytest.raises(openai.BadRequestError) as error:
        client(server).chat.completions.create(model="tiny", messages=[{"role": "user", "content": long_prompt}],
                                               max_tokens=16)
    assert "context window" in str(error.value)


def test_api_key_is_required_when_set(keyed_server):
    with pytest.raises(openai.AuthenticationError):
        client(keyed_server, key="wrong").models.list()
    assert [model.id for model in client(keyed_server, key="s3cret-key-for-tests").models.list()] == ["tiny"]
    assert httpx.get(f"{keyed_server}/health").status_code == 200  # probes need no key


def test_metrics_count_requests_and_tokens(server):
    client(server).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    metrics = httpx.get(f"{server}/metrics").text
    assert 'writersroom_backend_requests_total{model="tiny",outcome="ok"}' in metrics
    assert "writersroom_backend_completion_tokens_total" in metrics
    assert "writersroom_backend_queue_depth 0.0" in metrics
    assert 'writersroom_backend_batch_size_bucket{le="1.0"}' in metrics
    assert "writersroom_backend_tokens_per_second" in metrics


def test_readiness_holds_while_serving_and_fails_once_shutting_down(tiny_model_dir):
    app = create_app(ChatGenerator(tiny_model_dir, name="tiny", device="cpu"))
    with serve_asgi(app) as url:
        ready = httpx.get(f"{url}/readyz", headers={"Authorization": "Bearer wrong"})  # probes need no key
        assert ready.status_code == 200 and ready.json()["models"] == ["tiny"] and ready.json()["queue_depth"] == 0
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        app.state.scheduler.close()
        stopping = httpx.get(f"{url}/readyz")
        assert stopping.status_code == 503 and stopping.json()["problems"] == ["shutting down"]


def test_a_crash_in_one_request_fails_only_that_request(tiny_model_dir):
    generator = ChatGenerator(tiny_model_dir, name="tiny", device="cpu")
    ModelFaults(generator.model).fail_next(1)
    with serve_asgi(create_app(generator)) as url:
        with pytest.raises(openai.InternalServerError):
            client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "a"}], max_tokens=4)
        ok = client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "a"}], max_tokens=4)
        assert ok.choices[0].message.role == "assistant"


@pytest.fixture
def faulty(tiny_model_dir):
    """A generator of its own whose forward passes a test can slow, hold or break."""
    generator = ChatGenerator(tiny_model_dir, name="tiny", device="cpu")
    return generator, ModelFaults(generator.model)


def post(url: str, **options) -> httpx.Response:
    payload = {"model": "tiny", "messages": [{"role": "user", "content": "MAYA"}], "max_tokens": 3, **options}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, timeout=30)


def test_a_full_queue_is_429_with_retry_after(faulty):
    generator, faults = faulty
    faults.hold()
    app = create_app(generator, max_queue=1, max_batch=1, batch_wait_ms=0)
    with serve_asgi(app) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, url)
        assert faults.entered.wait(10)
        second = pool.submit(post, url)
        deadline = time.monotonic() + 10
        while app.state.scheduler.queue_depth < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = post(url)
        faults.release()
        assert first.result().status_code == second.result().status_code == 200
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full"


def test_a_request_whose_model_stalls_is_504(faulty):
    generator, faults = faulty
    faults.hold()  # a worker stuck inside one forward pass: the HTTP side still answers in time
    app = create_app(generator, stall_timeout_s=0.5)
    try:
        with serve_asgi(app) as url:
            # The forward pass is held until `finally`, so a 504 now can only come from the timeout
            # (no wall-clock bound: a busy machine may take longer than 0.5 s to say so).
            response = post(url)
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "timeout"
            assert "produced nothing for this request for 0.5 s" in response.json()["error"]["message"]
    finally:
        faults.release()
    deadline = time.monotonic() + 10
    while app.state.scheduler.engine.rows and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.state.scheduler.engine.rows == []  # and the row no longer uses the model


def test_a_request_whose_tokens_keep_coming_is_never_cut_off(faulty):
    # 40 passes of 0.05 s: the whole request lasts several stall limits, no pass comes near one.
    generator, faults = faulty
    faults.delay_s = 0.05
    faults.never_stop(generator.stop_ids)
    app = create_app(generator, stall_timeout_s=0.5)
    with serve_asgi(app) as url:
        started = time.monotonic()
        response = post(url, max_tokens=40)
        took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 40
    assert took > 0.5  # it did outlast the limit (else the test proves nothing)


def stream_lines(url: str, **options) -> list[str]:
    payload = {"model": "tiny", "messages": [{"role": "user", "content": "MAYA"}], "max_tokens": 3, "stream": True,
               **options}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=30) as response:
        assert response.status_code == 200
        return [line for line in response.iter_lines() if line]


@contextmanager
def one_request_held(faulty, monkeypatch):
    """(app, url, pool) of a backend with room for one row, whose model is held on a request
    already running; the model is let go, and that request checked, on leaving."""
    monkeypatch.setattr("backend.app.QUEUE_REPORT_S", 0.1)
    generator, faults = faulty
    faults.hold()
    app = create_app(generator, max_batch=1, batch_wait_ms=0)
    try:
        with serve_asgi(app) as url, ThreadPoolExecutor(3) as pool:
            running = pool.submit(post, url)
            assert faults.entered.wait(10)
            yield app, url, pool
            faults.release()
            assert running.result().status_code == 200
    finally:
        faults.release()


def wait_for_queue(app, depth: int) -> None:
    deadline = time.monotonic() + 10
    while app.state.scheduler.queue_depth < depth and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.state.scheduler.queue_depth >= depth


def test_a_streamed_request_waiting_in_the_queue_hears_its_position(faulty, monkeypatch):
    with one_request_held(faulty, monkeypatch) as (app, url, pool):
        second = pool.submit(stream_lines, url)
        wait_for_queue(app, 1)
        third = pool.submit(stream_lines, url)
        wait_for_queue(app, 2)
        time.sleep(0.3)  # a few report periods while both wait
    second_lines, third_lines = second.result(), third.result()
    assert ": queue position 1" in second_lines and ": queue position 2" in third_lines
    assert ": queue position 2" not in second_lines
    # and the stream after the reports is an ordinary one
    assert third_lines[-1] == "data: [DONE]"
    assert third_lines.index(": queue position 2") < min(i for i, line in enumerate(third_lines)
                                                          if line.startswith("data:"))


def test_queue_reports_do_not_disturb_the_official_client(faulty, monkeypatch):
    with one_request_held(faulty, monkeypatch) as (app, url, pool):

        def streamed() -> list:
            return list(client(url).chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "COLE"}], max_tokens=5, stream=True,
                stream_options={"include_usage": True}))

        waiting = pool.submit(streamed)
        wait_for_queue(app, 1)
        time.sleep(0.3)  # a few report periods while it waits
    chunks = waiting.result()
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and 0 < chunks[-1].usage.completion_tokens <= 5


def test_a_request_that_waits_past_the_queue_timeout_is_504(faulty):
    generator, faults = faulty
    faults.hold()
    app = create_app(generator, max_batch=1, batch_wait_ms=0, queue_timeout_s=0.3)
    try:
        with serve_asgi(app) as url, ThreadPoolExecutor(1) as pool:
            running = pool.submit(post, url)
            assert faults.entered.wait(10)
            waited = post(url)
            assert waited.status_code == 504
            assert "in the queue" in waited.json()["error"]["message"]
            faults.release()
            assert running.result().status_code == 200  # the one that was running finishes
    finally:
        faults.release()


def wait_for_cancel(scheduler, *, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while scheduler.stats.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_client_that_hangs_up_cancels_its_row(faulty):
    generator, faults = faulty
    faults.delay_s = 0.05
    faults.never_stop(generator.stop_ids)  # 200 tokens at 0.05 s each outlast the client's 0.6 s
    app = create_app(generator)
    with serve_asgi(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", timeout=0.6,
                       json={"model": "tiny", "messages": [{"role": "user", "content": "MAYA"}], "max_tokens": 200})
        wait_for_cancel(app.state.scheduler)
        assert app.state.scheduler.stats.cancelled == 1
        assert app.state.scheduler.engine.rows == []


def test_closing_a_stream_cancels_its_row(faulty):
    generator, faults = faulty
    faults.delay_s = 0.05
    faults.never_stop(generator.stop_ids)
    app = create_app(generator)
    with serve_asgi(app) as url:
        stream = client(url).chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "MAYA"}], max_tokens=200, temperature=1.0,
            stream=True)
        next(iter(stream))
        stream.close()
        wait_for_cancel(app.state.scheduler)
        assert app.state.scheduler.stats.cancelled == 1
        assert app.state.scheduler.engine.rows == []
        assert 'outcome="cancelled"' in httpx.get(f"{url}/metrics").text


@pytest.mark.parametrize("value", ["false", "true"])
def test_the_jump_forward_setting_reaches_the_engine(tiny_model_dir, monkeypatch, value):
    from backend.serve import build_app
    from config.settings import load_settings

    monkeypatch.setenv("WRITERSROOM_BACKEND_JUMP_FORWARD", value)
    app = build_app(load_settings(model={"generator": str(tiny_model_dir)}))
    try:
        assert app.state.scheduler.engine.jump_forward is (value == "true")
    finally:
        app.state.scheduler.close()
        app.state.generator.adapters.stop_watcher()

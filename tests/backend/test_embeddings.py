"""POST /v1/embeddings speaks the OpenAI API: proven with the official `openai` client over
a real socket, on the tiny embedder the retrieval tests use."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest

from backend.app import create_app
from backend.embeddings import MAX_INPUT_CHARS, MAX_INPUTS, create_embeddings_app
from emulators.servers import serve_asgi

KEY = "s3cret-key-for-tests"
TEXTS = ["A detective corners her former partner in a rainy alley.", "INT. KITCHEN - NIGHT", "Two thieves argue."]


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory):
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="module")
def served(embedder_dir):
    from retrieval.embed import Embedder

    return Embedder(embedder_dir)


@pytest.fixture(scope="module")
def local(embedder_dir):
    """A second load of the same model, as the process that built the index has it."""
    from retrieval.embed import Embedder

    return Embedder(embedder_dir)


@pytest.fixture(scope="module")
def server(tiny_generator, served):
    with serve_asgi(create_app(tiny_generator, api_key=KEY, embedder=served)) as url:
        yield url


@pytest.fixture(scope="module")
def embeddings_only(served):
    with serve_asgi(create_embeddings_app(served, api_key=KEY)) as url:
        yield url


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def vectors(response) -> np.ndarray:
    return np.array([row.embedding for row in response.data], dtype=np.float32)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_vectors_are_the_local_embedders(server, served, local, encoding_format):
    extra = {"encoding_format": encoding_format} if encoding_format == "float" else {}  # base64: the client default
    response = client(server).embeddings.create(model=served.model_id, input=TEXTS, **extra)
    assert response.model == local.model_id  # the fingerprint the index keys on, same as a local load
    assert [row.index for row in response.data] == [0, 1, 2]
    got = vectors(response)
    assert got.shape == (3, local.dim)
    np.testing.assert_allclose(got, local.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert 0 < response.usage.prompt_tokens == response.usage.total_tokens


def test_a_single_string_and_the_readable_name(server, served, local):
    readable = served.model_id.partition(":")[0]  # what model.embedder names for the provisioned model
    response = client(server).embeddings.create(model=readable, input=TEXTS[0])
    assert response.model == served.model_id
    np.testing.assert_allclose(vectors(response)[0], local.encode(TEXTS[:1])[0], atol=1e-5)


def test_the_embedder_is_not_listed_next_to_the_generator(server):
    # bot.core.services.base_model takes the first listed name as its generation model.
    assert [model.id for model in client(server).models.list()] == ["tiny"]


def test_unknown_model_is_404(server, served):
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).embeddings.create(model="text-embedding-3-small", input="hello")
    assert caught.value.code == "model_not_found"
    assert served.model_id in caught.value.message


@pytest.mark.parametrize("payload,fragment", [
    ({"input": ""}, "text is empty"),
    ({"input": []}, "at least one text"),
    ({"input": ["fine", "   "]}, "text[1] is empty"),
    ({"input": [[101, 2023]]}, "token arrays are not supported"),
    ({"input": ["x"] * (MAX_INPUTS + 1)}, f"at most {MAX_INPUTS}"),
    ({"input": "word " * (MAX_INPUT_CHARS // 5 + 1)}, f"at most {MAX_INPUT_CHARS:,}"),
    ({"input": "x", "dimensions": 7}, "dimensions"),
    ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
])
def test_bad_input_is_400_with_a_message(server, served, payload, fragment):
    response = httpx.post(f"{server}/v1/embeddings", json={"model": served.model_id, **payload},
                          headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"


def test_bad_input_through_the_official_client(server, served):
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).embeddings.create(model=served.model_id, input=[""])
    assert "empty" in caught.value.message


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_the_bearer_key_is_enforced(server, embeddings_only, served, key):
    for url in (server, embeddings_only):
        response = httpx.post(f"{url}/v1/embeddings", json={"model": served.model_id, "input": "x"},
                              headers={"Authorization": f"Bearer {key}"} if key else {})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_metrics_count_embedding_requests(server, served):
    before = _metric(server, 'writersroom_backend_embedding_inputs_total')
    client(server).embeddings.create(model=served.model_id, input=TEXTS)
    text = httpx.get(f"{server}/metrics").text
    assert _metric(server, 'writersroom_backend_embedding_inputs_total') == before + 3
    assert 'writersroom_backend_embedding_requests_total{outcome="ok"}' in text
    assert "writersroom_backend_embedding_latency_seconds_count" in text
    assert "writersroom_backend_requests" in text  # the chat metrics share the registry


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_embeddings_only_backend(embeddings_only, served, local):
    response = client(embeddings_only).embeddings.create(model=served.model_id, input=TEXTS)
    assert response.model == served.model_id
    np.testing.assert_allclose(vectors(response), local.encode(TEXTS), atol=1e-5)
    assert [model.id for model in client(embeddings_only).models.list()] == [served.model_id]
    with pytest.raises(openai.NotFoundError) as caught:
        client(embeddings_only).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert "embeddings only" in caught.value.message
    assert httpx.get(f"{embeddings_only}/health").json()["status"] == "ok"
    assert "writersroom_backend_embedding_requests_total" in httpx.get(f"{embeddings_only}/metrics").text


class _Slow:
    """A stand-in embedder whose encode waits until `finish` is set (set from the start unless
    held) and counts how many run at once."""

    model_id, dim = "slow:0", 4

    def __init__(self, *, held: bool = False) -> None:
        self.running, self.most = 0, 0
        self.entered, self.finish = threading.Event(), threading.Event()  # an encode began; encodes may end
        if not held:
            self.finish.set()
        self._lock = threading.Lock()

    def encode(self, texts, *, progress=False):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.set()
        self.finish.wait(60)
        with self._lock:
            self.running -= 1
        return np.tile(np.array([1, 0, 0, 0], np.float32), (len(texts), 1))


def test_encoding_leaves_the_server_responsive_and_runs_one_at_a_time():
    # Encodes held until the health check is answered: it cannot have waited behind them,
    # whatever the machine's speed (this used to time the check against encodes sleeping 1 s).
    slow = _Slow(held=True)
    with serve_asgi(create_embeddings_app(slow)) as url, ThreadPoolExecutor(3) as pool:
        try:
            pending = [pool.submit(client(url).embeddings.create, model="slow:0", input="x") for _ in range(3)]
            assert slow.entered.wait(30)
            assert httpx.get(f"{url}/health", timeout=30).status_code == 200
            assert slow.running == 1  # answered while an encode was still running
        finally:
            slow.finish.set()
        assert all(future.result().model == "slow:0" for future in pending)
    assert slow.most == 1


class _Broken(_Slow):
    def encode(self, texts, *, progress=False):
        raise RuntimeError("CUDA out of memory")


def test_a_failed_encode_is_500_for_that_request_only():
    with serve_asgi(create_embeddings_app(_Broken())) as url:
        response = httpx.post(f"{url}/v1/embeddings", json={"model": "slow:0", "input": "x"})
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "server_error"
        assert httpx.get(f"{url}/health").status_code == 200


def test_serve_builds_an_embeddings_only_backend_from_settings(embedder_dir, local):
    from backend.serve import build_app
    from config.settings import load_settings

    settings = load_settings(model={"embedder": str(embedder_dir)})
    with serve_asgi(build_app(settings, embeddings_only=True)) as url:
        response = client(url).embeddings.create(model=str(embedder_dir), input=TEXTS)
    assert response.model == local.model_id
    np.testing.assert_allclose(vectors(response), local.encode(TEXTS), atol=1e-5)


def test_cli_passes_embeddings_only_through(monkeypatch):
    from typer.testing import CliRunner

    import backend.serve
    from bot.cli.main import app

    calls = []
    monkeypatch.setattr(backend.serve, "serve", lambda settings, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(app, ["backend", "serve", "--embeddings-only", "--port", "9999"])
    assert result.exit_code == 0, result.output
    assert calls == [{"host": None, "port": 9999, "embeddings_only": True}]

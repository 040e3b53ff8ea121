"""RemoteEmbedder: /similar through the backend's /v1/embeddings finds what the local
embedder finds, fails in words a writer can read, and keeps torch out of the bot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from backend.embeddings import create_embeddings_app
from emulators.servers import free_port, serve_asgi
from retrieval.bundled import bundled_corpus_dir
from retrieval.index import EmbedderMismatchError
from retrieval.ingest import ingest_paths
from retrieval.remote_embed import EmbedderUnavailableError, RemoteEmbedder
from retrieval.search import SceneSearcher

KEY = "s3cret-key-for-tests"
QUERIES = [
    "a preacher sermon in a church on fire",
    "INT. SUPERNACLE--DAY",
    "two lovers argue about money at dinner",
    "the detective finds the body",
]


@pytest.fixture(scope="module")
def embeddings_url(tiny_embedder):
    with serve_asgi(create_embeddings_app(tiny_embedder, api_key=KEY)) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_embedder):
    """A few bundled screenplays indexed with the local tiny embedder."""
    lib = tmp_path_factory.mktemp("lib")
    shutil.copytree(bundled_corpus_dir() / "screenplays", lib / "screenplays")
    index = tmp_path_factory.mktemp("idx") / "index"
    report = ingest_paths([lib], index_dir=index, embedder=tiny_embedder, progress=False)
    assert report.errors == [] and report.scripts_added > 5
    return index


def remote(url: str, tiny_embedder, **kwargs) -> RemoteEmbedder:
    return RemoteEmbedder(url, model=str(tiny_embedder.model_dir), api_key=KEY, **kwargs)


def test_same_identity_and_vectors_as_the_local_embedder(embeddings_url, tiny_embedder):
    embedder = remote(embeddings_url, tiny_embedder, batch_size=2)  # five texts: three requests
    assert (embedder.model_id, embedder.dim) == (tiny_embedder.model_id, tiny_embedder.dim)
    texts = QUERIES + ["HILDA waits at the castle gate."]
    got = embedder.encode(texts)
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"] and got.shape == (5, tiny_embedder.dim)
    np.testing.assert_allclose(got, tiny_embedder.encode(texts), atol=1e-6)
    assert embedder.encode([]).shape == (0, tiny_embedder.dim)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_searcher_finds_the_same_scenes(embeddings_url, index_dir, tiny_embedder, mode):
    local = SceneSearcher(index_dir, tiny_embedder)
    through_backend = SceneSearcher(index_dir, remote(embeddings_url, tiny_embedder))
    for query in QUERIES:
        expected = [hit.scene_id for hit in local.search(query, k=5, mode=mode)]
        assert [hit.scene_id for hit in through_backend.search(query, k=5, mode=mode)] == expected


def test_embedder_down_is_a_clear_error(index_dir, tiny_embedder):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(EmbedderUnavailableError, match="not reachable.*serve_embeddings"):
        SceneSearcher(index_dir, remote(url, tiny_embedder))


def test_refusals_carry_the_servers_message(embeddings_url, tiny_embedder):
    with pytest.raises(EmbedderUnavailableError, match=r"\(401\): Invalid or missing API key"):
        RemoteEmbedder(embeddings_url, model=str(tiny_embedder.model_dir), api_key="wrong").encode(["x"])
    with pytest.raises(EmbedderUnavailableError, match=r"\(404\): The model 'other-model' does not exist"):
        RemoteEmbedder(embeddings_url, model="other-model", api_key=KEY).encode(["x"])


class _Renamed:
    """The tiny embedder under another fingerprint: what a backend serving another model looks like."""

    def __init__(self, inner, model_id: str) -> None:
        self.inner, self.model_id, self.dim = inner, model_id, inner.dim

    def encode(self, texts, *, progress=False):
        return self.inner.encode(texts)


def test_an_index_of_another_model_is_refused(index_dir, tiny_embedder):
    with serve_asgi(create_embeddings_app(_Renamed(tiny_embedder, "other-model:123"))) as url:
        with pytest.raises(EmbedderMismatchError):
            SceneSearcher(index_dir, RemoteEmbedder(f"{url}/v1", model="other-model"))


def test_a_model_swapped_under_a_running_bot_is_refused(tiny_embedder):
    served = _Renamed(tiny_embedder, tiny_embedder.model_id)
    with serve_asgi(create_embeddings_app(served)) as url:
        embedder = RemoteEmbedder(f"{url}/v1", model=tiny_embedder.model_id)
        embedder.encode(["x"])
        served.model_id = "other-model:123"
        with pytest.raises(EmbedderUnavailableError, match="now serves 'other-model:123'.*Restart the bot"):
            embedder.encode(["x"])


# The bot side, in a fresh interpreter: settings -> bot.cli.runtime services -> /similar through
# bot.core, with the embedder behind retrieval.embedder_url. The server stays in this process.
CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from bot.core.commands import dispatch
    from bot.core.replies import Invocation
    from bot.cli.runtime import build_services
    from config.settings import load_settings

    services = build_services(load_settings(), model_name="unused")
    invocation = Invocation(platform="local", room_id="local:test", user_id="writer", text=sys.argv[1])
    reply = asyncio.run(dispatch(services, "similar", invocation))
    heavy = sorted(name for name in ("torch", "transformers", "sentence_transformers") if name in sys.modules)
    print(json.dumps({"error": reply.is_error, "sections": [s.body for s in reply.sections],
                      "scripts": [c.script_id for c in reply.citations], "heavy": heavy}))
""")


def run_bot_similar(tmp_path, index_dir, query: str, embedder_url: str, model: str) -> dict:
    home = tmp_path / "bot-home"
    shutil.copytree(index_dir, home / "index")  # the bot's default index_dir
    env = {**os.environ, "WRITERSROOM_HOME": str(home), "WRITERSROOM_RETRIEVAL_EMBEDDER_URL": embedder_url,
           "WRITERSROOM_MODEL_EMBEDDER": model, "WRITERSROOM_BACKEND_API_KEY": KEY}
    done = subprocess.run([sys.executable, "-c", CHILD, query], env=env, capture_output=True, text=True,
                          timeout=120, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bot_similar_with_embedder_url_never_imports_torch(tmp_path, embeddings_url, index_dir, tiny_embedder):
    query = QUERIES[0]
    expected = [hit.script_id for hit in SceneSearcher(index_dir, tiny_embedder).search(query, k=5)]
    result = run_bot_similar(tmp_path, index_dir, query, embeddings_url, str(tiny_embedder.model_dir))
    assert result["heavy"] == []
    assert not result["error"] and result["scripts"] == expected


def test_bot_similar_with_the_embedder_down_replies_clearly(tmp_path, index_dir, tiny_embedder):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_bot_similar(tmp_path, index_dir, QUERIES[0], url, str(tiny_embedder.model_dir))
    assert result["error"] and "not reachable" in " ".join(result["sections"])


def test_runtime_picks_the_remote_embedder_only_when_embedder_url_is_set(monkeypatch, embeddings_url, tiny_embedder):
    from bot.cli.runtime import make_embedder
    from config.settings import load_settings

    monkeypatch.setenv("WRITERSROOM_BACKEND_API_KEY", KEY)  # the backend's key serves both APIs
    model = {"embedder": str(tiny_embedder.model_dir)}
    embedder = make_embedder(load_settings(retrieval={"embedder_url": embeddings_url, "batch_size": 8}, model=model))
    assert isinstance(embedder, RemoteEmbedder) and embedder.batch_size == 8
    assert embedder.model_id == tiny_embedder.model_id  # the key was sent: the server answered
    local = make_embedder(load_settings(model=model))
    assert not isinstance(local, RemoteEmbedder) and local.model_id == tiny_embedder.model_id


def test_the_bots_request_id_reaches_the_embedding_services_log(embeddings_url, tiny_embedder):
    import io
    import logging

    from observability.logs import configure_logging
    from observability.request_id import request_id_headers, request_scope

    stream = io.StringIO()
    handler = configure_logging("INFO", "json", stream=stream)
    try:
        with request_scope("similar-rid-7"):
            remote(embeddings_url, tiny_embedder, request_headers=request_id_headers).encode(["a church on fire"])
    finally:
        logging.getLogger().removeHandler(handler)
    served = [json.loads(line) for line in stream.getvalue().splitlines()]
    served = [line for line in served if line["logger"] == "backend.embeddings"]
    assert served and {line["request_id"] for line in served} == {"similar-rid-7"}

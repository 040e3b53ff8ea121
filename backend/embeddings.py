"""POST /v1/embeddings: the OpenAI embeddings API over a retrieval.embed.Embedder.

    writersroom backend serve                    # with backend.serve_embeddings = true
    writersroom backend serve --embeddings-only  # when vLLM serves generation

Why the backend embeds: the slim bot image has no torch, yet /similar needs query
vectors; a bot with retrieval.embedder_url set asks here (retrieval.remote_embed).

The response's `model` is the embedder's fingerprint (retrieval.embed.model_fingerprint),
not the name asked for: the FAISS index keys on it, so a remote embedder reports the
same model_id and dim as a local Embedder of the same model, and an index built with
another model is refused rather than searched with meaningless vectors.

`add_embeddings_route` serves it next to chat completions (backend.app.create_app with
embedder=...); `create_embeddings_app` serves it alone. Next to a generator the embedder
is not listed in /v1/models: the bot takes the first listed name as its generation model
(bot.core.services.base_model), and an embedding model there could only mislead it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, ValidationError

from backend.http_api import (
    RequestIdMiddleware,
    RequireKey,
    add_metrics_route,
    error_response,
)
from backend.schemas import ModelCard, ModelList

log = logging.getLogger(__name__)

MAX_INPUTS = 256  # per request: bounds the time one request holds the model
# /similar accepts 20,000 characters (bot.core.similar); the model reads only its first
# ~256 word pieces, so more than this is a mistake, and tokenising it costs CPU for nothing.
MAX_INPUT_CHARS = 50_000
# One encode at a time: torch already spreads one batch over every core, and two
# batches side by side only thrash the caches (and the generator's forward passes).
ENCODE_SLOTS = 1


class EmbeddingRequest(BaseModel):
    # "user" and other OpenAI fields are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"  # the official client asks for base64 by default
    dimensions: int | None = None


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("writersroom_backend_embedding_requests", "Embedding requests", ["outcome"],
                                registry=registry)
        self.inputs = Counter("writersroom_backend_embedding_inputs", "Texts embedded", registry=registry)
        self.latency = Histogram("writersroom_backend_embedding_latency_seconds", "Time per embedding request",
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry)


def served_names(embedder) -> set[str]:
    """Names a client may ask for: the fingerprint, and the readable name it starts with
    (the model.embedder setting for the provisioned model, else the model directory's name)."""
    names = {embedder.model_id, embedder.model_id.partition(":")[0]}
    model_dir = getattr(embedder, "model_dir", None)
    if model_dir is not None:
        names |= {str(model_dir), Path(model_dir).name}
    return names


def _knows(names: set[str], requested: str) -> bool:
    # The bot sends its model.embedder setting; where that is a directory, its path on the
    # bot's machine need not be the backend's, so the directory name is enough.
    return requested in names or ("/" in requested and Path(requested).name in names)


def add_embeddings_route(app: FastAPI, embedder, *, registry: CollectorRegistry) -> None:
    """Register POST /v1/embeddings on ``app``, its metrics on ``registry``."""
    metrics = _Metrics(registry)
    names = served_names(embedder)
    slots = asyncio.Semaphore(ENCODE_SLOTS)
    app.state.embedder = embedder

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body, problem = _parse(await request.body(), embedder.dim)
        if problem is not None:
            metrics.requests.labels("invalid").inc()
            return problem
        if not _knows(names, body.model):
            metrics.requests.labels("unknown_model").inc()
            return error_response(404, f"The model '{body.model}' does not exist. Available: {embedder.model_id}.",
                          param="model", code="model_not_found")
        texts = [body.input] if isinstance(body.input, str) else body.input
        try:
            async with slots:
                # A worker thread: an encode takes tens of milliseconds to seconds, during which
                # the event loop keeps serving chat completions, health and metrics.
                vectors, tokens = await asyncio.to_thread(_encode, embedder, texts)
        except Exception as exc:  # noqa: BLE001 - a failed encode fails this request only
            log.exception("embedding %d texts failed", len(texts))
            metrics.requests.labels("error").inc()
            return error_response(500, f"Embedding failed: {type(exc).__name__}", type_="server_error")
        seconds = time.perf_counter() - started
        metrics.requests.labels("ok").inc()
        metrics.inputs.inc(len(texts))
        metrics.latency.observe(seconds)
        log.info("embedded %d text(s) in %.3f s", len(texts), seconds)
        return JSONResponse(_response(vectors, tokens, model_id=embedder.model_id, fmt=body.encoding_format))


def create_embeddings_app(embedder, *, api_key: str | None = None) -> FastAPI:
    """A backend that serves only embeddings (where vLLM serves generation): /v1/embeddings,
    /v1/models, /health and /metrics. Here the embedder is listed in /v1/models, as vLLM lists
    its embedding model, and chat completions answer 404 saying what this server is."""
    registry = CollectorRegistry()
    app = FastAPI(title="writersroom embeddings backend", version="0.2.0")
    if api_key:
        app.add_middleware(RequireKey, api_key=api_key)
    app.add_middleware(RequestIdMiddleware)
    add_embeddings_route(app, embedder, registry=registry)

    @app.get("/health")
    @app.get("/healthz")
    @app.get("/readyz")  # ready as soon as it exists: the embedder is loaded before the app is built
    async def health() -> dict:
        return {"status": "ok", "embedder": embedder.model_id}

    add_metrics_route(app, registry)

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=embedder.model_id)])

    @app.post("/v1/chat/completions")
    async def no_generation() -> JSONResponse:
        return error_response(404, "This backend serves embeddings only (started with --embeddings-only); point "
                           "backend_url at a generation backend.", param="model", code="model_not_found")

    return app


def _parse(raw: bytes, dim: int) -> tuple[EmbeddingRequest | None, JSONResponse | None]:
    """(request, None) or (None, a 400 saying what is wrong with it)."""
    try:
        body = EmbeddingRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return None, error_response(400, "Request body is not valid JSON.")
        param = str(first["loc"][0]) if first["loc"] else None
        return None, error_response(400, f"{param or 'request'}: {first['msg']}", param=param)
    problem = _input_problem(body.input)
    if problem:
        return None, error_response(400, f"input: {problem}", param="input")
    if body.dimensions is not None and body.dimensions != dim:
        return None, error_response(400, f"dimensions: this embedder returns {dim}-dimensional vectors only.",
                            param="dimensions")
    return body, None


def _input_problem(value: str | list) -> str | None:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        return "give at least one text."
    if len(texts) > MAX_INPUTS:
        return f"{len(texts)} texts; at most {MAX_INPUTS} per request."
    for i, text in enumerate(texts):
        where = "" if isinstance(value, str) else f"[{i}]"
        if not isinstance(text, str):
            return f"item{where} is not text (token arrays are not supported)."
        if not text.strip():
            return f"text{where} is empty."
        if len(text) > MAX_INPUT_CHARS:
            return f"text{where} is {len(text):,} characters; at most {MAX_INPUT_CHARS:,}."
    return None


def _encode(embedder, texts: list[str]) -> tuple[np.ndarray, int]:
    return embedder.encode(texts), _count_tokens(embedder, texts)


def _count_tokens(embedder, texts: list[str]) -> int:
    """Word pieces the model read, for the usage field; an embedder without a tokenizer
    count (a test double) is counted in words."""
    count = getattr(embedder, "count_tokens", None)
    return count(texts) if count is not None else sum(len(text.split()) for text in texts)


def _response(vectors: np.ndarray, tokens: int, *, model_id: str, fmt: str) -> dict:
    def encoded(vector: np.ndarray):
        # base64: the float32 bytes, little-endian, as OpenAI sends them; exact and ~4x smaller.
        if fmt == "base64":
            return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
        return vector.astype(np.float32).tolist()

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(vectors)],
        "model": model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

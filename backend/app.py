"""The generation backend: an OpenAI-compatible HTTP API over one chat model.

    writersroom backend serve [--host 127.0.0.1] [--port 8088]

POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics. Errors use the
OpenAI error body so the official `openai` client (and ours) read them as usual.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from backend.generator import GenerationResult, PromptTooLongError, SamplingParams
from backend.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ModelCard,
    ModelList,
    Usage,
    error_body,
)

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 2048


class Generator(Protocol):
    name: str
    context_window: int

    def generate(self, messages: list[dict[str, str]], params: SamplingParams) -> GenerationResult: ...


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("writersroom_backend_requests", "Chat completion requests", ["model", "outcome"],
                                registry=self.registry)
        self.tokens = Counter("writersroom_backend_completion_tokens", "Tokens generated", ["model"],
                              registry=self.registry)
        self.latency = Histogram("writersroom_backend_latency_seconds", "Time per completion", ["model"],
                                 buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160), registry=self.registry)


def _error(status: int, message: str, **kwargs) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(message, **kwargs))


def create_app(generator: Generator, *, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="writersroom generation backend", version="0.1.0")
    metrics = _Metrics()
    app.state.generator = generator
    app.state.metrics = metrics

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {api_key}".encode()):
                return _error(401, "Invalid or missing API key.", type_="authentication_error",
                              code="invalid_api_key")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        if first.get("type") == "json_invalid":
            return _error(400, "Request body is not valid JSON.")
        return _error(400, f"{param or 'request'}: {first['msg']}", param=param)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": generator.name}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=generator.name)])

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        if body.model != generator.name:
            return _error(404, f"The model '{body.model}' does not exist. Available: {generator.name}.",
                          param="model", code="model_not_found")
        if not any(message.content.strip() for message in body.messages):
            return _error(400, "messages: every message is empty.", param="messages")
        max_tokens = body.max_tokens or DEFAULT_MAX_TOKENS
        if max_tokens > MAX_TOKENS_CAP:
            return _error(400, f"max_tokens: at most {MAX_TOKENS_CAP}.", param="max_tokens")
        params = SamplingParams(
            max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p,
            repetition_penalty=body.repetition_penalty, no_repeat_ngram_size=body.no_repeat_ngram_size,
            seed=body.seed,
        )
        messages = [message.model_dump() for message in body.messages]
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(generator.generate, messages, params)
        except PromptTooLongError as exc:
            metrics.requests.labels(body.model, "too_long").inc()
            return _error(400, str(exc), param="messages", code="context_length_exceeded")
        except Exception as exc:  # one failed generation fails this request only
            metrics.requests.labels(body.model, "error").inc()
            return _error(500, f"Generation failed: {type(exc).__name__}", type_="server_error")
        metrics.requests.labels(body.model, "ok").inc()
        metrics.tokens.labels(body.model).inc(result.completion_tokens)
        metrics.latency.labels(body.model).observe(time.perf_counter() - started)
        completion = ChatCompletion(
            model=body.model,
            choices=[Choice(message=ChatMessage(role="assistant", content=result.text),
                            finish_reason=result.finish_reason)],
            usage=Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                        total_tokens=result.prompt_tokens + result.completion_tokens),
        )
        if body.stream:
            return StreamingResponse(_as_stream(completion), media_type="text/event-stream")
        return completion

    return app


def _as_stream(completion: ChatCompletion):
    """Server-sent events in the OpenAI chunk format.

    The whole completion arrives as one delta: token-level streaming comes with the
    batching scheduler, and clients read both the same way.
    """
    choice = completion.choices[0]
    base = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": choice.message.content},
                                  "finish_reason": None}]}
    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.finish_reason}]}
    yield f"data: {json.dumps(first)}\n\n"
    yield f"data: {json.dumps(last)}\n\n"
    yield "data: [DONE]\n\n"

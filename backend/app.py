"""The generation backend: an OpenAI-compatible HTTP API over one chat model.

    writersroom backend serve [--host 127.0.0.1] [--port 8088]

POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics. Errors use the
OpenAI error body so the official `openai` client (and ours) read them as usual.
Requests go through backend.batching, which batches concurrent writers into shared
forward passes: a full queue answers 429 with Retry-After, a request that waits in the
queue past queue_timeout_s (or whose row stalls for stall_timeout_s) answers 504, and a
client that hangs up stops costing compute.

A streamed request that is still waiting for a place in the batch after QUEUE_REPORT_S
starts its response with queue reports, SSE comments such as `: queue position 3`, one
each QUEUE_REPORT_S: OpenAI clients skip comments, ours (llm.client) tells the writer
where the scene stands, and either hears that the backend is alive. A quiet spell after
the response has started sends `: working` for the same reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    JSONResponse,
    Response,
    StreamingResponse,
)
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from backend.batching import (
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    DEFAULT_QUEUE_TIMEOUT_S,
    DEFAULT_STALL_TIMEOUT_S,
    GenerationFailedError,
    QueueFullError,
    RequestTimeoutError,
    Scheduler,
    Ticket,
)
from backend.generator import GenerationResult, PromptTooLongError
from backend.http_api import (
    RequestIdMiddleware,
    RequireKey,
    add_metrics_route,
    error_response,
)
from backend.requests import (
    MAX_TOKENS_CAP,
    ConstraintError,
    asks_for_constraint,
    continues_final,
    max_tokens_of,
    sampling_params,
)
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

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25  # how often a waiting non-streamed request checks that its client is still there
QUEUE_REPORT_S = 2.0  # a streamed request waiting this long is told its queue position, then again as often


class Generator(Protocol):
    """What the app and its scheduler need (backend.generator.ChatGenerator is the real one)."""

    name: str
    context_window: int
    model: Any
    device: str
    stop_ids: frozenset[int]
    pad_id: int

    def encode_prompt(self, messages: list[dict[str, str]], max_tokens: int) -> list[int]: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def result(self, row: Any, finish_reason: str) -> GenerationResult: ...


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("writersroom_backend_requests", "Chat completion requests", ["model", "outcome"],
                                registry=self.registry)
        self.tokens = Counter("writersroom_backend_completion_tokens", "Tokens generated", ["model"],
                              registry=self.registry)
        self.latency = Histogram("writersroom_backend_latency_seconds", "Time per completion", ["model"],
                                 buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160), registry=self.registry)
        self.queue_depth = Gauge("writersroom_backend_queue_depth", "Requests waiting for a place in the batch",
                                 registry=self.registry)
        self.running = Gauge("writersroom_backend_running_requests", "Requests in the running batch",
                             registry=self.registry)
        self.batch_size = Histogram("writersroom_backend_batch_size", "Rows per forward pass",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.tokens_per_second = Gauge("writersroom_backend_tokens_per_second",
                                       "Tokens generated per second, all requests, over the last 10 s",
                                       registry=self.registry)

    def watch(self, scheduler: Scheduler) -> None:
        self.queue_depth.set_function(lambda: scheduler.queue_depth)
        self.running.set_function(lambda: scheduler.running)
        self.tokens_per_second.set_function(scheduler.tokens_per_second)

    def forward_pass(self, rows: int, tokens: int, seconds: float) -> None:
        self.batch_size.observe(rows)


class _ClientGone(Exception):
    pass


def _failure(exc: Exception) -> JSONResponse:
    if isinstance(exc, RequestTimeoutError):
        return error_response(504, f"Generation timed out: {exc}.", type_="server_error", code="timeout")
    message = str(exc) if isinstance(exc, GenerationFailedError) else f"Generation failed: {type(exc).__name__}"
    return error_response(500, message, type_="server_error")


async def _unless_client_leaves(awaitable: Awaitable, ticket: Ticket, request: Request):
    """Await a ticket while watching the connection: a client that hung up cancels its row."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                ticket.cancel()
                raise _ClientGone
    finally:
        if not task.done():
            task.cancel()


def create_app(generator: Generator, *, api_key: str | None = None, max_queue: int = DEFAULT_MAX_QUEUE,
               max_batch: int = DEFAULT_MAX_BATCH, batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
               queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S, stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
               jump_forward: bool = True, embedder=None) -> FastAPI:
    """max_queue: requests waiting beyond it get 429; max_batch: rows per forward pass;
    batch_wait_ms: how long an idle model waits for company; queue_timeout_s: 504 for a request
    that waited that long for a place; stall_timeout_s: 504 for a running request that got no
    token for that long (no limit on total time); jump_forward: take grammar-forced tokens without a
    step each (backend.engine); embedder: a retrieval.embed.Embedder to serve
    POST /v1/embeddings with (backend.embeddings)."""
    metrics = _Metrics()
    scheduler = Scheduler(generator, max_queue=max_queue, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
                          queue_timeout_s=queue_timeout_s, stall_timeout_s=stall_timeout_s,
                          jump_forward=jump_forward, on_forward=metrics.forward_pass)
    metrics.watch(scheduler)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        scheduler.close()

    app = FastAPI(title="writersroom generation backend", version="0.2.0", lifespan=lifespan)
    app.state.generator = generator
    app.state.metrics = metrics
    app.state.scheduler = scheduler
    if api_key:
        app.add_middleware(RequireKey, api_key=api_key)
    app.add_middleware(RequestIdMiddleware)  # added last, so it runs first: a refused key is logged under an id too

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        if first.get("type") == "json_invalid":
            return error_response(400, "Request body is not valid JSON.")
        return error_response(400, f"{param or 'request'}: {first['msg']}", param=param)

    @app.get("/health")
    @app.get("/healthz")
    async def health() -> dict:
        """Liveness: the process answers (the model is loaded before the app exists)."""
        return {"status": "ok", "model": generator.name}

    @app.get("/readyz")
    async def ready() -> JSONResponse:
        """Readiness: the scheduler takes requests. A full queue is not unreadiness: it answers 429
        with Retry-After, which clients wait out, while a backend taken out of its Service leaves
        them nothing to connect to (one replica) and only shifts the load (several)."""
        problems = ["shutting down"] if scheduler.closed else []
        body = {"status": "unavailable" if problems else "ok", "model": generator.name, "problems": problems,
                "models": model_names(), "queue_depth": scheduler.queue_depth, "running": scheduler.running}
        return JSONResponse(status_code=503 if problems else 200, content=body)

    add_metrics_route(app, metrics.registry)

    if embedder is not None:
        from backend.embeddings import (
            add_embeddings_route,  # here: that module imports this one
        )

        add_embeddings_route(app, embedder, registry=metrics.registry)

    adapters = getattr(generator, "adapters", None)  # an AdapterSet when LoRA versions are served

    def model_names() -> list[str]:
        return adapters.names() if adapters is not None else [generator.name]

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        # Every adapter version under its own name, its parent the base model (as vLLM lists LoRA modules).
        return ModelList(data=[ModelCard(id=name, parent=None if name == generator.name else generator.name)
                               for name in model_names()])

    def tracker(model: str, started: float, version: str | None):
        """finished(outcome, result=None) for one request: metrics, and the adapter pin released once."""
        released = False

        def finished(outcome: str, result: GenerationResult | None = None) -> None:
            nonlocal released
            seconds = time.perf_counter() - started
            metrics.requests.labels(model, outcome).inc()
            if result is not None:
                metrics.tokens.labels(model).inc(result.completion_tokens)
                metrics.latency.labels(model).observe(seconds)
            log.info("chat completion for %s: %s, %d tokens in %.2f s", model, outcome,
                     result.completion_tokens if result is not None else 0, seconds)
            if adapters is not None and not released:
                released = True
                adapters.release(version)

        return finished

    def resolve(model: str) -> tuple[bool, str | None]:
        """(known, adapter version or None for the base model); pins the version while in use."""
        if adapters is None:
            return model == generator.name, None
        try:
            return True, adapters.acquire(model)
        except KeyError:
            return False, None

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        if not any(message.content.strip() for message in body.messages):
            return error_response(400, "messages: every message is empty.", param="messages")
        max_tokens = max_tokens_of(body)
        if max_tokens > MAX_TOKENS_CAP:
            return error_response(400, f"max_tokens: at most {MAX_TOKENS_CAP}.", param="max_tokens")
        continue_final = continues_final(body)
        if continue_final and body.messages[-1].role != "assistant":
            return error_response(400, "continue_final_message needs an assistant message last.", param="messages")
        try:
            params = await _sampling_params_for(body)
        except ConstraintError as exc:  # a grammar that does not compile, or two constraints at once
            return error_response(400, str(exc), param=exc.param)
        known, version = resolve(body.model)
        if not known:
            return error_response(404, f"The model '{body.model}' does not exist. Available: {', '.join(model_names())}.",
                          param="model", code="model_not_found")
        finished = tracker(body.model, time.perf_counter(), version)
        try:
            prompt_ids = generator.encode_prompt([message.model_dump() for message in body.messages], max_tokens,
                                                 continue_final=continue_final)
            ticket = scheduler.submit(prompt_ids, params, adapter=version, stream=body.stream)
        except PromptTooLongError as exc:
            finished("too_long")
            return error_response(400, str(exc), param="messages", code="context_length_exceeded")
        except ValueError as exc:  # e.g. an adapter that cannot run on this model
            finished("error")
            return error_response(400, str(exc), param="model")
        except QueueFullError as exc:
            finished("rejected")
            return error_response(429, str(exc), type_="rate_limit_error", code="queue_full",
                          headers={"Retry-After": str(exc.retry_after_s)})
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _start_stream(ticket, request, body.model, finished, usage=usage)
        try:
            result = await _unless_client_leaves(ticket.wait(), ticket, request)
        except _ClientGone:
            finished("cancelled")
            return Response(status_code=499)  # nobody reads it: the connection is gone
        except Exception as exc:  # a failed batch fails its requests only
            finished("timeout" if isinstance(exc, RequestTimeoutError) else "error")
            return _failure(exc)
        finished("ok", result)
        return ChatCompletion(
            model=body.model,
            choices=[Choice(message=ChatMessage(role="assistant", content=result.text),
                            finish_reason=result.finish_reason)],
            usage=Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                        total_tokens=result.prompt_tokens + result.completion_tokens),
        )

    async def _start_stream(ticket: Ticket, request: Request, model: str, finished, *, usage: bool) -> Response:
        """Wait for the first text (or the end) before answering, so a request that times out or
        fails before producing anything still gets a proper status code; a request still queued
        after QUEUE_REPORT_S answers at once, with its queue position (module docstring)."""
        try:
            head = await _unless_client_leaves(_head(ticket), ticket, request)
        except _ClientGone:
            finished("cancelled")
            return Response(status_code=499)
        except Exception as exc:
            finished("timeout" if isinstance(exc, RequestTimeoutError) else "error")
            return _failure(exc)
        return StreamingResponse(_sse(head, lambda: _next(ticket), ticket, model, finished, usage=usage),
                                 media_type="text/event-stream")

    async def _next(ticket: Ticket) -> tuple[str, str]:
        """The ticket's next event, or ("queued", position) / ("quiet", "") after QUEUE_REPORT_S of silence."""
        kind, text = await ticket.next_event(quiet_after_s=QUEUE_REPORT_S)
        position = scheduler.position(ticket) if kind == "quiet" else 0
        return ("queued", str(position)) if position else (kind, text)

    async def _head(ticket: Ticket) -> tuple[str, str]:
        """The first event worth answering with: text, a queue position, or the end (its error raised)."""
        while True:
            kind, text = await _next(ticket)
            if kind == "done" and ticket.error:
                raise ticket.error
            if kind != "quiet":
                return kind, text

    return app


async def _sampling_params_for(body: ChatCompletionRequest):
    """Compiling and checking a grammar is CPU work on untrusted text: off the event loop."""
    if asks_for_constraint(body):
        return await asyncio.to_thread(sampling_params, body)
    return sampling_params(body)


async def _sse(head: tuple[str, str], following: Callable[[], Awaitable[tuple[str, str]]], ticket: Ticket,
               model: str, finished, *, usage: bool) -> AsyncIterator[str]:
    """Server-sent events in the OpenAI chunk format, one per stable piece of text, with queue
    reports and keep-alives as comments.

    If the client goes away, Starlette cancels this generator at its current await; the
    finally clause then takes the row out of the batch.
    """
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

    try:
        kind, text = head
        opened = False  # the first chunk carries the role, as OpenAI's do
        while kind != "done":
            if kind == "queued":
                yield f": queue position {text}\n\n"
            elif kind == "quiet":
                yield ": working\n\n"
            else:
                yield chunk({"role": "assistant", "content": text} if not opened else {"content": text})
                opened = True
            kind, text = await following()
        if ticket.error:
            raise ticket.error
        if not opened:
            yield chunk({"role": "assistant", "content": ""})
        result = ticket.result
        yield chunk({}, result.finish_reason)
        if usage:
            counts = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                      "total_tokens": result.prompt_tokens + result.completion_tokens}
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': counts})}\n\n"
        yield "data: [DONE]\n\n"
        finished("ok", result)
    except (RequestTimeoutError, GenerationFailedError) as exc:
        # Headers are long gone: the OpenAI way to fail mid-stream is an error event.
        finished("timeout" if isinstance(exc, RequestTimeoutError) else "error")
        yield f"data: {json.dumps(error_body(str(exc), type_='server_error'))}\n\n"
    finally:
        if not ticket.done:
            ticket.cancel()
            finished("cancelled")

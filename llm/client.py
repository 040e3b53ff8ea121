"""Client of any OpenAI-compatible chat-completions server: our backend or vLLM.

httpx rather than the `openai` package keeps the bot process light; the tests prove
the server side against the official `openai` client instead.

Every completion is streamed, so the client times out on silence, not on length: a scene
whose tokens keep coming is never cut off, however busy the backend, while a backend that
says nothing for `silence_timeout_s` is given up on. Our backend fills a wait in its queue
with reports (`: queue position 3`, SSE comments that other clients skip), which reach
``on_queue`` so the writer can be told where the scene stands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from observability import metrics
from observability.readiness import backend_check
from observability.request_id import request_id_headers

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}
QUEUE_REPORT = ": queue position "

QueueListener = Callable[[int], Awaitable[None]]


class GenerationError(RuntimeError):
    """The backend could not produce a completion; the message is fit to show a writer."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class ChatClient:
    def __init__(self, base_url: str, *, api_key: str | None = None, silence_timeout_s: float = 120.0,
                 retries: int = 2, backoff_s: float = 1.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # httpx's read timeout bounds each wait for bytes, not the whole response: on a stream
        # that is exactly a silence timeout.
        self._timeout = httpx.Timeout(silence_timeout_s, connect=5.0)
        self._silence_s = silence_timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        # Loading CA certificates costs ~0.1 s of event-loop time; per request it delayed
        # other writers' acknowledgements. One context, a fresh connection pool per call
        # (a pooled AsyncClient would be tied to the event loop that created it).
        self._ssl = ssl.create_default_context()

    def _http(self) -> httpx.AsyncClient:
        # The request id: the backend logs under it too, so one grep follows a command end to end.
        headers = {**self._headers, **request_id_headers()}
        return httpx.AsyncClient(timeout=self._timeout, headers=headers, verify=self._ssl)

    def check(self) -> str:
        """For readiness probes (a thread of their own, no event loop): the backend lists its models."""
        return backend_check(self.base_url, self._headers)

    async def models(self) -> list[str]:
        async with self._http() as http:
            try:
                response = await http.get(f"{self.base_url}/models")
            except httpx.TransportError:
                raise GenerationError(_unreachable(self.base_url)) from None
        if response.status_code >= 400:
            raise GenerationError(f"The generation backend refused to list models ({response.status_code}).")
        return [card["id"] for card in response.json()["data"]]

    async def complete(self, *, model: str, messages: list[dict[str, str]], on_queue: QueueListener | None = None,
                       **sampling: object) -> Completion:
        """One chat completion; ``on_queue(position)`` hears each queue report while the request waits."""
        started = time.perf_counter()
        try:
            completion = await self._complete(model=model, messages=messages, on_queue=on_queue, **sampling)
        except GenerationError as exc:
            metrics.BACKEND_REQUESTS.labels("error").inc()
            log.warning("generation with %s failed after %.1f s: %s", model, time.perf_counter() - started, exc)
            raise
        seconds = time.perf_counter() - started
        metrics.BACKEND_REQUESTS.labels("ok").inc()
        metrics.BACKEND_SECONDS.observe(seconds)
        metrics.COMPLETION_TOKENS.labels(completion.model or model).inc(completion.completion_tokens)
        log.info("generated %d tokens with %s in %.1f s (%s)", completion.completion_tokens, completion.model or model,
                 seconds, completion.finish_reason)
        return completion

    async def _complete(self, *, model: str, messages: list[dict[str, str]], on_queue: QueueListener | None,
                        **sampling: object) -> Completion:
        payload = {"model": model, "messages": messages, **sampling, "stream": True,
                   "stream_options": {"include_usage": True}}
        async with self._http() as http:
            for attempt in range(self._retries + 1):
                try:
                    async with http.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                        if response.status_code in RETRY_STATUSES and attempt < self._retries:
                            await response.aread()
                            delay = _retry_delay(response, self._backoff_s * 2**attempt)
                        else:
                            return await _read(response, on_queue)
                except httpx.TimeoutException:
                    raise GenerationError(f"The generation backend sent nothing for {self._silence_s:g} s. "
                                          "Try again shortly.") from None
                except httpx.TransportError:
                    raise GenerationError(_unreachable(self.base_url)) from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _unreachable(base_url: str) -> str:
    """For the writer: no address (where the backend runs is the operators' business, and the
    message is posted in chat); the address goes to the log for whoever fixes it."""
    log.warning("the generation backend at %s is not reachable", base_url)
    return "The generation backend is not reachable right now. Try again shortly; if it keeps failing, tell a room admin."


def _retry_delay(response: httpx.Response, fallback: float) -> float:
    try:
        return min(float(response.headers.get("retry-after", fallback)), 30.0)
    except ValueError:
        return fallback


async def _read(response: httpx.Response, on_queue: QueueListener | None) -> Completion:
    if response.status_code >= 400:
        await response.aread()
        raise _refusal(response)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        await response.aread()  # a server that answers a stream request in one piece
        return _completion(response.json())
    return await _read_events(response, on_queue)


async def _read_events(response: httpx.Response, on_queue: QueueListener | None) -> Completion:
    """Accumulate an OpenAI chunk stream. By hand rather than with httpx-sse: a conforming SSE
    parser drops comment lines, and the queue reports are comments (so that other clients skip them)."""
    text: list[str] = []
    model, finish_reason, usage, ended = "", None, {}, False
    async for line in response.aiter_lines():
        if line.startswith(QUEUE_REPORT):
            await _tell(on_queue, line[len(QUEUE_REPORT):])
            continue
        if not line.startswith("data:"):
            continue  # blank separators, other comments (keep-alives), event names
        data = line[5:].strip()
        if data == "[DONE]":
            ended = True
            break
        chunk = json.loads(data)
        if chunk.get("error"):
            message = (chunk["error"] or {}).get("message", "unknown error")
            raise GenerationError(f"The generation backend failed mid-scene: {message}")
        model = chunk.get("model") or model
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
            finish_reason = choice.get("finish_reason") or finish_reason
    if not ended and finish_reason is None:
        raise GenerationError("The generation backend stopped in the middle of the scene. Try again.")
    return Completion(text="".join(text), model=model, finish_reason=finish_reason or "stop",
                      prompt_tokens=int(usage.get("prompt_tokens", 0)),
                      completion_tokens=int(usage.get("completion_tokens", 0)))


async def _tell(on_queue: QueueListener | None, position: str) -> None:
    """A queue report for the listener; a listener that fails (a chat post that did not go out)
    costs the writer a notice, never the scene."""
    if on_queue is None or not position.strip().isdigit():
        return
    try:
        await on_queue(int(position))
    except Exception:
        log.warning("telling the writer the queue position failed", exc_info=True)


def _refusal(response: httpx.Response) -> GenerationError:
    if response.status_code == 429:
        return GenerationError("The generation backend is busy right now. Try again in a minute.")
    if response.status_code == 504:
        return GenerationError("The generation backend timed out on this scene. Try again shortly.")
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    return GenerationError(f"The generation backend refused the request ({response.status_code}): {message}")


def _completion(body: dict) -> Completion:
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return Completion(
        text=choice["message"]["content"] or "",
        model=body.get("model", ""),
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )

"""Client of any OpenAI-compatible chat-completions server: our backend or vLLM.

httpx rather than the `openai` package keeps the bot process light; the tests prove
the server side against the official `openai` client instead.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from observability import metrics
from observability.readiness import backend_check
from observability.request_id import request_id_headers

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}


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
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 180.0,
                 retries: int = 2, backoff_s: float = 1.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)
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

    async def complete(self, *, model: str, messages: list[dict[str, str]], **sampling: object) -> Completion:
        started = time.perf_counter()
        try:
            completion = await self._complete(model=model, messages=messages, **sampling)
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

    async def _complete(self, *, model: str, messages: list[dict[str, str]], **sampling: object) -> Completion:
        payload = {"model": model, "messages": messages, **sampling}
        async with self._http() as http:
            for attempt in range(self._retries + 1):
                try:
                    response = await http.post(f"{self.base_url}/chat/completions", json=payload)
                except httpx.TimeoutException:
                    raise GenerationError("The generation backend took too long to answer. Try again shortly.") from None
                except httpx.TransportError:
                    raise GenerationError(_unreachable(self.base_url)) from None
                if response.status_code in RETRY_STATUSES and attempt < self._retries:
                    await asyncio.sleep(_retry_delay(response, self._backoff_s * 2**attempt))
                    continue
                return _parse(response)
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


def _parse(response: httpx.Response) -> Completion:
    if response.status_code == 429:
        raise GenerationError("The generation backend is busy right now. Try again in a minute.")
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise GenerationError(f"The generation backend refused the request ({response.status_code}): {message}")
    body = response.json()
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return Completion(
        text=choice["message"]["content"] or "",
        model=body.get("model", ""),
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )

"""What both backend apps (generation in backend.app, embeddings in backend.embeddings) put
between the wire and their routes: the API key, the request id, OpenAI-shaped errors and
GET /metrics. In a module of its own so that neither app imports the other."""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from backend.schemas import error_body
from observability.request_id import HEADER as REQUEST_ID_HEADER
from observability.request_id import accepted, request_scope


class RequireKey:
    """Bearer-key check as plain ASGI: Starlette's BaseHTTPMiddleware would stand between a
    streaming response and the client's disconnect, which cancellation relies on."""

    def __init__(self, app, api_key: str) -> None:
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self.expected):
                response = error_response(401, "Invalid or missing API key.", type_="authentication_error",
                                  code="invalid_api_key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestIdMiddleware:
    """Binds the caller's X-Request-ID (or a fresh one) for the request's logs and echoes it back.

    Plain ASGI for the same reason as RequireKey."""

    _HEADER = REQUEST_ID_HEADER.lower().encode()

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(self._HEADER, b"").decode("latin-1")
        with request_scope(accepted(sent)) as request_id:
            async def send_with_id(message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (self._HEADER, request_id.encode())]}
                await send(message)

            await self.app(scope, receive, send_with_id)


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None, **kwargs) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(message, **kwargs), headers=headers)


def add_metrics_route(app: FastAPI, registry: CollectorRegistry) -> None:
    """GET /metrics: `registry` in Prometheus' text format (no key needed, like the probes)."""

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

"""Checks the ops server runs for /readyz: each returns a detail or raises with the problem."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text


def store_check(sessions: Any) -> str:
    with sessions() as session:
        session.execute(text("SELECT 1"))
    return "store answers"


def backend_check(base_url: str, headers: dict[str, str], *, timeout_s: float = 3.0) -> str:
    """Lists the backend's models (ours or vLLM: both serve /v1/models)."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"generation backend at {base_url} unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise RuntimeError(f"generation backend answered {response.status_code} to /models")
    names = [card.get("id") for card in response.json().get("data", [])]
    return f"{len(names)} model(s): {', '.join(map(str, names[:5]))}"


def expect(condition: bool, problem: str, fine: str) -> str:
    if not condition:
        raise RuntimeError(problem)
    return fine

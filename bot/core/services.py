"""What the core commands need from the outside world, wired once per process."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.core.adapters import AdapterCatalog, AdapterError, NoAdapters
from bot.core.policy import RoomPolicy
from bot.core.ratelimit import RateLimiter
from config.settings import Settings
from llm.client import ChatClient
from retrieval.types import SceneHit, SearchUnavailableError

log = logging.getLogger(__name__)


class SceneSearch(Protocol):
    def search(self, query: str, *, k: int = 5) -> list[SceneHit]: ...


@dataclass
class CoreServices:
    settings: Settings
    sessions: sessionmaker[Session]
    chat: ChatClient
    searcher_factory: Callable[[], SceneSearch]
    adapters: AdapterCatalog = field(default_factory=NoAdapters)
    model_name: str | None = None  # None: ask the backend's /v1/models once
    clock: Callable[[], float] = time.monotonic
    _models: tuple[float, list[str]] | None = field(default=None, init=False, repr=False)
    _searcher: SceneSearch | None = field(default=None, init=False, repr=False)
    _searcher_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    policy: RoomPolicy = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.policy = RoomPolicy.from_settings(self.settings.room)
        self.limiter = RateLimiter(self.settings.room.rate_limit_per_minute)

    def searcher(self) -> SceneSearch:
        """Loaded on first use: the embedder takes seconds to load and not every command needs it."""
        with self._searcher_lock:
            if self._searcher is None:
                self._searcher = self.searcher_factory()
            return self._searcher

    async def search(self, query: str, *, k: int) -> list[SceneHit]:
        return await asyncio.to_thread(lambda: self.searcher().search(query, k=k))

    async def search_if_possible(self, query: str, *, k: int) -> list[SceneHit]:
        """For grounding and the copy guard: a search that cannot run (embedding service down)
        gives nothing rather than costing the writer the scene; /similar reports it instead."""
        try:
            return await self.search(query, k=k)
        except SearchUnavailableError as exc:
            log.warning("search unavailable, going on without library scenes: %s", exc)
            return []

    async def base_model(self) -> str:
        if self.model_name is None:
            names = await self.served_models()
            self.model_name = names[0]
        return self.model_name

    async def served_models(self) -> list[str]:
        """The backend's /v1/models, asked again only after `backend.adapter_poll_s` (the time
        the backend itself takes to load a promoted adapter), not on every scene."""
        now = self.clock()
        if self._models is None or now - self._models[0] >= self.settings.backend.adapter_poll_s:
            self._models = (now, await self.chat.models())
        return self._models[1]

    async def model_for(self, room_id: str) -> tuple[str, str | None]:
        """(model name to request, adapter version or None) for a room right now.

        The registry names the adapter version (a room's own, else the default); it is used
        only once the backend lists it, so a promotion the backend has not loaded yet, or a
        vLLM without that LoRA module, falls back to the base model.
        """
        base = await self.base_model()
        try:
            version = await asyncio.to_thread(self.adapters.serving_version, room_id)
        except AdapterError as exc:
            log.warning("the adapter registry could not be read; serving the base model: %s", exc)
            version = None
        if version and version in await self.served_models():
            return version, version
        return base, None

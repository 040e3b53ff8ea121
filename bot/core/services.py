"""What the core commands need from the outside world, wired once per process."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sqlalchemy.orm import Session, sessionmaker

from retrieval.types import SceneHit, SearchUnavailableError

from bot.core.llm_client import ChatClient
from bot.core.policy import RoomPolicy
from bot.core.ratelimit import RateLimiter
from bot.settings import Settings


log = logging.getLogger(__name__)


class SceneSearch(Protocol):
    def search(self, query: str, *, k: int = 5) -> list[SceneHit]: ...


@dataclass
class CoreServices:
    settings: Settings
    sessions: sessionmaker[Session]
    chat: ChatClient
    searcher_factory: Callable[[], SceneSearch]
    model_name: str | None = None  # None: ask the backend's /v1/models once
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
            names = await self.chat.models()
            self.model_name = names[0]
        return self.model_name

    async def model_for(self, room_id: str) -> tuple[str, str | None]:
        """(model name to request, adapter version or None) for a room right now.

        The registry's serving pointer names the adapter version (a room's own, else the
        default); it is used only once the backend lists it, so a promotion the backend
        has not loaded yet, or a vLLM without that LoRA module, falls back to the base model.
        """
        # The registry module is standard-library only: reading the pointer pulls in no torch.
        from backend.registry import RegistryError, serving

        base = await self.base_model()
        try:
            version = serving(self.settings.adapter_dir).version_for(room_id)
        except (RegistryError, OSError, ValueError):
            version = None
        if version and version in await self.chat.models():
            return version, version
        return base, None

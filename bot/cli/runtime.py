"""Wire the core's services from settings, once per process."""

from __future__ import annotations

from pathlib import Path

from backend.provision import embedder_path
from bot.core.adapters import AdapterError, Rollback
from bot.core.services import CoreServices, SceneSearch
from config.settings import Settings
from llm.client import ChatClient
from observability.request_id import request_id_headers
from registry.versions import RegistryError, rollback, serving
from store.db import make_engine, make_session_factory, upgrade


def open_store(settings: Settings):
    """Bring the schema up to date and return a session factory."""
    upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def make_embedder(settings: Settings):
    """The query embedder: the embedding service at retrieval.embedder_url when set (this
    process then never imports torch: the slim bot image has none), else the local model."""
    retrieval = settings.retrieval
    if retrieval.embedder_url:
        from retrieval.remote_embed import RemoteEmbedder

        return RemoteEmbedder(retrieval.embedder_url, model=settings.model.embedder, api_key=settings.backend_api_key,
                              batch_size=retrieval.batch_size, request_headers=request_id_headers)
    # Imported here: the embedder pulls in torch, which only retrieval commands need.
    from retrieval.embed import Embedder

    return Embedder(embedder_path(settings), batch_size=retrieval.batch_size)


def make_searcher(settings: Settings) -> SceneSearch:
    from retrieval.search import SceneSearcher

    retrieval = settings.retrieval
    return SceneSearcher(settings.index_dir, make_embedder(settings),
                         reranker_dir=retrieval.reranker_dir, rerank_top_n=retrieval.rerank_top_n,
                         catalog_url=settings.index_catalog_url)


def chat_client(settings: Settings) -> ChatClient:
    return ChatClient(settings.backend_url, api_key=settings.backend_api_key,
                      silence_timeout_s=settings.generation.silence_timeout_s)


class RegistryAdapters:
    """The core's AdapterCatalog over the on-disk registry (registry.versions)."""

    def __init__(self, registry_dir: Path) -> None:
        self.registry_dir = registry_dir

    def serving_version(self, room_id: str) -> str | None:
        try:
            return serving(self.registry_dir).version_for(room_id)
        except (RegistryError, OSError, ValueError) as exc:
            raise AdapterError(str(exc)) from exc

    def roll_back(self, room_id: str) -> Rollback:
        try:
            before = serving(self.registry_dir)
            # A room with its own adapter rolls back its own; otherwise the default every room shares.
            own = room_id in before.rooms
            after = rollback(self.registry_dir, room=room_id if own else None)
        except RegistryError as exc:
            raise AdapterError(str(exc)) from exc
        return Rollback(was=before.version_for(room_id), now=after.version_for(room_id), own=own)


def build_services(settings: Settings, *, model_name: str | None = None) -> CoreServices:
    return CoreServices(
        settings=settings,
        sessions=open_store(settings),
        chat=chat_client(settings),
        searcher_factory=lambda: make_searcher(settings),
        adapters=RegistryAdapters(settings.adapter_dir),
        model_name=model_name,
    )

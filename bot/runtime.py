"""Wire the core's services from settings, once per process."""

from __future__ import annotations

from backend.provision import EMBEDDER_NAME, resolve_model
from bot.core.llm_client import ChatClient
from bot.core.services import CoreServices, SceneSearch
from bot.observability.request_id import request_id_headers
from bot.settings import Settings
from bot.store.db import make_engine, make_session_factory, upgrade


def open_store(settings: Settings):
    """Bring the schema up to date and return a session factory."""
    upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def embedder_path(settings: Settings) -> str:
    return resolve_model(settings.model.embedder, default_name=EMBEDDER_NAME, cache_dir=settings.model_cache_dir)


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
    return ChatClient(settings.backend_url, api_key=settings.backend_api_key, timeout_s=settings.generation.timeout_s)


def build_services(settings: Settings, *, model_name: str | None = None) -> CoreServices:
    return CoreServices(
        settings=settings,
        sessions=open_store(settings),
        chat=chat_client(settings),
        searcher_factory=lambda: make_searcher(settings),
        model_name=model_name,
    )

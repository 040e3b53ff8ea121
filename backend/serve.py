"""Build the backend from settings and serve it with uvicorn.

    writersroom backend serve --host 127.0.0.1 --port 8088
    writersroom backend serve --embeddings-only   # /v1/embeddings alone, where vLLM generates

The base model is served under its name; every adapter version in the registry
(HOME/adapters) under its own, loaded and unloaded while running as versions appear
and disappear. With backend.serve_embeddings (or --embeddings-only) the embedder also
serves /v1/embeddings, for bots that set retrieval.embedder_url (backend.embeddings).
"""

from __future__ import annotations

import logging
from pathlib import Path

from backend.provision import GENERATOR_NAME, resolve_model
from config.settings import Settings

log = logging.getLogger(__name__)


def serving_generator(settings: Settings) -> str:
    """The generator in force: on a CUDA host `model.gpu_generator` replaces the CPU default
    (a GPU runs a 1.5B model faster than two cores run the 135M one); a generator set to
    anything else is served as set."""
    chosen = settings.model.generator
    if chosen == GENERATOR_NAME and settings.model.gpu_generator:
        from backend.generator import pick_device

        if pick_device(settings.model.device) == "cuda":
            return settings.model.gpu_generator
    return chosen


def model_name(settings: Settings) -> str:
    """The name clients use for the base model: the setting itself, or a directory's name."""
    generator = serving_generator(settings)
    return generator if generator == GENERATOR_NAME or "/" not in generator else Path(generator).name


def load_embedder(settings: Settings):
    """The embedder /v1/embeddings serves: the one the bot and the index use (bot.cli.runtime).

    On the CPU, as `writersroom ingest` builds the index: the same device gives the same vectors."""
    from backend.provision import embedder_path
    from retrieval.embed import Embedder

    embedder = Embedder(embedder_path(settings), batch_size=settings.retrieval.batch_size)
    log.info("embedder %s serving /v1/embeddings", embedder.model_id)
    return embedder


def build_app(settings: Settings, *, embeddings_only: bool = False):
    """The backend app; embeddings_only: serve /v1/embeddings alone (where vLLM generates)."""
    backend, api_key = settings.backend, settings.backend_api_key
    embedder = load_embedder(settings) if backend.serve_embeddings or embeddings_only else None
    if embeddings_only:
        from backend.embeddings import create_embeddings_app

        return create_embeddings_app(embedder, api_key=api_key)
    from backend.adapters import AdapterSet
    from backend.app import create_app
    from backend.generator import ChatGenerator

    path = resolve_model(serving_generator(settings), default_name=GENERATOR_NAME, cache_dir=settings.model_cache_dir)
    generator = ChatGenerator(path, name=model_name(settings), device=settings.model.device,
                              cpu_int8=settings.model.cpu_int8)
    log.info("generator %s loaded from %s on %s", generator.name, path, generator.device)
    adapters = AdapterSet(generator.model, registry=settings.adapter_dir, base_name=generator.name)
    generator.attach_adapters(adapters)
    report = adapters.sync()
    log.info("adapters loaded: %s", ", ".join(report.loaded) or "none")
    adapters.start_watcher(settings.backend.adapter_poll_s)
    return create_app(generator, api_key=api_key, max_queue=backend.max_queue, max_batch=backend.max_batch,
                      batch_wait_ms=backend.batch_wait_ms, queue_timeout_s=backend.queue_timeout_s,
                      stall_timeout_s=backend.stall_timeout_s, jump_forward=backend.jump_forward,
                      embedder=embedder)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          embeddings_only: bool = False) -> None:
    import uvicorn

    app = build_app(settings, embeddings_only=embeddings_only)
    host, port = host or settings.backend.host, port or settings.backend.port
    # uvicorn's own INFO lines ("Uvicorn running on ...", one per request) are library chatter
    # that observability.logs hides below DEBUG; this line says where the backend will listen.
    log.info("backend starting on http://%s:%s", host, port)
    uvicorn.run(app, host=host, port=port, log_level=settings.general.log_level.lower(),
                log_config=None)  # uvicorn's lines through our handler

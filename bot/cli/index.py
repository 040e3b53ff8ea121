"""`writersroom index ...`: look after the scene index without re-ingesting.

    writersroom index stats [--json] [--index DIR]
    writersroom index list [--json] [--index DIR]
    writersroom index remove SCRIPT_ID [--index DIR]
    writersroom index rebuild [--kind flat|hnsw|ivfpq|auto] [--index DIR]
    writersroom index bootstrap [--index DIR]

The index directory comes from the same settings as every other command
(``config.settings.load_settings().index_dir``); ``--index`` overrides it. Its metadata
catalog is ``retrieval.catalog_url`` (empty: the SQLite file in that directory). No
embedder is loaded except by ``bootstrap``, which does what ``writersroom start`` does
on first run (provision the default embedder, ingest the bundled corpus and
``retrieval.corpus_dirs`` when no index exists yet): the one-shot set-up step of a
container or cluster deployment, safe to repeat.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from bot.cli.common import fail
from config.settings import SettingsError, load_settings

index_app = typer.Typer(help="Inspect and maintain the scene index.", no_args_is_help=True)

INDEX_OPTION = typer.Option(None, "--index", help="Directory of the FAISS index and its metadata.")
KIND_CHOICES = ("flat", "hnsw", "ivfpq", "auto")


def _index_dir(index: Optional[Path]) -> Path:
    if index is not None:
        return index
    try:
        return load_settings().index_dir
    except SettingsError as exc:
        fail(str(exc), code=2)


def _load(index: Optional[Path]):
    """The saved index, or exit with a message saying what to do."""
    from retrieval.index import SceneIndex, SceneIndexError

    directory = _index_dir(index)
    catalog_url = _catalog_url()
    try:
        if not SceneIndex.exists(directory, catalog_url=catalog_url):
            fail(f"no scene index at {directory}; run `writersroom ingest PATH` first")
        return SceneIndex.load(directory, catalog_url=catalog_url, **_index_settings())
    except SceneIndexError as exc:
        fail(str(exc))


def _catalog_url() -> str | None:
    """retrieval.catalog_url, or None (the SQLite file in the index directory)."""
    try:
        return load_settings().index_catalog_url
    except SettingsError:
        return None


def _index_settings() -> dict:
    """Index-kind settings from [retrieval], where present (None: keep what the index recorded)."""
    try:
        retrieval = load_settings().retrieval
    except SettingsError:
        return {}
    names = ("hnsw_min_vectors", "ivfpq_min_vectors", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search",
             "ivf_nprobe", "pq_m", "rerank")
    return {name: getattr(retrieval, f"index_{name}", None) for name in names}


def _size_on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@index_app.command("stats")
def stats(as_json: bool = typer.Option(False, "--json", help="Print JSON."), index: Optional[Path] = INDEX_OPTION) -> None:
    """Scripts, scenes, chunks, vectors, index type, dimension, embedder, size on disk."""
    scene_index = _load(index)
    info = scene_index.stats()
    scene_index.close()  # SQLite folds its write-ahead log into the catalog file: the size at rest
    info |= {"size_bytes": _size_on_disk(scene_index.index_dir), "index_dir": str(scene_index.index_dir)}
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    kind = info["type"] + (" (pinned)" if info["pinned"] else "")
    if info["deleted"]:
        kind += f", {info['deleted']} deleted awaiting rebuild"
    lines = [("index", info["index_dir"]), ("scripts", info["scripts"]), ("scenes", info["scenes"]), ("chunks", info["chunks"]),
             ("vectors", info["vectors"]), ("type", kind), ("dim", info["dim"]), ("embedder", info["embedder"] or "-"),
             ("size on disk", _human(info["size_bytes"]))]
    for name, value in lines:
        typer.echo(f"{name + ':':<14}{value}")


@index_app.command("list")
def list_scripts(as_json: bool = typer.Option(False, "--json", help="Print JSON: one object per script."),
                 index: Optional[Path] = INDEX_OPTION) -> None:
    """The scripts in the index, with title and scene counts."""
    scripts = _load(index).scripts()
    if as_json:
        typer.echo(json.dumps(scripts, indent=2, ensure_ascii=False))
        return
    if not scripts:
        typer.echo("the index holds no scripts")
        return
    width = max(len(s["script_id"]) for s in scripts)
    for script in scripts:
        typer.echo(f"{script['script_id']:<{width}}  {script['scenes']:>5} scenes  {script['chunks']:>6} chunks  {script['title']}")
    typer.echo(f"{len(scripts)} scripts")


@index_app.command("remove")
def remove(script_id: str = typer.Argument(..., help="The script's id, as `writersroom index list` shows it."),
           index: Optional[Path] = INDEX_OPTION) -> None:
    """Remove a script (its scenes and vectors) from the index."""
    scene_index = _load(index)
    script = next((s for s in scene_index.scripts() if s["script_id"] == script_id), None)
    if script is None:
        fail(f"no script {script_id!r} in the index at {scene_index.index_dir}; `writersroom index list` shows the ids")
    scene_index.remove_script(script_id)
    scene_index.save()
    scene_index.close()
    title = f" ({script['title']})" if script["title"] else ""
    source = f"; it came from {script['source_path']}, which a later ingest of that path adds again" if script["source_path"] else ""
    typer.echo(f"removed {script_id}{title}: {script['scenes']} scenes, {script['chunks']} chunks{source}")


@index_app.command("rebuild")
def rebuild(kind: str = typer.Option("auto", "--kind", help="flat, hnsw, ivfpq, or auto (chosen by the library's size)."),
            index: Optional[Path] = INDEX_OPTION) -> None:
    """Rebuild the searched index from the stored vectors, as another kind or compacted."""
    if kind not in KIND_CHOICES:
        fail(f"--kind must be one of {', '.join(KIND_CHOICES)}, not {kind!r}", code=2)
    scene_index = _load(index)
    before = scene_index.kind
    started = time.perf_counter()
    try:
        now = scene_index.rebuild(None if kind == "auto" else kind)
    except ValueError as exc:
        fail(str(exc))
    scene_index.save()
    scene_index.close()
    how = "chosen by size" if kind == "auto" else "pinned until `rebuild --kind auto`"
    typer.echo(f"rebuilt {len(scene_index)} vectors: {before} -> {now} ({how}) in {time.perf_counter() - started:.1f} s")


@index_app.command("bootstrap")
def bootstrap(index: Optional[Path] = INDEX_OPTION) -> None:
    """Provision the default embedder and, when no index exists yet, ingest the bundled corpus and
    retrieval.corpus_dirs (what `writersroom start` does on first run); a second run changes nothing."""
    from backend.provision import EMBEDDER_NAME
    from bot.cli.launcher import (
        LaunchError,
        corpus_paths,
        ingest_on_first_run,
        provision_models,
        say,
    )
    from retrieval.index import SceneIndex

    try:
        settings = load_settings(**({"general": {"index_dir": index}} if index else {}))
    except SettingsError as exc:
        fail(str(exc), code=2)
    try:
        provision_models(settings, generator=False)
    except LaunchError as exc:
        fail(str(exc))
    if settings.model.embedder != EMBEDDER_NAME:
        say(f"embedder {settings.model.embedder}: configured, nothing to provision")

    if SceneIndex.exists(settings.index_dir, catalog_url=settings.index_catalog_url):
        say(f"index already at {settings.index_dir}: nothing ingested (`writersroom ingest PATH` adds scripts)")
    elif not corpus_paths(settings):
        say("nothing to ingest: retrieval.ingest_bundled_corpus is off and retrieval.corpus_dirs is empty")
    else:
        ingest_on_first_run(settings)  # says what it ingests

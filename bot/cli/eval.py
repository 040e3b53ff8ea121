"""`writersroom eval ...`: measurements of the system's quality.

    writersroom eval retrieval DIR [DIR...] [--json] [--queries-per-script N] [--query-words N] [--model-dir DIR]

Registered on the main app as ``app.add_typer(eval_app, name="eval")``. Heavy imports
(torch via the embedder) happen inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

eval_app = typer.Typer(help="Measure retrieval and generation quality.", no_args_is_help=True)


@eval_app.callback()
def _group() -> None:
    """Keeps `eval` a group even while it has one command (typer would otherwise fold it)."""


@eval_app.command("retrieval")
def retrieval(paths: List[Path] = typer.Argument(..., help="Library folders or files (every supported format is read)."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON: per-mode numbers, counts, seconds."),
              queries_per_script: Optional[int] = typer.Option(None, "--queries-per-script", min=1,
                                                               help="Sample this many second-half scenes per script, evenly spaced (default: all)."),
              query_words: int = typer.Option(1000, "--query-words", min=10, help="Words of each held-out scene used as the query."),
              model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Sentence-transformers directory (default: the configured embedder)."),
              dense_weight: float = typer.Option(1.0, "--dense-weight", min=0.0, help="Weight of the dense ranking in fusion."),
              bm25_weight: float = typer.Option(1.0, "--bm25-weight", min=0.0, help="Weight of the BM25 ranking in fusion.")) -> None:
    """Which script is a held-out scene from? Top-1/top-5 for dense, BM25 and hybrid search.

    Each script's first half of scenes is indexed in a temporary index; each scene of
    its second half is a query.
    """
    from retrieval.embed import Embedder
    from retrieval.identification import evaluate_retrieval, format_report

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        typer.echo(f"writersroom: no such file or directory: {', '.join(missing)}", err=True)
        raise typer.Exit(1)
    embedder = Embedder(model_dir or _configured_embedder())
    result = evaluate_retrieval(paths, embedder=embedder, queries_per_script=queries_per_script, query_words=query_words,
                                fusion_weights=(dense_weight, bm25_weight))
    if not result["counts"]["queries"]:
        typer.echo("writersroom: no script with at least two scenes found; nothing to evaluate", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False) if as_json else format_report(result))


def _configured_embedder() -> str:
    from backend.provision import embedder_path
    from config.settings import load_settings

    try:
        return embedder_path(load_settings())
    except Exception as exc:  # SettingsError, or ProvisionError when the model is not fetched yet
        typer.echo(f"writersroom: {exc} (or pass --model-dir)", err=True)
        raise typer.Exit(2)

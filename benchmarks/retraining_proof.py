"""Retraining on real text: corpus scenes imported as approvals, the trainer crosses its
threshold, trains, evaluates and promotes; how long that took and what it bought.

    python benchmarks/retraining_proof.py [--examples 500] [--home DIR] [--keep]
        [--out benchmarks/RESULTS.md] [--chart benchmarks/retraining_proof.png] [KEY=VALUE training overrides]

Run by hand on a quiet machine (needs `writersroom models fetch`). What it does:

1. a fresh HOME (SQLite store, empty registry; the model cache is shared);
2. `--examples` dialogue excerpts of the bundled plays and screenplays
   (never the held-out set; taken across all scripts in turn) imported as approved
   scenes with the feedback importer, as a room migrating its past pages would;
3. the trainer's own scheduler (training.triggers, threshold = --examples, polling
   every 5 s) notices the threshold, trains, runs the evaluation gate and promotes;
4. the time from the last approval stored to the adapter promoted, the held-out
   perplexity (validation split and the fixed corpus screenplay set) and the share of
   valid sampled scenes, base model against the adapter, appended to RESULTS.md; the
   run's report plot copied beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--home", type=Path, default=None, help="HOME for the run (default: a temporary one).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary HOME.")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--chart", type=Path, default=Path(__file__).with_name("retraining_proof.png"))
    parser.add_argument("--max-chars", type=int, default=800,
                        help="Longest imported excerpt (an approved /dialogue scene of 320 tokens is ~1,100).")
    parser.add_argument("--no-write", action="store_true", help="Print the section only (calibration runs).")
    parser.add_argument("overrides", nargs="*", help="training settings, e.g. epochs=1 top_layers=8")
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="writersroom-proof-"))
    os.environ["WRITERSROOM_HOME"] = str(home)
    os.environ.setdefault("WRITERSROOM_MODEL_CACHE_DIR", str(Path.home() / ".writersroom" / "models"))
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from config.settings import load_settings
    from training.corpus_scenes import (
        corpus_scenes,
        feedback_records,
        heldout_scenes,
        spread_over_scripts,
    )
    from training.feedback_format import iter_feedback
    from training.feedback_import import import_lines
    from training.run import _sessions
    from training.triggers import Trainer, build_scheduler

    overrides = {key: _value(value) for key, value in (item.split("=", 1) for item in args.overrides)}
    settings = load_settings(training={"threshold": args.examples, "poll_s": 5.0, **overrides})
    sessions = _sessions(settings)
    # Taken across the scripts in turn, as the held-out set is: the first 500 in script order
    # would be three plays.
    scenes = spread_over_scripts(approvals(corpus_scenes(max_chars=args.max_chars), heldout_scenes(10**6)))
    scenes = scenes[: args.examples]
    lines = [json.dumps(record) for record in feedback_records(scenes)]

    done = threading.Event()
    results = []
    trainer = Trainer(settings, sessions=sessions, on_result=lambda result: (results.append(result), done.set()))
    scheduler = build_scheduler(settings, trainer)
    scheduler.start()
    imported = import_lines(sessions, list(iter_feedback(lines)), source="corpus", room=None, progress=True)
    threshold_at = time.perf_counter()  # the last approval is stored: the threshold is crossed
    print(f"imported {imported.imported} approved scenes; waiting for the trainer", flush=True)
    done.wait()
    seconds = time.perf_counter() - threshold_at
    scheduler.shutdown(wait=False)
    result = results[0]
    print(result.summary())
    section = report(result, settings, seconds=seconds, examples=args.examples, max_chars=args.max_chars,
                     overrides=overrides)
    print(section)
    if not args.no_write:
        with args.out.open("a") as handle:
            handle.write(section)
        if result.report_png:
            shutil.copyfile(result.report_png, args.chart)
    if args.home is None and not args.keep:
        shutil.rmtree(home, ignore_errors=True)


def approvals(scenes: list, heldout: list) -> list:
    """Excerpts cut at another length than the held-out set's: keep none that shares a line of
    dialogue with a held-out excerpt, so the held-out perplexity stays held out."""
    held_lines = {line for scene in heldout for line in _lines(scene.text)}
    return [scene for scene in scenes
            if not scene.heldout and not held_lines & set(_lines(scene.text)) and _prose(scene.text)]


def _prose(text: str) -> bool:
    """Speeches of one paragraph each, as /dialogue writes and rooms approve them. Verse keeps
    its line breaks inside a speech, and an adapter taught those writes the next cue without
    the blank line before it (a pilot run's gate caught exactly that)."""
    for block in text.split("\n\n")[1:]:
        lines = [line for line in block.split("\n") if not line.startswith("(")]
        if len(lines) > 2 and lines[0].isupper():
            return False
    return True


def _lines(text: str) -> list[str]:
    """Lines of speech and action long enough to identify (not headings, cues or "(aside)")."""
    return [line.strip() for line in text.splitlines()
            if len(line.strip()) > 20 and not line.strip().isupper() and not line.strip().startswith("(")]


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def report(result, settings, *, seconds: float, examples: int, max_chars: int, overrides: dict) -> str:
    metrics = result.metrics
    candidate, serving = metrics.get("candidate", {}), metrics.get("serving", {})
    training = metrics.get("training", {})
    t = settings.training
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, CPU only"

    def drop(key: str) -> str:
        base, mine = serving.get(key), candidate.get(key)
        if not base or mine is None:
            return "n/a"
        return f"{base:.2f} → {mine:.2f} (**{(base - mine) / base:.1%} lower**)"

    def valid(scores: dict) -> str:
        return f"{scores.get('valid', 0)}/{scores.get('sampled', 0)}"

    rows = [
        ("approved scenes imported", f"{examples} corpus excerpts of at most {max_chars} characters ({result.train_examples} train, "
                                     f"{result.validation_examples} validation by content hash)"),
        ("outcome", f"{result.status}: {result.version} {'promoted' if result.promoted else 'kept, not promoted'}"),
        ("**threshold → promoted adapter**", f"**{seconds / 60:.1f} min** ({seconds:.0f} s: trainer poll, "
                                             f"training {training.get('seconds', 0):.0f} s, evaluation and publishing "
                                             f"the rest)"),
        ("training", f"{training.get('steps')} optimizer steps, {training.get('train_tokens')} tokens, "
                     f"{training.get('dropped_examples')} example(s) too long"),
        ("held-out perplexity, validation split (base → adapter)", drop("validation_ppl")),
        ("held-out perplexity, corpus screenplay set of "
         f"{t.eval_screenplay_scenes} excerpts (base → adapter)", drop("screenplay_ppl")),
        ("valid sampled scenes, one per prompt, no retries (base → adapter)",
         f"{valid(serving)} → {valid(candidate)}"),
        ("gate", "; ".join(result.reasons)),
    ]
    setup = (f"SmolLM2-135M-Instruct, LoRA r={t.lora_r} alpha={t.lora_alpha} on the top {t.top_layers} layers "
             f"({', '.join(t.target_modules)}), lr {t.learning_rate}, "
             + (f"{t.max_steps} steps" if t.max_steps else f"{t.epochs:g} epoch(s)")
             + f", batch {t.batch_size}×{t.grad_accum}, max_seq_len {t.max_seq_len}, seed {t.seed}"
             + (f"; overrides {overrides}" if overrides else ""))
    lines = [f"\n## Retraining proof — {stamp} — {machine}\n", setup + ".\n", "| measure | result |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines.append("\nPlot: `benchmarks/retraining_proof.png` (the run's own report: loss curve and the gate's measures).\n")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

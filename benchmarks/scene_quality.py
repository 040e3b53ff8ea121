"""Scene quality per generator: the strict judge, loops, fluency and speed, on the held-out prompts.

    python benchmarks/scene_quality.py run --model smollm2-135m-instruct --config constrained
        [--int8] [--prompts N] [--attempts 2] [--batch 8] [--concurrency 8] [--threads 2]
    python benchmarks/scene_quality.py fluency --reference qwen2.5-coder-1.5b-instruct
    python benchmarks/scene_quality.py rejudge [--runs 'PATTERN' ...]   (runs judged by an earlier judge)
    python benchmarks/scene_quality.py report [--runs 'PATTERN' ...] [--out benchmarks/RESULTS.md]
    python benchmarks/preference.py sheet|tally    (a blind pairwise preference between runs)

``run`` sends every prompt of training.eval_prompts.HELDOUT_PROMPTS (no heuristic was tuned
on them) through the bot's own scene loop (screenplay.scene_loop.generate_scene) over the
backend's own engine in process (backend.inprocess.InProcessChat: continuous batching,
grammar-constrained decoding, the degeneration guard), with the same seed per prompt for
every model and configuration, so the comparison is paired. Configurations:

- ``constrained``: the scene grammar and guard, with the worked example (what writers get);
- ``free``: no grammar or guard — the old path (prefill, normalizing, name repair, continuations);
- ``constrained-bare`` / ``free-bare``: the same without the worked example in the prompt.

``--int8`` runs the model with its linear layers in int8 (the backend's ``model.cpu_int8``),
``--max-speeches N`` lets a scene hold at most N speeches (``generation.max_speeches``); the
run is labelled ``<config>-int8`` / ``<config>-Nspeeches``.

Each run writes benchmarks/samples/scene_quality/<model>__<config>.json: every prompt's
verdicts, attempts, tokens, seconds and scene. ``fluency`` scores each kept scene's
dialogue lines (cues and headings are forced by the grammar, so they are left out) by
their perplexity under a reference model — the strongest one provisioned — and adds it to
the files. ``report`` appends the side-by-side table and a plot to RESULTS.md and writes 5
scenes per model to benchmarks/samples/scene_quality/<model>.md for people to read.

Run by hand; models come from `writersroom models fetch --generator NAME`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from screenplay.grammar import MAX_BLOCKS  # noqa: E402 - after the path insert above; the default of max_speeches
from screenplay.judge import JUDGE  # noqa: E402

MODELS_DIR = Path.home() / ".writersroom" / "models"
SAMPLES_DIR = Path(__file__).with_name("samples") / "scene_quality"
CONFIGS = {  # name -> (constrained, worked example)
    "constrained": (True, True),
    "free": (False, True),
    "constrained-bare": (True, False),
    "free-bare": (False, False),
}
SAMPLES_PER_MODEL = 5


class CountingChat:
    """One prompt's view of the shared in-process chat: counts its requests' tokens."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.tokens = 0
        self.requests = 0

    async def complete(self, **request):
        completion = await self.chat.complete(**request)
        self.tokens += completion.completion_tokens
        self.requests += 1
        return completion


def bundled_search():
    """The bundled corpus ranked by words shared with the query: exemplars without an index."""
    from retrieval.bundled import bundled_corpus_dir
    from retrieval.parse import parse_file
    from retrieval.types import SceneHit, SceneRef

    hits = []
    for path in sorted(bundled_corpus_dir().rglob("*")):
        if path.suffix.lower() not in (".fountain", ".xml"):
            continue
        try:
            script = parse_file(path)
        except Exception:  # noqa: BLE001 - a file the parsers refuse is just not in this library
            continue
        for scene in script.scenes:
            text = scene.text()
            hits.append(SceneHit(script.script_id, script.title, 0.0, SceneRef(scene.index, scene.heading, text[:300],
                                                                              text),
                                 f"{script.script_id}#{scene.index}", scene.characters))
    words = [set(re.findall(r"[a-z]+", hit.scene.text.lower())) for hit in hits]

    async def search(query: str, *, k: int = 5):
        wanted = set(re.findall(r"[a-z]{4,}", query.lower()))
        ranked = sorted(range(len(hits)), key=lambda i: -len(wanted & words[i]))
        return [hits[i] for i in ranked[:k]]

    return search


async def run_prompts(chat, model: str, prompts: list[str], *, config: str, sampling: dict, attempts: int,
                      concurrency: int, exemplars: int, exemplar_chars: int, max_speeches: int) -> list[dict]:
    from screenplay.prompting import build_messages, parse_dialogue_request
    from screenplay.scene_loop import generate_scene

    constrained, example = CONFIGS[config]
    search = bundled_search() if exemplars else None
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int, prompt: str) -> dict:
        async with gate:
            request = parse_dialogue_request(prompt)
            shown = await search(request.situation, k=exemplars) if search else []
            messages = build_messages(request, shown, exemplar_chars=exemplar_chars, worked_example=example)
            counting = CountingChat(chat)
            started = time.perf_counter()
            result = await generate_scene(counting, model=model, request=request, messages=messages,
                                          sampling=sampling, exemplars=shown, search=search, max_attempts=attempts,
                                          seed=1000 * number, constrained=constrained, max_speeches=max_speeches)
            seconds = time.perf_counter() - started
        verdicts = [attempt.report for attempt in result.attempts]
        row = {
            "prompt": prompt, "seed": 1000 * number, "seconds": round(seconds, 2), "requests": counting.requests,
            "tokens": counting.tokens, "attempts": len(result.attempts),
            "valid_first": verdicts[0].valid,
            "valid_within_one_retry": any(v.valid for v in verdicts[:2]),
            "valid_final": result.chosen.report.valid,
            "looping_first": verdicts[0].looping, "looping_final": result.chosen.report.looping,
            "problems_first": list(verdicts[0].problems), "problems": list(result.chosen.report.problems),
            "validation": result.chosen.report.as_json(), "copy": bool(result.chosen.copy),
            "prefill": result.prefill, "raw_first": result.attempts[0].raw, "text": result.text,
        }
        print(f"[{number + 1:3d}] {'ok ' if row['valid_final'] else 'BAD'} attempts={row['attempts']} "
              f"{row['seconds']:6.1f}s {row['tokens']:4d} tok  {prompt[:60]}", flush=True)
        return row

    return list(await asyncio.gather(*(one(n, p) for n, p in enumerate(prompts))))


def run(args: argparse.Namespace) -> None:
    import torch

    from backend.generator import ChatGenerator
    from backend.inprocess import InProcessChat
    from config.settings import load_settings
    from screenplay.scene_loop import sampling_parameters
    from training.eval_prompts import HELDOUT_PROMPTS

    if args.threads:
        torch.set_num_threads(args.threads)
    generation = load_settings().generation
    sampling = {**sampling_parameters(generation), **({"max_tokens": args.max_tokens} if args.max_tokens else {})}
    model_dir = args.model_dir or MODELS_DIR / args.model
    started = time.perf_counter()
    generator = ChatGenerator(model_dir, name=args.model, device="cpu", cpu_int8=args.int8)
    served = attach_adapter(generator, args.adapter, base_name=args.model) if args.adapter else args.model
    label = args.config + ("-int8" if args.int8 else "") + (f"-{args.max_speeches}speeches"
                                                             if args.max_speeches != MAX_BLOCKS else "")
    label += f"+{args.adapter.name}" if args.adapter else ""
    load_s = time.perf_counter() - started
    chat = InProcessChat(generator, max_batch=args.batch)
    prompts = HELDOUT_PROMPTS[: args.prompts]
    started = time.perf_counter()
    try:
        rows = asyncio.run(run_prompts(chat, served, prompts, config=args.config, sampling=sampling,
                                       attempts=args.attempts, concurrency=args.concurrency or args.batch,
                                       exemplars=generation.exemplars, exemplar_chars=generation.exemplar_chars,
                                       max_speeches=args.max_speeches))
    finally:
        chat.close()
    wall_s = time.perf_counter() - started
    meta = {"model": args.model, "config": label, "adapter": str(args.adapter) if args.adapter else None,
            "prompts": len(rows), "attempts_allowed": args.attempts,
            "batch": args.batch, "concurrency": args.concurrency or args.batch, "sampling": sampling,
            "wall_s": round(wall_s, 1), "load_s": round(load_s, 1), "tokens": sum(r["tokens"] for r in rows),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "torch_threads": torch.get_num_threads(), "forward_passes": chat.scheduler.engine.forward_passes,
            "judge": JUDGE}
    SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    path = SAMPLES_DIR / f"{run_label(meta)}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(summary(meta, rows), indent=1))
    print(f"wrote {path}")


def attach_adapter(generator, adapter_dir: Path, *, base_name: str) -> str:
    """Serve the LoRA adapter in ``adapter_dir`` (a registry version, or PEFT's two files) as the
    backend does, from a scratch registry; returns the model name requests ask for."""
    import tempfile

    from backend.adapters import serve_from_scratch

    registry = Path(tempfile.mkdtemp(prefix="scene-quality-registry-"))
    serve_from_scratch(generator, registry, {adapter_dir.name: adapter_dir}, base_name=base_name)
    return adapter_dir.name


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, CPU only"


def summary(meta: dict, rows: list[dict]) -> dict:
    n = len(rows)
    valid = sum(r["valid_final"] for r in rows)
    fluency = [r["fluency_ppl"] for r in rows if r.get("fluency_ppl")]
    return {
        "model": meta["model"], "config": meta["config"], "prompts": n,
        "valid_first_pct": round(100 * sum(r["valid_first"] for r in rows) / n, 1),
        "valid_within_one_retry_pct": round(100 * sum(r["valid_within_one_retry"] for r in rows) / n, 1),
        "looping_final_pct": round(100 * sum(r["looping_final"] for r in rows) / n, 1),
        "looping_first_pct": round(100 * sum(r["looping_first"] for r in rows) / n, 1),
        "retries": sum(r["attempts"] - 1 for r in rows),
        "median_s_per_scene": round(statistics.median(r["seconds"] for r in rows), 1),
        "tokens_per_s": round(meta["tokens"] / meta["wall_s"], 1),
        "s_per_valid_scene": round(meta["wall_s"] / valid, 1) if valid else None,
        "median_fluency_ppl": round(statistics.median(fluency), 1) if fluency else None,
        # "*": judged again after the run (rejudge): "within one retry" is then a lower bound
        "judge": meta.get("judge", "strict-v1") + ("*" if meta.get("rejudged") else ""),
        "run": run_label(meta),
    }


def run_label(meta: dict) -> str:
    """A run's name, as its file is named and benchmarks/preference.py keys it: model__config."""
    return f"{meta['model']}__{meta['config']}"


# -- fluency ------------------------------------------------------------------------------


def dialogue_lines(text: str) -> str:
    """The spoken lines of a scene (no heading, cues, parentheticals or action)."""
    from retrieval.document import DIALOGUE
    from retrieval.parse.fountain import parse_elements

    return "\n".join(el.text for el in parse_elements(text) if el.kind == DIALOGUE)


def fluency(args: argparse.Namespace) -> None:
    """Perplexity of each kept scene's dialogue under the reference model (lower reads more like
    language the reference would write)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference_dir = args.reference_dir or MODELS_DIR / args.reference
    tokenizer = AutoTokenizer.from_pretrained(str(reference_dir))
    model = AutoModelForCausalLM.from_pretrained(str(reference_dir), dtype=torch.float32).eval()
    for path in run_files(args.runs):
        data = json.loads(path.read_text())
        if data["meta"].get("fluency_reference") == args.reference and all("fluency_ppl" in r for r in data["rows"]):
            continue  # scored already under this reference
        for row in data["rows"]:
            lines = dialogue_lines(row["text"])
            row["fluency_ppl"] = perplexity(model, tokenizer, lines) if lines else None
        data["meta"]["fluency_reference"] = args.reference
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: median perplexity "
              f"{statistics.median([r['fluency_ppl'] for r in data['rows'] if r['fluency_ppl']] or [0]):.1f}")


def perplexity(model, tokenizer, text: str) -> float:
    import torch

    ids = tokenizer(text, return_tensors="pt").input_ids[:, :512]
    if ids.shape[1] < 2:
        return float("nan")
    with torch.inference_mode():
        loss = model(ids, labels=ids).loss
    return round(math.exp(float(loss)), 2)


# -- rejudge ------------------------------------------------------------------------------


def rejudge(args: argparse.Namespace) -> None:
    """Judge the runs made under an earlier judge again with today's (screenplay.judge.JUDGE).

    The kept scene is judged again as it is. A scene whose first answer passed the old judge
    got no retry, so where the new judge fails it, "valid within one retry" counts it as failed:
    for a re-judged run that column is a lower bound (the retry that would have been asked for
    might have passed). A first answer the old judge failed fails the new one too (the new
    judge only adds rules)."""
    from screenplay.judge import judge_scene
    from screenplay.prompting import parse_dialogue_request

    for path in run_files(args.runs):
        data = json.loads(path.read_text())
        judged_by = data["meta"].get("judge", "strict-v1")
        if judged_by == JUDGE:
            continue
        for row in data["rows"]:
            requested = list(parse_dialogue_request(row["prompt"]).characters)
            if len(requested) < 2:  # the model named the rest before the scene: the cues it was held to
                asked = {name.upper() for name in requested}
                requested += [cue for cue in row["validation"]["cues"] if cue not in asked]
            verdict = judge_scene(row["text"], requested=requested)
            first_is_kept = row["attempts"] == 1
            row["valid_first"] = row["valid_first"] and (verdict.valid if first_is_kept else True)
            row["looping_first"] = verdict.looping if first_is_kept else row["looping_first"]
            row["valid_within_one_retry"] = row["valid_first"] or (not first_is_kept and verdict.valid)
            row["valid_final"], row["looping_final"] = verdict.valid, verdict.looping
            row["problems"], row["validation"] = list(verdict.problems), verdict.as_json()
        data["meta"].update(judge=JUDGE, judged_live_by=judged_by,
                            rejudged=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: judged again by {JUDGE} (live: {judged_by}): {json.dumps(summary(data['meta'], data['rows']))}")


# -- report -------------------------------------------------------------------------------


def run_files(patterns: list[str] | None) -> list[Path]:
    """The run files named by glob patterns over SAMPLES_DIR (``smollm2*__constrained-8speeches``);
    every run when none is given."""
    found = {path for pattern in (patterns or ["*"]) for path in SAMPLES_DIR.glob(pattern + ".json")}
    return sorted(path for path in found if "__" in path.name)


def report(args: argparse.Namespace) -> None:
    runs = [json.loads(path.read_text()) for path in run_files(args.runs)]
    if not runs:
        raise SystemExit(f"no runs in {SAMPLES_DIR}; run `scene_quality.py run` first")
    rows = [summary(run["meta"], run["rows"]) for run in runs]
    reference = {run["meta"].get("fluency_reference") for run in runs} - {None}
    preference_file = SAMPLES_DIR / "preference.json"  # benchmarks/preference.py tally
    preferred = json.loads(preference_file.read_text())["win_share"] if preference_file.exists() else {}
    header = ("| model | config | prompts | valid, first answer | valid within one retry | looping (kept) | "
              "retries | median s/scene | tok/s | s per valid scene | fluency ppl (median) | preferred (blind pairs) | "
              "judge |")
    lines = [f"\n## Scene quality per generator, held-out prompts — {datetime.now(timezone.utc):%Y-%m-%d} — "
             f"{runs[0]['meta']['machine']}\n",
             "Strict judge (screenplay/judge.py) on training.eval_prompts.HELDOUT_PROMPTS, the same seeds for every "
             "model and configuration; `constrained` is what writers get (scene grammar + degeneration guard, "
             "worked example), `free` the old unconstrained path, `-bare` without the worked example. "
             f"Fluency: perplexity of the kept scenes' dialogue lines under {', '.join(sorted(reference)) or '(not scored)'}"
             " (lower is better). Samples: benchmarks/samples/scene_quality/.\n", header,
             "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['config']} | {row['prompts']} | {row['valid_first_pct']}% | "
                     f"{row['valid_within_one_retry_pct']}% | {row['looping_final_pct']}% | {row['retries']} | "
                     f"{row['median_s_per_scene']} | {row['tokens_per_s']} | {row['s_per_valid_scene']} | "
                     f"{row['median_fluency_ppl']} | {share(preferred.get(row['run']))} | "
                     f"{row['judge']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with args.out.open("a") as handle:
        handle.write(text)
    plot(rows, args.chart, preferred)
    for run in runs:
        if run["meta"]["config"] == args.samples_config:
            write_samples(run)


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def plot(rows: list[dict], path: Path, preferred: dict[str, float] | None = None) -> None:
    """Validity against seconds per valid scene; beside it, when a blind preference was run, the
    share of comparisons each run won against the same seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row["s_per_valid_scene"] is not None]
    panels = [("valid_within_one_retry_pct", "strict judge: valid within one retry (%)", 95.0)]
    if preferred:
        panels.append(("preferred_pct", "blind pairwise preference: comparisons won (%)", None))
        for row in shown:
            share_won = preferred.get(row["run"])
            row["preferred_pct"] = None if share_won is None else 100 * share_won
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for axis, (key, label, target) in zip(axes[0], panels):
        for row in shown:
            if row.get(key) is None:
                continue
            marker = "o" if row["config"].startswith("constrained") else "x"
            axis.scatter(row["s_per_valid_scene"], row[key], marker=marker, s=60)
            axis.annotate(f"{row['model']}\n{row['config']}", (row["s_per_valid_scene"], row[key]),
                          fontsize=7, xytext=(4, 4), textcoords="offset points")
        if target is not None:
            axis.axhline(target, color="#c0392b", linestyle="--", linewidth=1, label=f"target {target:.0f}%")
            axis.legend(loc="center left")
        axis.set_xscale("log")
        axis.set_xlabel("seconds per valid scene (batched, 2 cores; log)")
        axis.set_ylabel(label)
        axis.set_ylim(0, 105)
    axes[0][0].set_title("Scene quality per second, held-out prompts", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_samples(run: dict) -> None:
    meta, rows = run["meta"], run["rows"]
    lines = [f"# {meta['model']}: {SAMPLES_PER_MODEL} scenes, `{meta['config']}`, {meta['date']}", "",
             "The first prompts of the held-out set, as the strict judge saw them "
             f"(all {len(rows)} are in {meta['model']}__{meta['config']}.json).", ""]
    for number, row in enumerate(rows[:SAMPLES_PER_MODEL], 1):
        verdict = "passes the strict judge" if row["valid_final"] else "FAILS: " + "; ".join(row["problems"])
        ppl = f"; dialogue perplexity {row['fluency_ppl']}" if row.get("fluency_ppl") else ""
        lines += [f"## {number}. {row['prompt']}", "", f"{verdict}; {row['attempts']} attempt(s), "
                  f"{row['seconds']} s{ppl}", "", "```fountain", row["text"].strip(), "```", ""]
    (SAMPLES_DIR / f"{meta['model']}.md").write_text("\n".join(lines))


def add_runs_argument(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--runs", nargs="*", default=None,
                        help=f"Glob patterns of run names (model__config) to {verb}; default: all.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="Generate a scene per held-out prompt with one model and config.")
    run_parser.add_argument("--model", default="smollm2-135m-instruct")
    run_parser.add_argument("--model-dir", type=Path, default=None)
    run_parser.add_argument("--config", choices=sorted(CONFIGS), default="constrained")
    run_parser.add_argument("--int8", action="store_true", help="Linear layers in int8 (the backend's model.cpu_int8).")
    run_parser.add_argument("--max-speeches", type=int, default=MAX_BLOCKS,
                            help="Most speeches the grammar allows (generation.max_speeches; labelled when not 12).")
    run_parser.add_argument("--adapter", type=Path, default=None,
                            help="A LoRA adapter directory (a registry version) to serve on the model.")
    run_parser.add_argument("--prompts", type=int, default=None, help="The first N held-out prompts (default: all 50).")
    run_parser.add_argument("--attempts", type=int, default=2, help="Whole scenes per prompt (2: first answer + one retry).")
    run_parser.add_argument("--batch", type=int, default=8, help="Rows the engine decodes together.")
    run_parser.add_argument("--concurrency", type=int, default=None, help="Prompts in flight (default: --batch).")
    run_parser.add_argument("--max-tokens", type=int, default=None, help="Default: settings.generation.max_tokens.")
    run_parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    fluency_parser = commands.add_parser("fluency", help="Score every run's scenes under a reference model.")
    fluency_parser.add_argument("--reference", default="qwen2.5-coder-1.5b-instruct")
    fluency_parser.add_argument("--reference-dir", type=Path, default=None)
    add_runs_argument(fluency_parser, "score")
    rejudge_parser = commands.add_parser("rejudge", help="Judge runs made under an earlier judge again.")
    add_runs_argument(rejudge_parser, "judge again")
    report_parser = commands.add_parser("report", help="Append the table and plot to RESULTS.md; write samples.")
    report_parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    add_runs_argument(report_parser, "report")
    report_parser.add_argument("--samples-config", default="constrained-8speeches",
                               help="The configuration whose scenes go to <model>.md for people to read.")
    report_parser.add_argument("--chart", type=Path, default=Path(__file__).with_name("scene_quality.png"))
    args = parser.parse_args(argv)
    {"run": run, "fluency": fluency, "rejudge": rejudge, "report": report}[args.command](args)


if __name__ == "__main__":
    main()

"""How often /dialogue yields valid Fountain with every requested character, on the real model.

    python benchmarks/fountain_validity.py [--split heldout|tuning] [--prompts N] [--max-tokens 200]
        [--attempts 3] [--batch 8] [--no-repeat-ngram-size N] [--exemplars 2] [--out benchmarks/RESULTS.md]
        [--chart benchmarks/fountain_validity.png] [--samples benchmarks/samples/fountain_validity_heldout.json]
        [--log run.jsonl]   # then, if the run had to be stopped: the same options plus --summarize run.jsonl

Measures on training.eval_prompts.HELDOUT_PROMPTS by default: requests no heuristic was
tuned on (none holds a word of config/screenplay_words.toml's lists). ``--split tuning``
runs TUNING_PROMPTS, the 100 the word lists were fitted to: in-sample, for tuning only, and
labelled so in the report. ``--prompts N`` takes the split's first N.

Run by hand (needs `writersroom models fetch`; matplotlib for the chart). Each prompt goes
through the same loop as the bot (screenplay.scene_loop.generate_scene: prompt with prefill ->
model -> normalize -> validate -> repair -> retry -> copy guard) with SmolLM2-135M-Instruct
loaded in-process by transformers instead of over HTTP. Exemplars come from the bundled
corpus ranked by shared words (the FAISS index would need a 3-minute ingest first).
Prompts run concurrently and their requests are batched, as the backend's scheduler will.
Appends a dated section to RESULTS.md, saves a bar chart, and keeps every prompt's scene for
people to read in benchmarks/samples/ (JSON, and the same as Markdown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_DIR = Path.home() / ".writersroom" / "models" / "smollm2-135m-instruct"
SAMPLES_DIR = Path(__file__).with_name("samples")

from training.eval_prompts import SPLITS  # noqa: E402 - after the sys.path line

# How each split is named in the report: a reader must see at once whether a figure is in-sample.
SPLIT_LABELS = {
    "heldout": "held-out prompts (training.eval_prompts.HELDOUT_PROMPTS: no heuristic tuned on them)",
    "tuning": "TUNING prompts, IN-SAMPLE (the word lists in config/screenplay_words.toml were fitted to them)",
}


@dataclass
class _Pending:
    messages: list
    sampling: dict
    future: asyncio.Future


class LocalChat:
    """SmolLM2 in-process behind the ChatClient's `complete`, batching concurrent requests.

    Honours `continue_final_message` the way vLLM does: the last assistant message is left
    open and only the continuation comes back. One seed per batch (the first request's).
    """

    def __init__(self, model_dir: Path, *, batch: int, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.batch = batch
        self.queue: list[_Pending] = []
        self.tokens = 0
        self.generations = 0
        self._lock = threading.Lock()
        self._worker: asyncio.Task | None = None

    async def complete(self, *, model: str, messages: list[dict[str, str]], **sampling):
        future = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(messages, sampling, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.queue:
            await asyncio.sleep(0.05)  # let the other prompts' requests arrive
            taken, self.queue = self.queue[: self.batch], self.queue[self.batch:]
            try:
                results = await asyncio.to_thread(self._generate, taken)
            except Exception as exc:  # noqa: BLE001 - hand the failure to every waiter
                for pending in taken:
                    pending.future.set_exception(exc)
                continue
            for pending, result in zip(taken, results):
                pending.future.set_result(result)

    def _encode(self, messages: list[dict[str, str]], cont: bool) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, continue_final_message=cont,
                                                     add_generation_prompt=not cont, tokenize=True)
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    def _generate(self, taken: list[_Pending]):
        import torch

        from llm.client import Completion

        first = taken[0].sampling
        ids = [self._encode(p.messages, bool(p.sampling.get("continue_final_message"))) for p in taken]
        width = max(map(len, ids))
        pad = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        inputs = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        max_tokens = max(int(p.sampling.get("max_tokens", 200)) for p in taken)
        with self._lock, torch.inference_mode():
            if first.get("seed") is not None:
                torch.manual_seed(int(first["seed"]))
            output = self.model.generate(
                inputs, attention_mask=mask, max_new_tokens=max_tokens, do_sample=True,
                temperature=first.get("temperature", 0.7), top_p=first.get("top_p", 0.9),
                repetition_penalty=first.get("repetition_penalty", 1.0),
                no_repeat_ngram_size=first.get("no_repeat_ngram_size", 0), pad_token_id=pad,
            )
        results = []
        for row in output:
            new = row[width:].tolist()
            ended = self.tokenizer.eos_token_id in new
            if ended:
                new = new[: new.index(self.tokenizer.eos_token_id) + 1]
            self.tokens += len(new)
            self.generations += 1
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            results.append(Completion(text=text, model="smollm2-135m-instruct",
                                      finish_reason="stop" if ended else "length",
                                      prompt_tokens=width, completion_tokens=len(new)))
        return results


class BundledSearch:
    """The bundled corpus ranked by words shared with the query (no embedder, no index)."""

    def __init__(self) -> None:
        from retrieval.bundled import bundled_corpus_dir
        from retrieval.parse import parse_file
        from retrieval.types import SceneHit, SceneRef

        self.hits = []
        for path in sorted(bundled_corpus_dir().rglob("*")):
            if path.suffix.lower() not in (".fountain", ".xml"):
                continue
            try:
                script = parse_file(path)
            except Exception:  # noqa: BLE001 - a file the parsers refuse is just not in this library
                continue
            for scene in script.scenes:
                text = scene.text()
                self.hits.append(SceneHit(script.script_id, script.title, 0.0,
                                          SceneRef(scene.index, scene.heading, text[:300], text),
                                          f"{script.script_id}#{scene.index}", scene.characters))
        self.words = [set(re.findall(r"[a-z]+", hit.scene.text.lower())) for hit in self.hits]

    def search(self, query: str, *, k: int = 5):
        query_words = set(re.findall(r"[a-z]{4,}", query.lower()))
        ranked = sorted(range(len(self.hits)), key=lambda i: -len(query_words & self.words[i]))
        return [self.hits[i] for i in ranked[:k]]


async def run_prompts(chat: LocalChat, searcher: BundledSearch | None, prompts: list[str], *, sampling: dict,
                      exemplars: int, exemplar_chars: int, attempts: int, concurrency: int,
                      log: Path | None = None) -> list[dict]:
    from screenplay.prompting import build_messages, parse_dialogue_request
    from screenplay.scene_loop import generate_scene

    gate = asyncio.Semaphore(concurrency)

    async def search(query: str, *, k: int):
        return searcher.search(query, k=k) if searcher else []

    async def one(number: int, prompt: str) -> dict:
        async with gate:
            request = parse_dialogue_request(prompt)
            shown = await search(request.situation, k=exemplars) if exemplars else []
            messages = build_messages(request, shown, exemplar_chars=exemplar_chars)
            started = time.perf_counter()
            result = await generate_scene(chat, model="smollm2-135m-instruct", request=request, messages=messages,
                                          sampling=sampling, exemplars=shown, search=search if searcher else None,
                                          max_attempts=attempts, seed=1000 * number)
            first = result.attempts[0]
            row = {
                "prompt": prompt, "seconds": round(time.perf_counter() - started, 1),
                "attempts": len(result.attempts), "valid_raw_first": first.before_repair.valid,
                "valid_repaired_first": first.report.valid, "valid_final": result.chosen.report.valid,
                "copy_final": bool(result.chosen.copy), "copy_any": any(a.copy for a in result.attempts),
                "problems": list(result.chosen.report.problems), "prefill": result.prefill,
                "raw_first": first.raw, "text": result.text,
            }
            if log:  # one line per finished prompt: a run stopped half way still has its numbers
                with log.open("a") as handle:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"[{number + 1:3d}] {'ok ' if row['valid_final'] else 'BAD'} attempts={row['attempts']} "
                  f"{row['seconds']:6.1f}s  {prompt[:70]}", flush=True)
            return row

    return list(await asyncio.gather(*(one(n, p) for n, p in enumerate(prompts))))


def share(rows: list[dict], key: str) -> float:
    return 100.0 * sum(1 for row in rows if row[key]) / len(rows)


def save_chart(rows: list[dict], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return False
    stages = ["first answer,\nnormalized", "after name\nrepair", "after retries"]
    values = [share(rows, "valid_raw_first"), share(rows, "valid_repaired_first"), share(rows, "valid_final")]
    figure, axis = plt.subplots(figsize=(6, 4))
    bars = axis.bar(stages, values, color=["#b0b0b0", "#7aa6c2", "#2f6f99"])
    axis.axhline(95, color="#c0392b", linestyle="--", linewidth=1, label="target 95%")
    axis.bar_label(bars, labels=[f"{v:.0f}%" for v in values])
    axis.set_ylim(0, 105)
    axis.set_ylabel("valid Fountain with all requested characters (%)")
    axis.set_title(title, fontsize=9)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> None:
    from config.settings import load_settings

    generation = load_settings().generation
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(SPLITS), default="heldout",
                        help="Which prompt set: heldout (default; nothing was tuned on it) or tuning (in-sample).")
    parser.add_argument("--prompts", type=int, default=None, help="How many of the split's prompts to run, from the "
                        "first (default: all).")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--attempts", type=int, default=None, help="Generations per prompt (default: MAX_ATTEMPTS).")
    parser.add_argument("--batch", type=int, default=8, help="Requests generated together.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--temperature", type=float, default=generation.temperature)
    parser.add_argument("--repetition-penalty", type=float, default=generation.repetition_penalty)
    parser.add_argument("--no-repeat-ngram-size", type=int, default=generation.no_repeat_ngram_size)
    parser.add_argument("--exemplars", type=int, default=generation.exemplars)
    parser.add_argument("--exemplar-chars", type=int, default=generation.exemplar_chars)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--chart", type=Path, default=Path(__file__).with_name("fountain_validity.png"))
    parser.add_argument("--samples", type=Path, default=None,
                        help="Where every prompt's outcome and scene go, as JSON and beside it as Markdown "
                             "(default: benchmarks/samples/fountain_validity_<split>.json).")
    parser.add_argument("--log", type=Path, default=None, help="Append each prompt's outcome as a JSON line as it ends.")
    parser.add_argument("--summarize", type=Path, default=None,
                        help="Only report the --log of a stopped run (give the run's other options again).")
    parser.add_argument("--wall-s", type=float, default=None, help="With --summarize: how long the run ran.")
    args = parser.parse_args(argv)
    args.samples = args.samples or SAMPLES_DIR / f"fountain_validity_{args.split}.json"

    from screenplay.scene_loop import MAX_ATTEMPTS

    attempts = args.attempts or MAX_ATTEMPTS
    if args.summarize:
        summarize_log(args, attempts)
        return
    sampling = {"temperature": args.temperature, "top_p": generation.top_p,
                "repetition_penalty": args.repetition_penalty, "no_repeat_ngram_size": args.no_repeat_ngram_size,
                "max_tokens": args.max_tokens}
    started = time.perf_counter()
    chat = LocalChat(args.model_dir, batch=args.batch, threads=args.threads)
    searcher = BundledSearch() if args.exemplars else None
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    prompts = SPLITS[args.split][: args.prompts]
    rows = asyncio.run(run_prompts(chat, searcher, prompts, sampling=sampling, exemplars=args.exemplars,
                                   exemplar_chars=args.exemplar_chars, attempts=attempts, concurrency=args.batch,
                                   log=args.log))
    wall_s = time.perf_counter() - started

    timing = (f"{wall_s:.0f} s for {chat.generations} generations, {chat.tokens} tokens "
              f"({chat.tokens / wall_s:.1f} tok/s batched); {wall_s / len(rows):.1f} s per prompt; model load {load_s:.1f} s")
    write_report(rows, args, attempts=attempts, timing=timing)


def write_report(rows: list[dict], args: argparse.Namespace, *, attempts: int, timing: str, note: str = "") -> None:
    """Append the section to RESULTS.md, save the chart and (optionally) the samples."""
    from screenplay.scene_loop import CONTINUATION_TRIES

    attempt_counts = [row["attempts"] for row in rows]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, CPU only"
    setup = (f"SmolLM2-135M-Instruct, max_tokens {args.max_tokens}, temperature {args.temperature}, "
             f"repetition_penalty {args.repetition_penalty}, no_repeat_ngram_size {args.no_repeat_ngram_size}, "
             f"{args.exemplars} exemplar(s) from the bundled corpus, up to {attempts} whole scene(s) per prompt, a scene "
             f"whose only flaw is a silent requested character continued with that cue written (up to "
             f"{CONTINUATION_TRIES} tries per character), batch {args.batch}")
    with_characters = sum(1 for r in rows if "characters:" in r["prompt"].lower())
    table = [
        ("prompt set", SPLIT_LABELS[args.split]),
        ("prompts", f"{len(rows)} of the set's {len(SPLITS[args.split])} ({with_characters} with 1-3 requested characters)"),
        ("valid, first answer normalized (before repair)", f"{share(rows, 'valid_raw_first'):.0f}%"),
        ("valid, first answer after name repair", f"{share(rows, 'valid_repaired_first'):.0f}%"),
        (f"valid after continuations and retries (up to {attempts} scenes)", f"{share(rows, 'valid_final'):.0f}%"),
        ("requests per prompt", f"mean {statistics.mean(attempt_counts):.2f}, max {max(attempt_counts)} "
                                f"(continuations and copy-guard regenerations included)"),
        ("copy guard", f"{sum(r['copy_any'] for r in rows)} prompt(s) hit, {sum(r['copy_final'] for r in rows)} "
                       f"still copying at the end"),
        ("time", timing),
    ]
    section = [f"\n## Fountain validity, {args.split} prompts — {stamp} — {machine}\n",
               setup + "." + (f" {note}" if note else "") + "\n",
               "| measure | result |", "|---|---|"]
    section += [f"| {name} | {value} |" for name, value in table]
    failures = [row for row in rows if not row["valid_final"]]
    if failures:
        section.append("\nStill invalid: " + "; ".join(f"`{row['prompt'][:50]}` ({', '.join(row['problems'])})"
                                                       for row in failures[:8]) + ("; …" if len(failures) > 8 else ""))
    text = "\n".join(section) + "\n"
    print(text)
    if not args.out.exists():
        args.out.write_text("# Benchmark results\n\nEach section: what ran, on which machine, when.\n")
    with args.out.open("a") as handle:
        handle.write(text)
    save_chart(rows, args.chart, f"/dialogue Fountain validity, {len(rows)} {args.split} prompts ({stamp})")
    write_samples(rows, args.samples, title=f"Fountain validity samples, {SPLIT_LABELS[args.split]}, {stamp}")


def write_samples(rows: list[dict], path: Path, *, title: str) -> None:
    """Every prompt's outcome as JSON, and the scenes as Markdown beside it for people to read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    lines = [f"# {title}", "", f"Written by benchmarks/fountain_validity.py; the data is {path.name}.", ""]
    for number, row in enumerate(rows, 1):
        verdict = "valid" if row["valid_final"] else "INVALID: " + "; ".join(row["problems"])
        first = "yes" if row["valid_raw_first"] else "no"
        outcome = f"{verdict}; {row['attempts']} request(s); first answer valid before repair: {first}"
        lines += [f"## {number}. {row['prompt']}", "", outcome, "", "```fountain", row["text"].strip(), "```", ""]
    path.with_suffix(".md").write_text("\n".join(lines))


def summarize_log(args: argparse.Namespace, attempts: int) -> None:
    """Report a run that was stopped: the longest run of prompts, from the first, that all finished
    (later ones finished out of order, and the quick ones first, which would flatter the numbers)."""
    finished = {}
    for line in args.summarize.read_text().splitlines():
        row = json.loads(line)
        finished[row["prompt"]] = row
    rows = []
    prompts = SPLITS[args.split][: args.prompts]
    for prompt in prompts:
        if prompt not in finished:
            break
        rows.append(finished[prompt])
    if not rows:
        raise SystemExit("no prompt finished in order; nothing to report")
    note = (f"PARTIAL: stopped by hand; {len(rows)} of {len(prompts)} prompts counted (the first {len(rows)}, "
            f"all finished; {len(finished)} had finished in all).")
    timing = (f"{args.wall_s:.0f} s wall for {len(finished)} finished prompts "
              f"({args.wall_s / len(finished):.0f} s per prompt; 2 shared cores)" if args.wall_s else
              f"mean {statistics.mean(r['seconds'] for r in rows):.0f} s per prompt, {args.batch} at a time")
    write_report(rows, args, attempts=attempts, timing=timing, note=note)


if __name__ == "__main__":
    main()

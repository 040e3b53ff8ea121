"""Throughput and latency of the batching backend against sequential `model.generate`.

    python benchmarks/backend_throughput.py [--clients 1 4 16] [--rounds 2] [--baseline 4]
        [--max-tokens 128] [--constrained] [--device cpu|cuda|auto] [--model DIR] [--out benchmarks/RESULTS.md]

Run by hand (needs `writersroom models fetch`, or --model). The backend app is served
in-process by uvicorn on loopback; for each client count, that many clients each send
--rounds /dialogue-like requests back to back through the bot's own HTTP client. The
baseline is the same kind of prompt through `model.generate`, one at a time, with the
same sampling settings, in slices between the backend runs. --constrained sends every
backend request as the bot does: under the scene grammar with the degeneration guard
(screenplay.grammar; the baseline stays unconstrained). Appends a dated section to
RESULTS.md and, when matplotlib is installed, draws benchmarks/backend_throughput.png.
On a GPU host: benchmarks/gpu_backend.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SITUATIONS = [
    "a detective corners her former partner in a rainy alley characters: Maya, Cole tone: tense",
    "two sisters argue about selling the family farm characters: June, Rose",
    "a chef confesses to burning the wedding cake characters: Luis, Priya tone: comic",
    "a pilot refuses to fly into the storm characters: Ada, Marcus",
]
SAMPLING = dict(temperature=0.7, top_p=0.9, repetition_penalty=1.15)


@dataclass
class Level:
    name: str
    requests: int
    tokens: int
    wall_s: float
    latencies: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def dialogue_messages(number: int) -> list[dict[str, str]]:
    from screenplay.prompting import build_messages, parse_dialogue_request

    return build_messages(parse_dialogue_request(SITUATIONS[number % len(SITUATIONS)]), [], exemplar_chars=600)


def scene_fields(number: int) -> dict:
    """The grammar and guard the bot sends for this prompt (the heading left to the model)."""
    from screenplay.grammar import SceneShape
    from screenplay.prompting import parse_dialogue_request
    from screenplay.vocabulary import judge_words

    words = judge_words()
    shape = SceneShape.for_request(parse_dialogue_request(SITUATIONS[number % len(SITUATIONS)]), heading=None,
                                   not_name_words=words.not_name_words, sentence_words=words.sentence_words)
    return shape.request_fields(shape.guard())


def run_clients(url: str, model: str, clients: int, rounds: int, max_tokens: int, *,
                constrained: bool = False) -> Level:
    from llm.client import ChatClient

    chat = ChatClient(f"{url}/v1", silence_timeout_s=3600, retries=0)
    latencies: list[float] = []
    tokens = 0

    async def one_client(client_number: int) -> None:
        nonlocal tokens
        for round_number in range(rounds):
            started = time.perf_counter()
            number = client_number + round_number
            extra = scene_fields(number) if constrained else {}
            completion = await chat.complete(model=model, messages=dialogue_messages(number),
                                             max_tokens=max_tokens, seed=1000 * client_number + round_number,
                                             **SAMPLING, **extra)
            latencies.append(time.perf_counter() - started)
            tokens += completion.completion_tokens

    async def everyone() -> None:
        await asyncio.gather(*(one_client(number) for number in range(clients)))

    started = time.perf_counter()
    asyncio.run(everyone())
    return Level(f"backend, {clients} concurrent", clients * rounds, tokens, time.perf_counter() - started, latencies)


def run_sequential_generate(generator, requests: int, max_tokens: int, *, first: int = 0) -> Level:
    import torch

    latencies: list[float] = []
    tokens = 0
    started = time.perf_counter()
    for number in range(first, first + requests):
        prompt = generator.encode_prompt(dialogue_messages(number), max_tokens)
        ids = torch.tensor([prompt], device=generator.device)
        began = time.perf_counter()
        torch.manual_seed(number)
        with torch.inference_mode():
            output = generator.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                              do_sample=True, pad_token_id=generator.pad_id, **SAMPLING)
        latencies.append(time.perf_counter() - began)
        tokens += output.shape[1] - len(prompt)
    return Level("sequential model.generate", requests, tokens, time.perf_counter() - started, latencies)


def machine(device: str) -> str:
    if device == "cuda":
        import torch

        return f"{platform.machine()}, {torch.cuda.get_device_name(0)}, {platform.python_version()}"
    load = ", load avg %.1f at start" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, CPU only{load}"


def report(levels: list[Level], baseline: Level, args, where: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n## Backend throughput — {stamp} — {where}\n",
             f"SmolLM2-135M-Instruct, /dialogue prompts, max_tokens {args.max_tokens}, temperature 0.7, top_p 0.9, "
             f"repetition_penalty 1.15; max_batch {args.max_batch}, batch_wait_ms {args.batch_wait_ms}; "
             f"{'backend requests under the scene grammar and degeneration guard' if args.constrained else 'unconstrained'}. "
             f"Latency percentiles over few requests are rough.\n",
             "| run | requests | tokens | wall s | tokens/s | × sequential | × backend at 1 client "
             "| latency p50 s | latency p99 s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for level in [baseline, *levels]:
        lines.append(f"| {level.name} | {level.requests} | {level.tokens} | {level.wall_s:.1f} | "
                     f"{level.tokens_per_s:.1f} | {level.tokens_per_s / baseline.tokens_per_s:.2f} | "
                     f"{level.tokens_per_s / levels[0].tokens_per_s:.2f} | "
                     f"{float(np.percentile(level.latencies, 50)):.1f} | {float(np.percentile(level.latencies, 99)):.1f} |")
    return "\n".join(lines) + "\n"


def plot(levels: list[Level], baseline: Level, clients: list[int], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot drawn"
    figure, (speed, latency) = plt.subplots(1, 2, figsize=(10, 4))
    labels = [str(count) for count in clients]
    speed.bar(labels, [level.tokens_per_s for level in levels], color="tab:blue", label="batching backend")
    speed.axhline(baseline.tokens_per_s, color="tab:red", linestyle="--", label="sequential model.generate")
    speed.set(xlabel="concurrent clients", ylabel="tokens/s (all clients)", title="Throughput")
    speed.legend()
    latency.plot(labels, [float(np.percentile(level.latencies, 50)) for level in levels], marker="o", label="p50")
    latency.plot(labels, [float(np.percentile(level.latencies, 99)) for level in levels], marker="o", label="p99")
    latency.set(xlabel="concurrent clients", ylabel="seconds per request", title="Latency")
    latency.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return f"plot saved to {path}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=2, help="requests each client sends, one after another")
    parser.add_argument("--baseline", type=int, default=4, help="prompts for sequential model.generate (>= 1)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--constrained", action="store_true",
                        help="backend requests under the scene grammar and degeneration guard, as the bot sends them")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=20.0)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the provisioned SmolLM2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("backend_throughput.png"))
    args = parser.parse_args(argv)

    from backend.app import create_app
    from backend.generator import ChatGenerator
    from emulators.servers import serve_asgi

    if args.model is None:
        from backend.provision import fetch_all

        args.model = fetch_all(Path.home() / ".writersroom" / "models", say=lambda _: None)["generator"]
    generator = ChatGenerator(args.model, name="smollm2-135m-instruct", device=args.device)
    where = machine(generator.device)
    print(f"model on {generator.device}: {where}", flush=True)
    generator.generate(dialogue_messages(0), _warm_up_params())  # first calls pay one-off set-up costs
    run_sequential_generate(generator, 1, 4)

    # The baseline runs in slices between the backend's levels (before the first, between
    # each, after the last): on a shared machine the load drifts by several times within
    # minutes, and the ratio should not hinge on when the baseline happened to run.
    slices = _split(args.baseline, len(args.clients) + 1)
    parts = [run_sequential_generate(generator, slices[0], args.max_tokens)]
    levels = []
    app = create_app(generator, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, max_queue=1024,
                     queue_timeout_s=3600)
    with serve_asgi(app) as url:
        if args.constrained:  # the first grammar builds the tokenizer's vocabulary for the matcher, once
            run_clients(url, generator.name, 1, 1, 4, constrained=True)
        for number, clients in enumerate(args.clients, start=1):
            level = run_clients(url, generator.name, clients, args.rounds, args.max_tokens,
                                constrained=args.constrained)
            levels.append(level)
            print(f"{level.name}: {level.tokens_per_s:.1f} tok/s, p50 {float(np.percentile(level.latencies, 50)):.1f} s "
                  f"(largest batch so far {app.state.scheduler.stats.largest_batch})", flush=True)
            parts.append(run_sequential_generate(generator, slices[number], args.max_tokens,
                                                 first=sum(slices[:number])))
    app.state.scheduler.close()
    baseline = Level(parts[0].name, sum(part.requests for part in parts), sum(part.tokens for part in parts),
                     sum(part.wall_s for part in parts), [lat for part in parts for lat in part.latencies])
    print(f"{baseline.name}: {baseline.tokens_per_s:.1f} tok/s", flush=True)

    text = report(levels, baseline, args, where)
    plotted = plot(levels, baseline, args.clients, args.plot)
    text += f"\n{plotted}.\n"
    print(text)
    if not args.out.exists():
        args.out.write_text("# Benchmark results\n\nEach section: what ran, on which machine, when.\n")
    with args.out.open("a") as handle:
        handle.write(text)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _warm_up_params():
    from backend.sampling import SamplingParams

    return SamplingParams(max_tokens=4, **SAMPLING)


if __name__ == "__main__":
    main()

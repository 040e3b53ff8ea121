"""Foundation numbers on this machine: first-run ingest of the bundled corpus, /similar
latency, and single-client generation speed of the default model through the backend.

    python benchmarks/foundation.py [--queries 20] [--scenes 3] [--out benchmarks/RESULTS.md]

Run by hand (needs `writersroom models fetch`); appends a dated section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUERIES = [
    "a preacher warns his flock about fire", "a robot argues with a dinosaur", "lovers quarrel about money",
    "a soldier returns home from war", "a father forbids his daughter's marriage", "a ghost visits at midnight",
    "a con man sells a fake cure", "two friends plan an escape", "a king doubts his heir", "a maid overhears a plot",
]
SITUATIONS = [
    "a detective corners her former partner in a rainy alley characters: Maya, Cole tone: tense",
    "two sisters argue about selling the family farm characters: June, Rose",
    "a chef confesses to burning the wedding cake characters: Luis, Priya tone: comic",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args(argv)

    from backend.app import create_app
    from backend.generator import ChatGenerator
    from backend.provision import fetch_all
    from emulators.servers import serve_asgi
    from llm.client import ChatClient
    from retrieval.bundled import bundled_corpus_dir
    from retrieval.embed import Embedder
    from retrieval.ingest import ingest_paths
    from retrieval.search import SceneSearcher
    from screenplay.prompting import build_messages, parse_dialogue_request

    models = fetch_all(Path.home() / ".writersroom" / "models", say=lambda _: None)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as index_dir:
        embedder = Embedder(models["embedder"])
        started = time.perf_counter()
        report = ingest_paths([bundled_corpus_dir()], index_dir=Path(index_dir), embedder=embedder, progress=True)
        ingest_s = time.perf_counter() - started
        rows.append(("first-run ingest of the bundled corpus",
                     f"{report.files_seen} files, {report.scenes} scenes, {report.chunks} chunks in {ingest_s:.1f} s "
                     f"({report.chunks / ingest_s:.1f} chunks/s)"))
        started = time.perf_counter()
        again = ingest_paths([bundled_corpus_dir()], index_dir=Path(index_dir), embedder=embedder, progress=False)
        rows.append(("re-ingest, nothing changed", f"{again.scripts_unchanged} unchanged in {time.perf_counter() - started:.2f} s"))
        searcher = SceneSearcher(Path(index_dir), embedder)
        searcher.search("warm up", k=5)
        latencies = []
        for number in range(args.queries):
            started = time.perf_counter()
            searcher.search(QUERIES[number % len(QUERIES)], k=5)
            latencies.append((time.perf_counter() - started) * 1000)
        rows.append(("/similar search (k=5)", f"p50 {float(np.percentile(latencies, 50)):.1f} ms, p99 {float(np.percentile(latencies, 99)):.1f} ms "
                     f"over {args.queries} queries"))

    started = time.perf_counter()
    generator = ChatGenerator(models["generator"], name="smollm2-135m-instruct", device="cpu")
    rows.append(("generator load (safetensors)", f"{time.perf_counter() - started:.1f} s"))
    with serve_asgi(create_app(generator)) as url:
        client = ChatClient(f"{url}/v1", silence_timeout_s=600)
        speeds, latencies = [], []
        for number in range(args.scenes):
            messages = build_messages(parse_dialogue_request(SITUATIONS[number % len(SITUATIONS)]), [], exemplar_chars=600)
            started = time.perf_counter()
            completion = asyncio.run(client.complete(model=generator.name, messages=messages, max_tokens=256,
                                                     temperature=0.7, top_p=0.9, repetition_penalty=1.15,
                                                     no_repeat_ngram_size=4))
            elapsed = time.perf_counter() - started
            latencies.append(elapsed)
            speeds.append(completion.completion_tokens / elapsed)
        rows.append(("one /dialogue scene, 1 client, max 256 tokens",
                     f"{statistics.mean(speeds):.1f} tok/s, {statistics.median(latencies):.1f} s median over {args.scenes}"))

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, CPU only"
    section = [f"\n## Foundation — {stamp} — {machine}\n", "| measure | result |", "|---|---|"]
    section += [f"| {name} | {value} |" for name, value in rows]
    text = "\n".join(section) + "\n"
    print(text)
    if not args.out.exists():
        args.out.write_text("# Benchmark results\n\nEach section: what ran, on which machine, when.\n")
    with args.out.open("a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()

"""One writer, one scene at a time, end to end: what `/dialogue` costs a writer on this machine.

    python benchmarks/single_writer.py [--prompts 20] [--writers 1] [--home DIR] [--no-jump-forward]
                                       [--out benchmarks/RESULTS.md]

Run by hand (needs `writersroom models fetch`). The backend runs as its own process
(`writersroom backend serve`, the default generator, defaults for everything), as under
`writersroom start`; this process is the bot: the core's own `write_scene` with retrieval
over the bundled corpus (ingested into HOME/index first, not timed), the strict judge, the
retries and the store (SQLite). Each of the first --prompts held-out requests
(training.eval_prompts.HELDOUT_PROMPTS) is asked once, one after another, and timed from
the call to the stored scene: p50, p90 and the slowest, with the judge's verdicts.
--writers N shares the prompts among N writers asking at once (each one after another),
as a busy room does: every scene must arrive (the bot times out on silence, not length),
and the queue reports each writer heard are counted. Appends a dated section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGET_P50_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_backend(home: Path, port: int, *, jump_forward: bool) -> subprocess.Popen:
    env = {**os.environ, "WRITERSROOM_HOME": str(home), "WRITERSROOM_BACKEND_PORT": str(port),
           "WRITERSROOM_BACKEND_JUMP_FORWARD": str(jump_forward).lower()}
    writersroom = Path(sys.executable).with_name("writersroom")
    process = subprocess.Popen([str(writersroom), "backend", "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the backend exited while starting; run `writersroom backend serve` to see why")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(1)
    process.terminate()
    raise SystemExit("the backend did not answer within 300 s")


def steps_and_tokens(port: int) -> tuple[int, int]:
    """(forward passes, tokens generated) so far, from the backend's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    passes = tokens = 0
    for family in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "writersroom_backend_batch_size_count":
                passes += int(sample.value)
            elif sample.name == "writersroom_backend_completion_tokens_total":
                tokens += int(sample.value)
    return passes, tokens


def ensure_index(settings) -> float:
    """Ingest the bundled corpus into the benchmark's index once; seconds it took (0 when present)."""
    from bot.cli.runtime import make_embedder
    from retrieval.bundled import bundled_corpus_dir
    from retrieval.ingest import ingest_paths

    if (settings.index_dir / "catalog.sqlite").exists():
        return 0.0
    started = time.perf_counter()
    ingest_paths([bundled_corpus_dir()], index_dir=settings.index_dir, embedder=make_embedder(settings), progress=True)
    return time.perf_counter() - started


async def ask_all(services, prompts: list[str], writers: int) -> list[dict]:
    from bot.core.dialogue import write_scene
    from bot.core.replies import Invocation
    from llm.client import GenerationError

    results: list[dict] = []

    async def writer(number: int) -> None:
        told: list[str] = []

        async def notify(text: str) -> None:
            told.append(text)

        for prompt in prompts[number::writers]:
            invocation = Invocation(platform="local", room_id="local:bench", user_id=f"writer-{number}", text=prompt,
                                    notify=notify)
            started = time.perf_counter()
            try:
                scene = await write_scene(services, invocation)
            except GenerationError as exc:  # counted, not fatal: the table says how many never arrived
                results.append({"prompt": prompt, "seconds": time.perf_counter() - started, "valid": False,
                                "attempts": 0, "sources": 0, "failed": str(exc), "notices": len(told)})
                print(f"writer {number}: FAILED after {time.perf_counter() - started:.1f} s: {exc}", flush=True)
                continue
            seconds = time.perf_counter() - started
            results.append({"prompt": prompt, "seconds": seconds, "valid": scene.valid, "attempts": scene.attempts,
                            "sources": len(scene.sources), "failed": None, "notices": len(told)})
            told.clear()
            print(f"{len(results):>3}/{len(prompts)} writer {number}: {seconds:5.1f} s valid={scene.valid} "
                  f"attempts={scene.attempts} sources={len(scene.sources)}", flush=True)

    await asyncio.gather(*(writer(number) for number in range(writers)))
    return results


def report(results: list[dict], *, ingest_s: float, model: str, writers: int, max_speeches: int,
           jump_forward: bool, passes: int, tokens: int) -> str:
    arrived = [result for result in results if not result["failed"]]
    seconds = sorted(result["seconds"] for result in arrived) or [float("nan")]
    p50 = statistics.median(seconds)
    p90 = seconds[min(len(seconds) - 1, round(0.9 * (len(seconds) - 1)))]
    valid = sum(result["valid"] for result in arrived)
    retried = sum(result["attempts"] > 1 for result in arrived)
    notified = sum(result["notices"] > 0 for result in results)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, CPU only"
    verdict = "met" if p50 <= TARGET_P50_S else "NOT met"
    return "\n".join([
        f"\n## {'One writer' if writers == 1 else f'{writers} writers at once'}, end to end — {stamp} — {where}, "
        f"load avg {load:.1f} at the end\n",
        f"{model} through `writersroom backend serve` (own process, defaults: constrained decoding, degeneration "
        f"guard, at most {max_speeches} speeches a scene, jump-forward {'on' if jump_forward else 'OFF'}); the bot's `write_scene` in this process with retrieval "
        f"over the bundled corpus (2 exemplars), the "
        f"strict judge, retries and the SQLite store. The first {len(results)} held-out prompts, "
        + ("one at a time" if writers == 1 else f"shared among {writers} writers asking at once, each one at a time")
        + (f"; the index was built first in {ingest_s:.0f} s (not timed)." if ingest_s else "."),
        "",
        "| scenes asked | arrived | p50 s | p90 s | slowest s | mean s | pass the strict judge | needed a retry "
        "| told their queue place |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {len(results)} | {len(arrived)} | {p50:.1f} | {p90:.1f} | {seconds[-1]:.1f} | {statistics.fmean(seconds):.1f} | "
        f"{valid}/{len(arrived)} | {retried} | {notified} |",
        "",
        (f"The backend generated {tokens} tokens in {passes} forward passes (prefills included): "
         f"{tokens / max(passes, 1):.2f} tokens a pass."),
        "",
        f"Target p50 ≤ {TARGET_P50_S:.0f} s (one writer): {verdict}." if writers == 1 else
        f"Every scene arrived: {'yes' if len(arrived) == len(results) else 'NO'}.",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--writers", type=int, default=1, help="writers asking at once")
    parser.add_argument("--home", type=Path, default=None, help="writersroom home to use (default: a temporary one; "
                        "models still come from ~/.writersroom/models)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-jump-forward", dest="jump_forward", action="store_false",
                        help="one decode step per token, grammar-forced ones too (backend.jump_forward=false)")
    args = parser.parse_args(argv)

    from bot.cli.runtime import build_services
    from config.settings import load_settings
    from store.db import upgrade
    from training.eval_prompts import HELDOUT_PROMPTS

    home = args.home or Path(tempfile.mkdtemp(prefix="writersroom-bench-"))
    port = free_port()
    database_url = f"sqlite:///{home / 'writersroom.db'}"
    # The provisioned models, whatever the home (the backend process reads the same variable).
    os.environ.setdefault("WRITERSROOM_MODEL_CACHE_DIR", str(Path.home() / ".writersroom" / "models"))
    # No per-writer rate limit: one writer asking back to back would hit it (6 scenes a minute) at ~8 s a scene.
    settings = load_settings(general={"home": home, "database_url": database_url}, backend={"port": port},
                             room={"rate_limit_per_minute": 0})
    upgrade(database_url)
    ingest_s = ensure_index(settings)
    backend = start_backend(home, port, jump_forward=args.jump_forward)
    try:
        services = build_services(settings)
        results = asyncio.run(ask_all(services, HELDOUT_PROMPTS[:args.prompts], args.writers))
        passes, tokens = steps_and_tokens(port)
    finally:
        backend.terminate()
        backend.wait(30)
    text = report(results, ingest_s=ingest_s, model=settings.model.generator, writers=args.writers,
                  max_speeches=settings.generation.max_speeches, jump_forward=args.jump_forward, passes=passes,
                  tokens=tokens)
    print(text)
    with args.out.open("a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()

"""How well does search tell which script a scene comes from? (dense vs BM25 vs hybrid)

For every script in the library: its FIRST half of scenes goes into a fresh temporary
index (all scripts together), and each scene of its SECOND half is a query. A query
is answered correctly at top-1 when the best script (``level="script"``) is the one it
came from, at top-5 when that script is among the first five. Unseen scenes of the
same script share its characters, places, idiom and subject, which is what a writer
asking "what in our library is this like?" relies on; no query text is in the index.

    writersroom eval retrieval /path/to/library --json
    python -m retrieval.identification /path/to/library --model-dir ~/.writersroom/models/all-minilm-l6-v2 [--results benchmarks/RESULTS.md]

Queries are the scene text cut to ``query_words`` words (MiniLM reads the first ~256
word pieces of it; BM25 reads all of it). On a slow machine ``queries_per_script``
samples that many second-half scenes per script, evenly spaced, so runs repeat.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from retrieval.chunk import chunk_script
from retrieval.document import Script
from retrieval.fusion import RRF_K
from retrieval.index import SceneIndex
from retrieval.search import SceneSearcher

# Discord caps a slash-command option at 6,000 characters (~1,000 words): the longest
# scene a writer can paste into /similar there.
DEFAULT_QUERY_WORDS = 1000
TOP_K = 5
# dense first: it pays for embedding each query once (remembered for hybrid), so the
# seconds of bm25 and hybrid show their own cost
EVAL_MODES = ("dense", "bm25", "hybrid")


@dataclass
class EvalQuery:
    script_id: str
    scene_index: int
    text: str


def load_scripts(paths: Iterable[str | Path]) -> tuple[list[Script], list[tuple[str, str]]]:
    """Parse every script under ``paths`` (folders walked for supported formats, as ingest
    does); returns the scripts and (path, reason) for files that could not be used."""
    from retrieval.ingest import iter_script_files
    from retrieval.parse import ParseError, parse_file

    failed: list[tuple[str, str]] = []
    scripts: list[Script] = []
    seen_ids: set[str] = set()
    for path in iter_script_files(paths, failed=failed):
        try:
            script = parse_file(path)
        except ParseError as exc:
            failed.append((exc.path, exc.reason))
            continue
        base, n = script.script_id, 2
        while script.script_id in seen_ids:  # two files with the same stem stay two scripts
            script.script_id = f"{base}-{n}"
            n += 1
        seen_ids.add(script.script_id)
        scripts.append(script)
    return scripts, failed


def split_halves(script: Script) -> tuple[list, list]:
    """(first half, second half) of the scenes that have text; the first half gets the odd one."""
    scenes = [scene for scene in script.scenes if scene.text().strip()]
    cut = len(scenes) - len(scenes) // 2
    return scenes[:cut], scenes[cut:]


def sample_evenly(items: Sequence, limit: int | None) -> list:
    """At most ``limit`` items spread evenly over the sequence (all of them if no limit)."""
    if limit is None or limit <= 0 or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def truncate_words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]) if limit and len(words) > limit else " ".join(words)


def build_eval_index(scripts: Sequence[Script], *, index_dir: Path, embedder, queries_per_script: int | None,
                     query_words: int) -> tuple[list[EvalQuery], dict]:
    """Index first halves into ``index_dir``; return the second-half queries and counts."""
    index = SceneIndex(index_dir, model_id=embedder.model_id, dim=embedder.dim)
    queries: list[EvalQuery] = []
    counts = {"scripts": 0, "scripts_too_short": 0, "scenes_indexed": 0, "chunks_indexed": 0, "second_half_scenes": 0}
    for script in scripts:
        first, second = split_halves(script)
        if not first or not second:
            counts["scripts_too_short"] += 1  # a one-scene fragment has nothing to query with
            continue
        chunks = chunk_script(replace(script, scenes=first))
        index.add(chunks, embedder.encode([c.text for c in chunks]), model_id=embedder.model_id)
        index.set_script_info(script.script_id, title=script.title, authors=script.authors, format=script.format,
                              language=script.language, genre=script.metadata.get("genre", ""))
        counts["scripts"] += 1
        counts["scenes_indexed"] += len(first)
        counts["chunks_indexed"] += len(chunks)
        counts["second_half_scenes"] += len(second)
        for scene in sample_evenly(second, queries_per_script):
            queries.append(EvalQuery(script.script_id, scene.index, truncate_words(scene.text(), query_words)))
    index.save()
    index.close()
    counts["queries"] = len(queries)
    return queries, counts


def score_queries(searcher: SceneSearcher, queries: Sequence[EvalQuery], *, modes: Sequence[str] = EVAL_MODES,
                  k: int = TOP_K) -> dict:
    """Per mode: top-1 and top-k accuracy, mean reciprocal rank (within k), seconds."""
    results = {}
    for mode in modes:
        top1 = topk = 0
        reciprocal = 0.0
        started = time.perf_counter()
        for query in queries:
            ranked = [hit.script_id for hit in searcher.search(query.text, k=k, mode=mode, level="script")]
            if query.script_id in ranked:
                rank = ranked.index(query.script_id) + 1
                top1 += rank == 1
                topk += 1
                reciprocal += 1 / rank
        n = max(len(queries), 1)
        results[mode] = {"top1": round(top1 / n, 4), f"top{k}": round(topk / n, 4), "mrr": round(reciprocal / n, 4),
                         "correct_top1": top1, f"correct_top{k}": topk,
                         "seconds": round(time.perf_counter() - started, 2)}
    return results


class _MemoEmbedder:
    """The embedder, remembering query vectors: every mode searches with the same queries."""

    def __init__(self, inner) -> None:
        self.inner, self.dim, self.model_id = inner, inner.dim, inner.model_id
        self._memo: dict[str, object] = {}

    def encode(self, texts, *, progress: bool = False):
        if len(texts) != 1:
            return self.inner.encode(texts, progress=progress)
        if texts[0] not in self._memo:
            self._memo[texts[0]] = self.inner.encode(texts)
        return self._memo[texts[0]]


def evaluate_retrieval(paths: Iterable[str | Path], *, embedder, modes: Sequence[str] = EVAL_MODES,
                       queries_per_script: int | None = None, query_words: int = DEFAULT_QUERY_WORDS,
                       fusion_weights: tuple[float, float] = (1.0, 1.0), rrf_k: int = RRF_K,
                       k: int = TOP_K, work_dir: str | Path | None = None) -> dict:
    """Run the first-half/second-half evaluation over the scripts under ``paths``.

    Returns a JSON-ready dict: per-mode numbers under "modes", the counts, the
    settings used, the seconds spent, and the files that could not be parsed.
    """
    started = time.perf_counter()
    scripts, failed = load_scripts(paths)
    parsed = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="wr-eval-") as tmp:
        index_dir = Path(tmp) / "index"
        queries, counts = build_eval_index(scripts, index_dir=index_dir, embedder=embedder,
                                           queries_per_script=queries_per_script, query_words=query_words)
        indexed = time.perf_counter()
        searcher = SceneSearcher(index_dir, _MemoEmbedder(embedder), fusion_weights=fusion_weights, rrf_k=rrf_k)
        if queries:
            searcher.search(queries[0].text, k=1, mode="bm25")  # build BM25 outside the timed loops
        lexical_ready = time.perf_counter()
        modes_result = score_queries(searcher, queries, modes=modes, k=k) if queries else {}
    return {
        "modes": modes_result,
        "counts": {"files_parsed": len(scripts), "files_failed": len(failed), **counts},
        "settings": {"level": "script", "k": k, "query_words": query_words, "queries_per_script": queries_per_script,
                     "fusion_weights": {"dense": fusion_weights[0], "bm25": fusion_weights[1]}, "rrf_k": rrf_k,
                     "embedder": embedder.model_id},
        "seconds": {"parse": round(parsed - started, 1), "index": round(indexed - parsed, 1),
                    "bm25_build": round(lexical_ready - indexed, 1), "total": round(time.perf_counter() - started, 1)},
        "failed": [f"{path}: {reason}" for path, reason in failed],
        "machine": machine_info(),
    }


def machine_info() -> dict:
    import os

    return {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}


def format_report(result: dict) -> str:
    """A few lines for people: one per mode."""
    c = result["counts"]
    k = result["settings"]["k"]
    lines = [f"{c['scripts']} scripts ({c['scenes_indexed']} scenes indexed), {c['queries']} queries "
             f"({c['scripts_too_short']} scripts too short, {c['files_failed']} files not scripts or unreadable), {result['seconds']['total']} s"]
    for mode, numbers in result["modes"].items():
        lines.append(f"  {mode:<7} top-1 {numbers['top1']:.3f}  top-{k} {numbers[f'top{k}']:.3f}  "
                     f"MRR {numbers['mrr']:.3f}  ({numbers['seconds']} s)")
    return "\n".join(lines)


def results_section(result: dict, *, note: str = "") -> str:
    """A dated Markdown section for benchmarks/RESULTS.md (appended, never rewritten)."""
    from datetime import datetime, timezone

    m, c, st = result["machine"], result["counts"], result["settings"]
    k = st["k"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Retrieval: script identification from held-out scenes — {when} — {m['processor']}, {m['cpus']} cores, "
        f"{m['python']}, CPU only",
        "",
        f"Each script's first half of scenes indexed ({c['scripts']} scripts, {c['scenes_indexed']} scenes, "
        f"{c['chunks_indexed']} chunks; {c['scripts_too_short']} one-scene scripts left out), each second-half scene a "
        f"query ({c['queries']} queries), cut to {st['query_words']} words; script-level search, top-2 scene sum; "
        f"RRF k={st['rrf_k']}, weights dense {st['fusion_weights']['dense']} (times the share of the query it reads, "
        f"at least half) / bm25 {st['fusion_weights']['bm25']}; "
        f"embedder {st['embedder']}.",
        "",
        f"| mode | top-1 | top-{k} | MRR@{k} | seconds |",
        "|---|---|---|---|---|",
    ]
    for mode, n in result["modes"].items():
        lines.append(f"| {mode} | {n['top1']:.3f} | {n[f'top{k}']:.3f} | {n['mrr']:.3f} | {n['seconds']} |")
    lines += ["", f"Parse {result['seconds']['parse']} s, index {result['seconds']['index']} s, BM25 build "
              f"{result['seconds']['bm25_build']} s, total {result['seconds']['total']} s."]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Script identification from held-out scenes: dense vs BM25 vs hybrid.")
    parser.add_argument("paths", nargs="+", type=Path, help="library files or folders")
    parser.add_argument("--model-dir", type=Path, required=True, help="local sentence-transformers model directory")
    parser.add_argument("--queries-per-script", type=int, default=None, help="sample this many queries per script (default: all)")
    parser.add_argument("--query-words", type=int, default=DEFAULT_QUERY_WORDS)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--results", type=Path, default=None, help="append a dated section to this Markdown file")
    args = parser.parse_args(argv)
    from retrieval.embed import Embedder

    result = evaluate_retrieval(args.paths, embedder=Embedder(args.model_dir), queries_per_script=args.queries_per_script,
                                query_words=args.query_words)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    if args.results:
        with args.results.open("a", encoding="utf-8") as fh:
            fh.write("\n" + results_section(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

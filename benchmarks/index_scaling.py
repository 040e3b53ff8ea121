"""How the scene index scales: Flat, HNSW and IVF-PQ from 10^4 to 10^6 vectors, and
ingest throughput against raw sentence-transformers encoding. Run by hand, never a test:

    /tmp/venv/bin/python benchmarks/index_scaling.py \\
        --model-dir ~/.writersroom/models/all-minilm-l6-v2 --sizes 10000 100000 1000000

What it measures, per size N and kind:
- build time (the store plus the searched index; IVF-PQ includes training),
- memory of the index structures (serialised size of the store and of the
  approximate index) and the process's peak RSS,
- /similar-like latency per query: a real all-MiniLM-L6-v2 embedding of a real query
  (50 queries: loglines and pasted scene excerpts from the bundled corpus, each timed
  on its own) plus ``SceneIndex.search(vector, 20)`` (what SceneSearcher asks for at
  k=5, records included) on the synthetic library; p50/p99 of the sum,
- recall@10 against exact search, on 200 held-out synthetic queries.

Synthetic vectors are 384-d, clustered rather than uniform, because real sentence
embeddings are: N points drawn from a mixture of 1000 gaussians of Zipf-like weights
(a few big topics, many small ones); each component has a random unit centre and its
own random 16-dimensional subspace in which points spread (low intrinsic dimension,
as in real embeddings), plus a little isotropic noise; then L2-normalised. Cosines
within a component come out around 0.5-0.6 and between components around 0,
close to what MiniLM gives for same-topic and unrelated scenes. Queries are fresh
draws from the same mixture (not copies of library vectors).

Ingest throughput: a few bundled screenplays ingested into a fresh index with the real
embedder (parse, chunk, embed, add, save), against ``SentenceTransformer.encode`` on the
same chunk texts with the same batch size; the ratio is ingest chunks/s over raw chunks/s.

Appends a dated section to benchmarks/RESULTS.md and draws benchmarks/index_scaling.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from retrieval.index import SceneIndex  # noqa: E402
from retrieval.index_types import IndexParams, omp_threads  # noqa: E402

DIM = 384
COMPONENTS = 1000
SUBSPACE = 16
LOGLINES = [
    "a detective corners her former partner in a rainy alley",
    "two brothers argue over their dying father's farm",
    "a preacher warns his congregation about fire and brimstone",
    "a robot tries to talk a dinosaur out of eating it",
    "a climber and a guide argue about turning back below the summit",
    "a cat narrates its contempt for the household",
    "a musician confronts the producer who stole his song",
    "a young wife discovers her husband's secret letters",
    "a ship's captain refuses to abandon the sinking vessel",
    "a child lies to protect a runaway hiding in the barn",
    "an old actor forgets his lines on opening night",
    "two spies meet on a bridge to exchange prisoners",
    "a nurse breaks hospital rules to save a patient",
    "a con artist is recognised by one of his victims at a wedding",
    "a teacher and a student stay behind after class and the truth comes out",
    "a mother and daughter clean out the family house after the funeral",
    "a soldier writes home the night before the battle",
    "a scientist realises her experiment has opened a rift between worlds",
    "a waiter overhears a plot at the table he is serving",
    "friends stranded by a storm tell ghost stories until one comes true",
    "a politician rehearses a confession he never gives",
    "a debate against Abraham Lincoln goes terribly wrong",
    "a thief returns the money and nobody believes him",
    "lovers say goodbye at a train station in the rain",
    "a dying king chooses between his two daughters",
]
PARAMS = IndexParams()  # the defaults under test


# ---------------------------------------------------------------- synthetic library


class Mixture:
    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.centres = _unit(rng.normal(size=(COMPONENTS, DIM)).astype(np.float32))
        bases = rng.normal(size=(COMPONENTS, DIM, SUBSPACE)).astype(np.float32)
        self.bases = np.linalg.qr(bases)[0]  # orthonormal columns per component
        weights = 1.0 / np.arange(1, COMPONENTS + 1) ** 0.7
        self.weights = weights / weights.sum()

    def sample(self, n: int, seed: int, batch: int = 100_000) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, batch):
            m = min(batch, n - start)
            comp = rng.choice(COMPONENTS, size=m, p=self.weights)
            z = rng.normal(size=(m, SUBSPACE, 1)).astype(np.float32) * (0.85 / np.sqrt(SUBSPACE))
            spread = (self.bases[comp] @ z)[..., 0]
            noise = rng.normal(size=(m, DIM)).astype(np.float32) * (0.45 / np.sqrt(DIM))
            out[start:start + m] = _unit(self.centres[comp] + spread + noise)
        return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---------------------------------------------------------------- real queries


def real_queries(n_excerpts: int = 25) -> list[str]:
    """Loglines plus pasted-scene excerpts (first ~120 words of bundled scenes)."""
    from retrieval.bundled import bundled_corpus_dir
    from retrieval.chunk import chunk_script
    from retrieval.parse import parse_file

    texts: list[str] = []
    for path in sorted((bundled_corpus_dir() / "screenplays").rglob("*.fountain")):
        for chunk in chunk_script(parse_file(path)):
            texts.append(" ".join(chunk.text.split()[:120]))
    rng = np.random.default_rng(1)
    picked = [texts[i] for i in rng.choice(len(texts), n_excerpts, replace=False)]
    return LOGLINES + picked


def embedding_times(embedder, queries: list[str]) -> np.ndarray:
    embedder.encode(["warm up the model"])
    times = []
    for text in queries:
        start = time.perf_counter()
        embedder.encode([text])
        times.append(time.perf_counter() - start)
    return np.asarray(times)


# ---------------------------------------------------------------- one size, one kind


def build(kind: str, data: np.ndarray, directory: Path) -> tuple[SceneIndex, float]:
    start = time.perf_counter()
    index = SceneIndex(directory, model_id="synthetic", dim=DIM, params=PARAMS, auto_rebuild=False)
    index.add_vectors(data, np.arange(len(data), dtype=np.int64))
    record = {"chunk_id": "x#0.0", "script_id": "x", "scene_index": 0, "heading": "INT. ROOM - DAY", "text": "",
              "characters": [], "location": "ROOM", "time_of_day": "DAY"}
    # one shared, unsaved record: the benchmark measures vectors, not the catalog
    index._new_chunks = dict.fromkeys(range(len(data)), record)
    if kind != "flat":
        index.rebuild(kind)
    return index, time.perf_counter() - start


def index_bytes(index: SceneIndex, directory: Path) -> int:
    """Bytes of the store and the approximate index as saved (written to disk, not
    serialised in memory: at 10^6 vectors a second in-memory copy would double the peak)."""
    import faiss

    directory.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index._store, str(directory / "store.faiss"))
    if index._ann is not None:
        faiss.write_index(index._ann.index, str(directory / "ann.faiss"))
    return sum(p.stat().st_size for p in directory.glob("*.faiss"))


def measure(index: SceneIndex, queries: np.ndarray, truth: np.ndarray, embed_s: np.ndarray, n_latency: int) -> dict:
    with omp_threads(PARAMS.search_threads):
        found = np.array([_ids(index._nearest(q[None, :], 10)[1]) for q in queries])
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
    for q in queries[:5]:  # warm caches
        index.search(q, 20)
    search_s = []
    for q in queries[:n_latency]:
        start = time.perf_counter()
        index.search(q, 20)
        search_s.append(time.perf_counter() - start)
    search_s = np.asarray(search_s)
    total = search_s + np.resize(embed_s, len(search_s))
    return {"recall": recall, "search_p50_ms": 1000 * np.median(search_s), "p50_ms": 1000 * np.median(total),
            "p99_ms": 1000 * np.percentile(total, 99)}


def _ids(ids: list[int]) -> list[int]:
    return (list(ids) + [-1] * 10)[:10]


# ---------------------------------------------------------------- ingest throughput


def ingest_ratio(model_dir: Path, files: Sequence[Path], batch_size: int = 32) -> dict:
    from sentence_transformers import SentenceTransformer

    from retrieval.embed import Embedder
    from retrieval.index import iter_records
    from retrieval.ingest import ingest_paths

    embedder = Embedder(model_dir, batch_size=batch_size)
    embedder.encode(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = ingest_paths(list(files), index_dir=Path(tmp) / "index", embedder=embedder, progress=False)
        ingest_s = time.perf_counter() - start
        texts = [rec["text"] for rec in iter_records(SceneIndex.load(Path(tmp) / "index"))]
    del embedder
    raw_model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    raw_model.encode(["warm up"])
    start = time.perf_counter()
    raw_model.encode(texts, batch_size=batch_size)
    raw_s = time.perf_counter() - start
    return {"files": report.files_seen, "chunks": len(texts), "ingest_s": ingest_s, "raw_s": raw_s,
            "ratio": (len(texts) / ingest_s) / (len(texts) / raw_s)}


# ---------------------------------------------------------------- main


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("~/.writersroom/models/all-minilm-l6-v2").expanduser())
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivfpq"])
    parser.add_argument("--queries", type=int, default=200, help="held-out queries for recall")
    parser.add_argument("--latency-queries", type=int, default=50)
    parser.add_argument("--ingest-files", type=int, default=3, help="bundled screenplays to ingest (0: skip)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "index_scaling.png")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md and the plot alone")
    args = parser.parse_args(argv)

    import faiss

    from retrieval.embed import Embedder

    queries_text = real_queries()
    embedder = Embedder(args.model_dir, batch_size=32)
    embed_s = embedding_times(embedder, queries_text)
    del embedder
    gc.collect()
    print(f"query embedding: p50 {1000 * np.median(embed_s):.1f} ms, p99 {1000 * np.percentile(embed_s, 99):.1f} ms "
          f"over {len(embed_s)} queries", flush=True)

    mixture = Mixture()
    rows = []
    for n in args.sizes:
        data = mixture.sample(n, seed=n)
        queries = mixture.sample(args.queries, seed=n + 1)
        truth = faiss.knn(queries, data, 10, metric=faiss.METRIC_INNER_PRODUCT)[1]
        for kind in args.kinds:
            directory = Path(tempfile.mkdtemp(prefix="index-scaling-"))
            index, build_s = build(kind, data, directory)
            row = {"n": n, "kind": kind, "build_s": build_s, "mem_mb": index_bytes(index, directory) / 2 ** 20}
            row.update(measure(index, queries, truth, embed_s, args.latency_queries))
            if kind == "hnsw":
                row["setting"] = f"M={PARAMS.hnsw_m} efC={PARAMS.hnsw_ef_construction} efS={PARAMS.hnsw_ef_search}"
            elif kind == "ivfpq":
                ivf = faiss.downcast_index(index._ann.index)
                row["setting"] = f"nlist={ivf.nlist} m={ivf.pq.M}x{ivf.pq.nbits}b nprobe={PARAMS.ivf_nprobe} rerank={PARAMS.rerank}x"
            else:
                row["setting"] = "exact"
            row["rss_gb"] = peak_rss_gb()
            rows.append(row)
            print(_line(row), flush=True)
            # search-time alternatives, no rebuild needed
            sweep = {"hnsw": ("hnsw_ef_search", (48, 192)), "ivfpq": ("ivf_nprobe", (16, 128, 256))}.get(kind)
            if sweep:
                name, values = sweep
                for value in values:
                    index.set_params(**{name: value})
                    extra = dict(row, build_s=float("nan"), setting=row["setting"].split(" ")[0] + f" {name}={value}", sweep=True)
                    extra.update(measure(index, queries, truth, embed_s, args.latency_queries))
                    rows.append(extra)
                    print(_line(extra), flush=True)
            del index
            gc.collect()
            shutil.rmtree(directory, ignore_errors=True)
        del data
        gc.collect()

    ingest = None
    if args.ingest_files:
        from retrieval.bundled import bundled_corpus_dir

        files = sorted((bundled_corpus_dir() / "screenplays").rglob("*.fountain"))[: args.ingest_files]
        ingest = ingest_ratio(args.model_dir, files)
        print(f"ingest: {ingest}", flush=True)

    if not args.no_write:
        write_results(args.results, rows, embed_s, ingest)
        plot(args.plot, rows)
    return 0


def _line(row: dict) -> str:
    return (f"N={row['n']:>8} {row['kind']:<6} {row['setting']:<40} build {row['build_s']:7.1f} s  mem {row['mem_mb']:8.1f} MiB  "
            f"recall@10 {row['recall']:.3f}  search p50 {row['search_p50_ms']:6.2f} ms  total p50 {row['p50_ms']:6.1f} "
            f"p99 {row['p99_ms']:6.1f} ms  peak RSS {row['rss_gb']:.2f} GB")


def write_results(path: Path, rows: list[dict], embed_s: np.ndarray, ingest: dict | None) -> None:
    import faiss

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "",
        f"## Index scaling — {now} — {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"faiss {faiss.__version__}, CPU only",
        "",
        f"`benchmarks/index_scaling.py`. Synthetic 384-d library: mixture of {COMPONENTS} gaussians (Zipf-like weights, "
        f"{SUBSPACE}-d subspace each, small isotropic noise, normalised); 200 held-out queries from the same mixture for "
        "recall@10 against exact search. Latency = a real all-MiniLM-L6-v2 embedding of one of 50 real queries (25 loglines, "
        "25 pasted scene excerpts) + `SceneIndex.search(v, 20)`, one query at a time. Memory = serialised store + "
        f"approximate index. Load average at the end: {load} (a shared machine). Plot: benchmarks/index_scaling.png.",
        "",
        f"Query embedding alone: p50 {1000 * np.median(embed_s):.1f} ms, p99 {1000 * np.percentile(embed_s, 99):.1f} ms.",
        "",
        "| N | kind | setting | build s | memory MiB | recall@10 | search p50 ms | total p50 ms | total p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        build = "" if row.get("sweep") else f"{row['build_s']:.1f}"
        lines.append(f"| {row['n']:,} | {row['kind']} | {row['setting']} | {build} | {row['mem_mb']:.0f} | {row['recall']:.3f} | "
                     f"{row['search_p50_ms']:.2f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |")
    if ingest:
        lines += ["", f"Ingest throughput: {ingest['files']} bundled screenplays, {ingest['chunks']} chunks: ingest "
                  f"{ingest['chunks'] / ingest['ingest_s']:.1f} chunks/s ({ingest['ingest_s']:.1f} s, parse + chunk + embed + "
                  f"add + save) vs raw `SentenceTransformer.encode` {ingest['chunks'] / ingest['raw_s']:.1f} chunks/s "
                  f"({ingest['raw_s']:.1f} s): ratio {ingest['ratio']:.2f}."]
    lines.append(f"Peak RSS of the run: {peak_rss_gb():.2f} GB.")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main_rows = [r for r in rows if not r.get("sweep")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind in ("flat", "hnsw", "ivfpq"):
        mine = sorted((r for r in main_rows if r["kind"] == kind), key=lambda r: r["n"])
        if not mine:
            continue
        ns = [r["n"] for r in mine]
        left.plot(ns, [r["p50_ms"] for r in mine], marker="o", label=f"{kind} p50")
        left.plot(ns, [r["p99_ms"] for r in mine], marker="x", linestyle="--", label=f"{kind} p99")
        right.plot(ns, [r["recall"] for r in mine], marker="o", label=kind)
    left.axhline(30, color="grey", linewidth=0.8, linestyle=":", label="30 ms target")
    left.set(xscale="log", yscale="log", xlabel="vectors", ylabel="ms per query (MiniLM embedding + search)",
             title="/similar latency")
    right.axhline(0.95, color="grey", linewidth=0.8, linestyle=":", label="0.95 target")
    right.set(xscale="log", xlabel="vectors", ylabel="recall@10 vs exact", title="recall@10 (default parameters)")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())

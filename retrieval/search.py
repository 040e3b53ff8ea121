"""/similar: the scenes (or scripts) in the library closest to a logline or a pasted scene.

Three ways to rank (``mode``):

- "dense": cosine similarity of sentence embeddings (the FAISS index): finds scenes
  that mean the same thing in other words.
- "bm25": BM25 over the same chunk texts (``retrieval.bm25``): finds exact words,
  names and coined terms that embeddings blur.
- "hybrid" (default): reciprocal rank fusion (k=60) of the two scene rankings, dense
  weighted down (to at most half) for queries longer than the embedder reads.

``SceneHit.score`` is the ranking's own score: cosine in "dense", BM25 in "bm25",
the fused RRF score in "hybrid" (about 1/61 for a scene first in one list), the
script's aggregate at script level, and the cross-encoder's score when reranking.
Compare scores within one result list only.

Filters (genre, writer, show, format, language) restrict both retrievers to the
scripts whose stored facts match. BM25 scores every chunk anyway, so it masks exactly;
FAISS cannot filter inside a flat search, so dense search over-fetches (4x, growing
4x at a time, up to the whole index) until enough matching scenes are found; the
candidates' scripts are checked before their records are read from the index catalog.

Chunk records live in the index's catalog (see ``retrieval.index``): both retrievers
rank vector ids and read only the records of the candidates they keep.
"""

from __future__ import annotations

import copy
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from retrieval.chunk import SCENE_TEXT_LIMIT, truncate
from retrieval.fusion import RRF_K, aggregate_scripts, reciprocal_rank_fusion
from retrieval.index import SceneIndex
from retrieval.rerank import RERANK_TOP_N
from retrieval.types import SceneHit, SceneRef

EXCERPT_CHARS = 300
MODES = ("hybrid", "dense", "bm25")
LEVELS = ("scene", "script")
FILTER_KEYS = ("genre", "writer", "show", "format", "language")
SCENE_CANDIDATES = 50  # scenes each retriever hands to fusion (at least 4k); RRF needs some depth to agree on
SCRIPT_CANDIDATES = 150  # scenes ranked before grouping into scripts: several per script for the top-2 sum
# About what the embedder reads of a query (MiniLM: 256 word pieces, ~200 English words).
# A longer query (a pasted scene) is only partly seen by dense search but wholly by BM25,
# so dense's fusion weight shrinks with the share it read, down to half: on held-out
# scenes (benchmarks/RESULTS.md) this beat equal weights by ~2 points of top-1, while
# a logline still gets the two retrievers weighted equally.
DENSE_QUERY_WORDS = 200
MIN_DENSE_SHARE = 0.5

# ISO 639-2 codes (TEI's xml:lang) to the two-letter codes people type, so "en" finds "eng".
_LANGUAGE_ALIASES = {
    "eng": "en", "ger": "de", "deu": "de", "fre": "fr", "fra": "fr", "spa": "es", "ita": "it", "rus": "ru",
    "swe": "sv", "nld": "nl", "dut": "nl", "por": "pt", "pol": "pl", "lat": "la", "grc": "el", "gre": "el",
    "ell": "el", "chi": "zh", "zho": "zh", "jpn": "ja", "cze": "cs", "ces": "cs", "dan": "da", "nor": "no",
    "fin": "fi", "hun": "hu", "ukr": "uk", "tat": "tt", "heb": "he", "ara": "ar", "yid": "yi",
}


class SceneSearcher:
    """Loads the index once; ``search`` ranks scenes or scripts for a query.

    A long scene has several chunks; hits are per scene (its best chunk), because
    "three windows of the same act" is one answer to a writer, not three.
    The BM25 index is built on the first lexical search (or loaded from its cache
    next to the index) and kept; ``bm25_status`` says which ("loaded", "built", ...).
    """

    def __init__(self, index_dir: str | Path, embedder, *, reranker_dir: str | Path | None = None,
                 rerank_top_n: int = RERANK_TOP_N, fusion_weights: tuple[float, float] = (1.0, 1.0),
                 rrf_k: int = RRF_K, catalog_url: str | None = None) -> None:
        self.embedder = embedder
        self.index_dir = Path(index_dir)
        self.catalog_url = catalog_url
        self.index = self._open_index()
        self.fusion_weights = tuple(fusion_weights)  # (dense, bm25)
        self.rrf_k = rrf_k
        self.rerank_top_n = rerank_top_n
        self.reranker = None
        if reranker_dir:
            from retrieval.rerank import Reranker

            self.reranker = Reranker(reranker_dir)
        self.bm25_status = ""
        self._bm25 = None
        self._rows: _ChunkTexts | None = None  # BM25 row -> vector id and script
        self._lock = threading.Lock()

    def _open_index(self) -> SceneIndex:
        if SceneIndex.exists(self.index_dir, catalog_url=self.catalog_url):
            index = SceneIndex.load(self.index_dir, catalog_url=self.catalog_url)
            index.check_embedder(model_id=self.embedder.model_id, dim=self.embedder.dim)
            return index
        return SceneIndex(self.index_dir, model_id=self.embedder.model_id, dim=self.embedder.dim,
                          catalog_url=self.catalog_url)

    def reopened(self) -> SceneSearcher:
        """A searcher over the index as saved now, sharing this one's models (embedder and
        reranker): for a library that is being loaded while it is searched. A new object
        rather than a reload in place, so a search already running on this one ends on
        the index it began with."""
        fresh = copy.copy(self)
        fresh.index = self._open_index()
        fresh.bm25_status, fresh._bm25, fresh._rows = "", None, None
        fresh._lock = threading.Lock()
        return fresh

    @property
    def is_empty(self) -> bool:
        return len(self.index) == 0

    def search(self, query: str, *, k: int = 5, mode: str = "hybrid", filters: Mapping | None = None,
               level: str = "scene") -> list[SceneHit]:
        """The ``k`` best scenes (level="scene") or scripts (level="script"), best first.

        ``filters`` maps any of genre, writer, show, format, language to a value or a
        list of values (any may match), compared case-insensitively; a script lacking
        the fact never matches. At script level each hit's ``scene`` is the script's
        best scene and its score the sum of its two best scene scores.
        """
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        if level not in LEVELS:
            raise ValueError(f"unknown search level {level!r}; choose one of {', '.join(LEVELS)}")
        allowed = self._allowed_scripts(filters)
        if not query.strip() or k <= 0 or self.is_empty or allowed == set():
            return []
        depth = max(k * 4, SCENE_CANDIDATES) if level == "scene" else max(k * 30, SCRIPT_CANDIDATES)
        if self.reranker is not None:
            depth = max(depth, self.rerank_top_n)
        scenes = self._ranked_scenes(query, mode=mode, depth=depth, allowed=allowed)
        if level == "script":
            ranked = [(rec, score) for _, rec, score in aggregate_scripts((rec["script_id"], rec, score) for rec, score in scenes)]
        else:
            ranked = scenes
        if self.reranker is not None:
            ranked = self._rerank(query, ranked)
        return [_hit(rec, score) for rec, score in ranked[:k]]

    # -- ranking -------------------------------------------------------------------

    def _ranked_scenes(self, query: str, *, mode: str, depth: int, allowed: set[str] | None) -> list[tuple[dict, float]]:
        if mode == "dense":
            return self._dense_scenes(query, depth, allowed)
        if mode == "bm25":
            return self._bm25_scenes(query, depth, allowed)
        dense = self._dense_scenes(query, depth, allowed)
        lexical = self._bm25_scenes(query, depth, allowed)
        records = {rec["scene_id"]: rec for rec, _ in lexical}
        records.update({rec["scene_id"]: rec for rec, _ in dense})  # dense records carry the best dense chunk
        dense_weight, bm25_weight = self.fusion_weights
        words = max(len(query.split()), 1)
        dense_weight *= max(MIN_DENSE_SHARE, min(1.0, DENSE_QUERY_WORDS / words))
        fused = reciprocal_rank_fusion(
            [[rec["scene_id"] for rec, _ in dense], [rec["scene_id"] for rec, _ in lexical]],
            k=self.rrf_k, weights=(dense_weight, bm25_weight),
        )
        return [(records[scene_id], score) for scene_id, score in fused[:depth]]

    def _dense_scenes(self, query: str, depth: int, allowed: set[str] | None) -> list[tuple[dict, float]]:
        vector = self.embedder.encode([query])[0]
        total = len(self.index)
        fetch = min(total, depth * 4)
        while True:
            best = _best_per_scene(self.index.search(vector, fetch, scripts=allowed))
            if len(best) >= depth or fetch >= total:
                return best[:depth]
            fetch = min(total, fetch * 4)

    def _bm25_scenes(self, query: str, depth: int, allowed: set[str] | None) -> list[tuple[dict, float]]:
        bm25 = self._lexical()
        scores = bm25.scores(query)
        if allowed is not None:
            scores = scores * self._rows.of_scripts(allowed)
        rows = np.flatnonzero(scores > 0)
        if not len(rows):
            return []
        # best rows first; enough of them that ``depth`` distinct scenes survive the per-scene merge
        take = min(len(rows), depth * 8)
        top = rows[np.argpartition(-scores[rows], take - 1)[:take]] if take < len(rows) else rows
        top = top[np.lexsort((top, -scores[top]))]
        vids = self._rows.vector_ids[top].tolist()
        records = self.index.records(vids)
        best = _best_per_scene((records[vid], float(scores[row])) for row, vid in zip(top.tolist(), vids) if vid in records)
        return best[:depth]

    def _lexical(self):
        with self._lock:
            if self._bm25 is None:
                from retrieval.bm25 import open_cached

                rows = _ChunkTexts(self.index)
                self._bm25, self.bm25_status = open_cached(self.index_dir, rows)
                self._rows = rows
            return self._bm25

    def _rerank(self, query: str, ranked: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
        head, tail = ranked[: self.rerank_top_n], ranked[self.rerank_top_n :]
        scores = self.reranker.score(query, [rec.get("scene_text") or rec["text"] for rec, _ in head])
        order = sorted(range(len(head)), key=lambda i: -scores[i])  # stable: retriever order breaks ties
        return [(head[i][0], scores[i]) for i in order] + tail

    # -- filters -------------------------------------------------------------------

    def _allowed_scripts(self, filters: Mapping | None) -> set[str] | None:
        """Script ids matching every filter, or None when nothing is filtered."""
        wanted = normalise_filters(filters)
        if not wanted:
            return None
        return {sid for sid in self.index.script_ids() if script_matches(self.index.script_info(sid), wanted)}


class _ChunkTexts:
    """(chunk id, text) of every chunk, streamed from the index each time it is iterated
    (BM25 hashes them for its cache key, and reads them again only to build). The last
    pass keeps, compactly, which vector and script each BM25 row is, so that neither the
    texts nor the records stay in memory."""

    def __init__(self, index: SceneIndex) -> None:
        self.index = index
        self.vector_ids = np.zeros(0, dtype=np.int64)
        self._script_codes = np.zeros(0, dtype=np.int32)
        self._codes: dict[str, int] = {}

    def __iter__(self):
        vids, codes, names = array("q"), array("i"), {}
        for vid, chunk_id, script_id, text in self.index.iter_chunk_texts():
            vids.append(vid)
            codes.append(names.setdefault(script_id, len(names)))
            yield chunk_id, text
        self.vector_ids = np.frombuffer(vids, dtype=np.int64) if vids else np.zeros(0, dtype=np.int64)
        self._script_codes = np.frombuffer(codes, dtype=np.int32) if codes else np.zeros(0, dtype=np.int32)
        self._codes = names

    def of_scripts(self, script_ids: set[str]):
        """A boolean mask over the rows: whether each row's script is one of ``script_ids``."""
        wanted = [self._codes[sid] for sid in script_ids if sid in self._codes]
        return np.isin(self._script_codes, np.asarray(wanted, dtype=np.int32))


def normalise_filters(filters: Mapping | None) -> dict[str, list[str]]:
    """{"genre": "Comedy", "writer": ["Tyler", None]} -> {"genre": ["comedy"], "writer": ["tyler"]}.

    Unknown keys are an error (a typo must not silently return everything); empty values are dropped.
    """
    out: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in FILTER_KEYS:
            raise ValueError(f"unknown filter {key!r}; filters are {', '.join(FILTER_KEYS)}")
        values = [value] if isinstance(value, str) else list(value or ())
        cleaned = [_norm(v, key) for v in values if v is not None and str(v).strip()]
        if cleaned:
            out[key] = cleaned
    return out


def script_matches(info: Mapping, wanted: Mapping[str, Sequence[str]]) -> bool:
    """Whether a script's stored facts satisfy every filter (values already normalised).

    A writer matches a whole author name or whole consecutive words of it, so
    "tyler" and "royall tyler" both find "Royall Tyler", but "ty" does not.
    """
    for key, values in wanted.items():
        field = "authors" if key == "writer" else key
        stored = [_norm(v, key) for v in _as_list(info.get(field)) if str(v).strip()]
        if key == "writer":
            if not any(_words_within(v, name) for v in values for name in stored):
                return False
        elif not set(values) & set(stored):
            return False
    return True


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def _norm(value, key: str) -> str:
    text = " ".join(str(value).casefold().split())
    if key == "language":
        text = text.replace("_", "-").split("-")[0]
        text = _LANGUAGE_ALIASES.get(text, text)
    return text


def _words_within(needle: str, name: str) -> bool:
    words, have = (s.replace(",", " ").replace(".", " ").split() for s in (needle, name))
    return any(have[i : i + len(words)] == words for i in range(len(have) - len(words) + 1))


def _best_per_scene(results: Iterable[tuple[dict, float]]) -> list[tuple[dict, float]]:
    best: dict[str, tuple[dict, float]] = {}
    for rec, score in results:  # already best first
        best.setdefault(rec["scene_id"], (rec, score))
    return list(best.values())


def _hit(rec: dict, score: float) -> SceneHit:
    scene_text = rec.get("scene_text") or rec["text"]
    return SceneHit(
        script_id=rec["script_id"],
        title=rec.get("title", ""),
        score=score,
        scene=SceneRef(
            index=rec["scene_index"],
            heading=rec["heading"],
            # the part of the scene that matched; for a short scene, its opening
            excerpt=truncate(rec["text"], EXCERPT_CHARS),
            text=truncate(scene_text, SCENE_TEXT_LIMIT),
        ),
        scene_id=rec["scene_id"],
        characters=tuple(rec.get("characters", ())),
    )

"""Lexical (BM25) search over the scene index's chunks, cached next to the index.

Dense vectors blur exact words: a character's name, a prop, a coined word ("the
Supernacle") or a quoted line barely moves a sentence embedding, yet it is often the
very thing a writer pastes. BM25 ranks by exactly those words, so ``/similar`` fuses
both (see ``retrieval.fusion``).

The scoring is bm25s (sparse-matrix BM25, Lucene variant, k1=1.5, b=0.75): a
maintained library whose index is a few numpy arrays that save and load in
milliseconds, which the cache below relies on. Tokenizing is ours, because the
library's default English stemmer and stopword list would mangle the German, Russian
and Swedish plays in the library: lowercase Unicode words, nothing dropped.

Cache layout: ``<index_dir>/bm25-<key>/`` holds the bm25s arrays plus ``docs.json``
(the chunk ids in row order). ``key`` hashes the tokenizer version, the BM25
parameters and every chunk's id and text, so any change to the index (a script
added, changed or removed) names a different folder and the stale one is deleted;
an unchanged index reuses its folder without tokenizing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

TOKENIZER_VERSION = 2
K1 = 1.5
B = 0.75
CACHE_PREFIX = "bm25-"
DOCS_FILE = "docs.json"

_WORD = re.compile(r"\w+", re.UNICODE)
# Han, kana and Hangul are written without spaces: a "word" found by \w+ is a whole
# clause, so such runs become overlapping character pairs, the usual unsegmented-text unit.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def tokenize(text: str) -> list[str]:
    """Lowercased Unicode words; single letters and underscores dropped; CJK runs as character pairs.

    No stemming or stopwords: the library is multilingual, and BM25's idf already makes
    "the" and "and" nearly worthless while keeping names and rare words decisive.
    """
    out = []
    for word in _WORD.findall(text.casefold()):
        word = word.strip("_")
        if _CJK.search(word):
            out.extend(_cjk_tokens(word))
        elif len(word) > 1 or word.isdigit():
            out.append(word)
    return out


def _cjk_tokens(word: str) -> list[str]:
    tokens = []
    for piece in re.split(f"({_CJK.pattern})", word):
        if not piece:
            continue
        if _CJK.fullmatch(piece):
            tokens.extend([piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)])
        elif len(piece) > 1 or piece.isdigit():
            tokens.append(piece)
    return tokens


def corpus_key(docs: Iterable[tuple[str, str]]) -> str:
    """A hash of (chunk id, text) pairs in order, plus what shapes the BM25 arrays."""
    digest = hashlib.sha256(f"bm25 tok={TOKENIZER_VERSION} k1={K1} b={B}\n".encode())
    for chunk_id, text in docs:
        digest.update(chunk_id.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x01")
    return digest.hexdigest()[:24]


class BM25Index:
    """BM25 over a fixed list of documents (chunk texts); rows follow ``doc_ids``."""

    def __init__(self, retriever, doc_ids: Sequence[str], key: str) -> None:
        self._retriever = retriever
        self.doc_ids = list(doc_ids)
        self.key = key

    @classmethod
    def build(cls, docs: Iterable[tuple[str, str]], *, key: str | None = None) -> "BM25Index":
        """Read ``docs`` once, keeping tokens, not texts (a large library's texts
        stream from the index catalog; its tokens are needed whole to index anyway)."""
        import bm25s

        if key is None:
            docs = list(docs)
            key = corpus_key(docs)
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        doc_ids, tokens = [], []
        for chunk_id, text in docs:
            doc_ids.append(chunk_id)
            tokens.append(tokenize(text))
        if doc_ids:
            retriever.index(tokens, show_progress=False)
        return cls(retriever, doc_ids, key)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per document (0 where no query word occurs)."""
        if not self.doc_ids:
            return np.zeros(0, dtype=np.float32)
        ids = self._retriever.get_tokens_ids(tokenize(query))
        if not ids:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(ids), dtype=np.float32)

    # -- on disk -------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory), show_progress=False)
        (directory / DOCS_FILE).write_text(json.dumps({"key": self.key, "doc_ids": self.doc_ids}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "BM25Index":
        import bm25s

        docs = json.loads((directory / DOCS_FILE).read_text(encoding="utf-8"))
        retriever = bm25s.BM25.load(str(directory), load_corpus=False, mmap=False, show_progress=False)
        return cls(retriever, docs["doc_ids"], docs["key"])


def open_cached(index_dir: str | Path, docs: Iterable[tuple[str, str]]) -> tuple[BM25Index, str]:
    """The BM25 index for ``docs`` and how it was had: "loaded" from the cache next to
    the scene index, "built" (and cached), or "built-uncached" (the folder is read-only).

    ``docs`` is iterated once for the cache key and, on a miss, once more to build, so
    it may stream (e.g. from the scene index's catalog) as long as it can be re-iterated.
    Building is written to a temporary folder and renamed into place, so a reader never
    sees half a cache, and two processes building at once both end with a whole one.
    """
    index_dir = Path(index_dir)
    count = 0

    def counted():
        nonlocal count
        for doc in docs:
            count += 1
            yield doc

    key = corpus_key(counted())
    folder = index_dir / f"{CACHE_PREFIX}{key}"
    if (folder / DOCS_FILE).is_file():
        try:
            cached = BM25Index.load(folder)
            if cached.key == key and len(cached) == count:
                return cached, "loaded"
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    built = BM25Index.build(docs, key=key)
    if not len(built):
        return built, "built-uncached"
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=index_dir, prefix=f".{CACHE_PREFIX}"))
        built.save(tmp)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        if "tmp" in locals():
            shutil.rmtree(tmp, ignore_errors=True)
        return built, "built-uncached"
    _remove_stale(index_dir, keep=folder.name)
    return built, "built"


def _remove_stale(index_dir: Path, *, keep: str) -> None:
    for old in index_dir.glob(f"{CACHE_PREFIX}*"):
        if old.name != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)

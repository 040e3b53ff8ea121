"""Optional cross-encoder reranking of the first results.

A cross-encoder reads the query and a scene together, so it judges relevance far
better than comparing two independent embeddings, but it costs one forward pass per
(query, scene) pair: it only re-scores the top few candidates the fast retrievers found.

The model comes from a local directory (no hub at run time) and is loaded on first
use, so a searcher configured with a reranker starts as fast as one without, and
torch is imported only when reranking actually happens.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

RERANK_TOP_N = 20  # candidates re-scored per query: ~0.1 s each for a MiniLM-sized cross-encoder on a CPU
RERANK_TEXT_CHARS = 2000  # a cross-encoder reads ~512 word pieces; more text is wasted work


class Reranker:
    def __init__(self, model_dir: str | Path, *, device: str = "cpu", batch_size: int = 16, max_length: int = 512) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir} is not a cross-encoder model directory (no config.json)")
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:  # searches run in worker threads; load once
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(str(self.model_dir), device=self.device, local_files_only=True,
                                           max_length=self.max_length)
            return self._model

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance of each text to the query; higher is closer."""
        if not texts:
            return []
        pairs = [(query[:RERANK_TEXT_CHARS], text[:RERANK_TEXT_CHARS]) for text in texts]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores.reshape(len(texts), -1)[:, 0]]

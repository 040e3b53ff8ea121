"""Sentence embeddings for scenes and queries.

sentence-transformers (and so torch) is imported only when an Embedder is built:
bot.core imports retrieval, and the bot process must not pull in torch.
The model is always loaded from a local directory: there is no model hub at run time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np


class Embedder:
    """Wraps a local sentence-transformers model; vectors come out L2-normalised
    float32 so that inner product in the index is cosine similarity."""

    def __init__(self, model_dir: str | Path, *, batch_size: int = 32, device: str = "cpu", model_id: str | None = None) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "modules.json").is_file() and not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir} is not a sentence-transformers model directory (no modules.json or config.json)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model_dir = model_dir
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        # renamed in sentence-transformers 6; keep working with 3.x-5.x too
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            dim = int(self._model.encode(["probe"], convert_to_numpy=True).shape[1])
        self.dim = int(dim)
        self.model_id = model_id or model_fingerprint(model_dir)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Word pieces the model reads of `texts`, after its own truncation (for usage reports)."""
        # `preprocess` is `tokenize` renamed in sentence-transformers 6 (the old name warns).
        tokenize = getattr(self._model, "preprocess", None) or self._model.tokenize
        return int(tokenize(list(texts))["attention_mask"].sum())


def model_fingerprint(model_dir: Path) -> str:
    """A readable id that changes when the model does: "<name>:<hash of config + weights size>".

    Vectors from two different models are meaningless together, so the index keys
    on this. Hashing the whole weights file would cost seconds per start; config
    plus weight-file sizes tells real models apart.
    """
    name = model_dir.name if model_dir.name not in ("model", "") else model_dir.parent.name
    digest = hashlib.sha256()
    for rel in ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "tokenizer.json", "vocab.txt"):
        file = model_dir / rel
        if file.is_file() and file.stat().st_size < 5_000_000:
            digest.update(rel.encode() + file.read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{name}:{digest.hexdigest()[:12]}"

"""A real but tiny sentence-transformers model, built from a config, for unit tests.

Same loading path as all-MiniLM (a local directory with modules.json), so tests
exercise the real Embedder code; random weights over a WordPiece vocabulary
trained on bundled scripts still place texts that share words close together,
which is all that ingest/search tests need. Builds in a second or two on a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HIDDEN = 64


def _training_texts() -> list[str]:
    from retrieval.bundled import bundled_corpus_dir

    corpus = bundled_corpus_dir() / "screenplays"
    files = sorted(corpus.rglob("*.fountain"))
    return [f.read_text(encoding="utf-8-sig", errors="replace") for f in files]


def build_tiny_embedder(directory: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny BERT + mean pooling + normalize sentence-transformers model to ``directory``."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # 3.x - 5.x
        from sentence_transformers import models
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    directory = Path(directory)
    base = directory / "_base"
    base.mkdir(parents=True, exist_ok=True)

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(_training_texts(), vocab_size=3000, min_frequency=1, show_progress=False)
    wordpiece.save(str(base / "tokenizer.json"))
    # tokenizer_file rather than a vocab argument: its name differs between transformers 4 and 5
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(base / "tokenizer.json"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=256,
    )
    tokenizer.save_pretrained(str(base))

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        initializer_range=1.0,
    )
    bert = BertModel(config)
    _make_bag_of_words(bert)
    bert.save_pretrained(str(base))

    transformer = models.Transformer(str(base), max_seq_length=256)
    pooling = models.Pooling(HIDDEN, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    out = directory / "model"
    model.save(str(out))
    return out


def _make_bag_of_words(bert) -> None:
    """Silence position, segment, attention and feed-forward contributions.

    A randomly initialised transformer maps every text to nearly the same vector
    (cosine ~0.99), which makes search tests meaningless. With these zeroed, the
    model is mean-pooled, layer-normed random word vectors: texts sharing words are
    close, unrelated texts are not, and the same text always lands in the same place.
    """
    import torch

    with torch.no_grad():
        bert.embeddings.position_embeddings.weight.zero_()
        bert.embeddings.token_type_embeddings.weight.zero_()
        for layer in bert.encoder.layer:
            layer.attention.output.dense.weight.zero_()
            layer.attention.output.dense.bias.zero_()
            layer.output.dense.weight.zero_()
            layer.output.dense.bias.zero_()

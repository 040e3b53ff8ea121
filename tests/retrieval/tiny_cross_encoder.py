"""A real but tiny cross-encoder (BERT with one output logit), built from a config.

No reranker model is available offline; this one has random weights, so its scores
mean nothing, but they are deterministic and differ between texts, which is all a
test needs to prove that results follow the reranker's order. It loads through
sentence_transformers.CrossEncoder from a local directory, as a real one would.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build_tiny_cross_encoder(directory: str | Path, *, seed: int = 0) -> Path:
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PreTrainedTokenizerFast,
    )

    from tests.retrieval.tiny_embedder import _training_texts

    out = Path(directory) / "model"
    out.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(_training_texts(), vocab_size=2000, min_frequency=1, show_progress=False)
    wordpiece.save(str(out / "tokenizer.json"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"), unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=256)
    tokenizer.save_pretrained(str(out))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=256, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(str(out))
    return out

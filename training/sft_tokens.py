"""Chat examples -> token ids with the loss on the scene only.

The prompt part (system, request, retrieval context) is rendered with the model's own
chat template and ``add_generation_prompt=True``, exactly as the backend renders a
request; the scene is what follows it. Labels are -100 over the prompt, so the adapter
learns to write scenes, not to echo requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

IGNORE = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    @property
    def scored_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def tokenize_chat(tokenizer: Any, messages: Sequence[dict[str, str]], *, max_len: int) -> TokenizedExample | None:
    """One example whose last message is the assistant's scene; None when nothing of the
    scene fits in ``max_len`` (a prompt that long teaches nothing)."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message of a training example must be the assistant's scene")
    prompt_ids = _ids(tokenizer.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=True))
    full_ids = _ids(tokenizer.apply_chat_template(list(messages), tokenize=True))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # A template that renders the prompt differently once an answer follows: fall back to
        # prompt + answer tokens, which is what generation sees anyway.
        answer = tokenizer(messages[-1]["content"] + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
        full_ids = prompt_ids + list(answer)
    full_ids = full_ids[:max_len]
    labels = [IGNORE] * min(len(prompt_ids), len(full_ids)) + full_ids[len(prompt_ids):]
    example = TokenizedExample(full_ids, labels)
    return example if example.scored_tokens else None


def _ids(encoded: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); 4.x a list
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def pad_batch(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for a causal LM: input_ids, attention_mask, labels."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    ids, mask, labels = [], [], []
    for example in examples:
        pad = width - len(example.input_ids)
        ids.append(example.input_ids + [pad_id] * pad)
        mask.append([1] * len(example.input_ids) + [0] * pad)
        labels.append(example.labels + [IGNORE] * pad)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}

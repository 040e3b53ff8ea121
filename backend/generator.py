"""A transformers causal LM behind a chat interface: messages in, text out.

CUDA in bfloat16 when present (and allowed by the device setting), CPU float32
otherwise. One generate() at a time per model: the batching scheduler of the backend
issue replaces the lock; callers already go through asyncio.to_thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path


class PromptTooLongError(ValueError):
    """The prompt plus max_tokens does not fit the model's context window."""


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None


def pick_device(setting: str) -> str:
    import torch

    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


class ChatGenerator:
    def __init__(self, model_path: str | Path, *, name: str, device: str = "auto") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(self.device)
        self.model.eval()
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._lock = threading.Lock()

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self._encode(messages))

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(encoded, "keys"):  # transformers 5 returns a BatchEncoding
            encoded = encoded["input_ids"]
        return list(encoded)

    def generate(self, messages: list[dict[str, str]], params: SamplingParams) -> GenerationResult:
        import torch

        prompt_ids = self._encode(messages)
        if len(prompt_ids) + params.max_tokens > self.context_window:
            raise PromptTooLongError(
                f"prompt is {len(prompt_ids)} tokens; with max_tokens {params.max_tokens} it exceeds "
                f"the context window of {self.context_window} tokens"
            )
        input_ids = torch.tensor([prompt_ids], device=self.device)
        sampling = params.temperature > 0
        options = dict(
            max_new_tokens=params.max_tokens,
            do_sample=sampling,
            repetition_penalty=params.repetition_penalty,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        if sampling:
            options.update(temperature=params.temperature, top_p=params.top_p)
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **options)
        new_tokens = output[0, len(prompt_ids):].tolist()
        finished = bool(new_tokens) and new_tokens[-1] == self.tokenizer.eos_token_id
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        return GenerationResult(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(new_tokens),
            finish_reason="stop" if finished or len(new_tokens) < params.max_tokens else "length",
        )

"""A transformers causal LM behind a chat interface: messages in, text out.

CUDA in bfloat16 when present (and allowed by the device setting), CPU float32
otherwise. The HTTP backend batches requests through backend.batching; generate() is
the same decode loop with a batch of one, for scripts and tests. Every forward pass
holds `model_lock`, so several loops may share one model (PEFT's mixed-adapter hooks
are installed on the shared modules for the length of a forward).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.constraints import GrammarVocabulary
    from backend.sampling import SamplingParams

log = logging.getLogger(__name__)


class PromptTooLongError(ValueError):
    """The prompt plus max_tokens does not fit the model's context window."""


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    guard_interventions: int = 0  # tokens a degeneration guard refused, and lines it made end


def pick_device(setting: str) -> str:
    import torch

    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


class ChatGenerator:
    def __init__(self, model_path: str | Path, *, name: str, device: str = "auto", cpu_int8: bool = False) -> None:
        """``cpu_int8``: on a CPU, decode with the linear layers in int8 while no LoRA adapter is
        loaded (int8_copy); a GPU runs bfloat16 either way."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self._base_model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(self.device)
        self._base_model.eval()
        self._int8_model = int8_copy(self._base_model) if cpu_int8 and self.device == "cpu" else None
        self.context_window = int(getattr(self._base_model.config, "max_position_embeddings", 2048))
        self.stop_ids = stop_token_ids(self.tokenizer, self._base_model)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.stop_ids)
        self.model_lock: threading.Lock | threading.RLock = threading.Lock()
        self.adapters = None  # an AdapterSet once attach_adapters() ran
        self._grammar_vocabulary: GrammarVocabulary | None = None
        self._grammar_vocabulary_lock = threading.Lock()

    @property
    def model(self):
        """The model to run now: PEFT wraps (and unwraps) the base model as adapters come and go;
        with no adapter loaded, the int8 copy when there is one."""
        if self.adapters is not None and self.adapters.is_peft:
            return self.adapters.model
        return self._int8_model or self._base_model

    @property
    def quantized(self) -> bool:
        """Whether the model that runs now is the int8 copy."""
        return self._int8_model is not None and self.model is self._int8_model

    @model.setter
    def model(self, value) -> None:
        """Replace the model outright (e.g. a PeftModel built by hand); only without an AdapterSet."""
        if self.adapters is not None:
            raise RuntimeError("adapters are managed by the AdapterSet; load them through the registry")
        self._base_model, self._int8_model = value, None

    def attach_adapters(self, adapters) -> None:
        """Serve LoRA versions from a backend.adapters.AdapterSet built on this generator's model.

        Its lock becomes the model lock, so loading or unloading an adapter never lands in
        the middle of a decode step."""
        self.adapters = adapters
        self.model_lock = adapters.lock

    def grammar_vocabulary(self) -> GrammarVocabulary:
        """The tokenizer as llguidance sees it, for constrained rows. Built on first use, by the
        decode worker (~0.35 s for SmolLM2): never at startup, never on the event loop."""
        with self._grammar_vocabulary_lock:
            if self._grammar_vocabulary is None:
                from backend.constraints import GrammarVocabulary

                self._grammar_vocabulary = GrammarVocabulary.from_hf(self.tokenizer, width=self._logits_width(),
                                                                     stop_ids=self.stop_ids)
            return self._grammar_vocabulary

    def _logits_width(self) -> int:
        """The model's output width, which may exceed the tokenizer's (padded embeddings)."""
        head = self._base_model.get_output_embeddings()
        return int(getattr(head, "out_features", None) or self._base_model.config.vocab_size)

    def names(self) -> list[str]:
        return self.adapters.names() if self.adapters is not None else [self.name]

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self._encode(messages))

    def _encode(self, messages: list[dict[str, str]], *, continue_final: bool = False) -> list[int]:
        # continue_final: the last (assistant) message is left open for the model to go on
        # with, as vLLM's continue_final_message does; no new assistant header is added.
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=not continue_final,
                                                     continue_final_message=continue_final, tokenize=True)
        if hasattr(encoded, "keys"):  # transformers 5 returns a BatchEncoding
            encoded = encoded["input_ids"]
        return list(encoded)

    def encode_prompt(self, messages: list[dict[str, str]], max_tokens: int, *,
                      continue_final: bool = False) -> list[int]:
        """The prompt's token ids; refuses a prompt that leaves no room for max_tokens."""
        prompt_ids = self._encode(messages, continue_final=continue_final)
        if len(prompt_ids) + max_tokens > self.context_window:
            raise PromptTooLongError(
                f"prompt is {len(prompt_ids)} tokens; with max_tokens {max_tokens} it exceeds "
                f"the context window of {self.context_window} tokens"
            )
        return prompt_ids

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def generate(self, messages: list[dict[str, str]], params: SamplingParams, *,
                 adapter: str | None = None) -> GenerationResult:
        from backend.engine import BatchEngine, Row

        row = Row(self.encode_prompt(messages, params.max_tokens), params, adapter)
        engine = BatchEngine(self)
        emitted = engine.admit([row])
        while not emitted[-1].finish_reason:
            emitted = engine.step()
        return self.result(row, emitted[-1].finish_reason)

    def result(self, row, finish_reason: str) -> GenerationResult:
        """The response for a finished row: text without the stop token, which still counts as generated."""
        text_ids = row.generated[:-1] if row.generated and row.generated[-1] in self.stop_ids else row.generated
        constraint = getattr(row, "constraint", None)
        interventions = constraint.interventions if constraint is not None else 0
        if constraint is not None:
            log.debug("constrained row finished (%s, %s): %d guard interventions", finish_reason,
                      constraint.finish_cause or "by the model", interventions)
        return GenerationResult(text=self.decode(text_ids).strip(), prompt_tokens=len(row.prompt_ids),
                                completion_tokens=len(row.generated), finish_reason=finish_reason,
                                guard_interventions=interventions)


def int8_copy(model):
    """The model with every linear layer in int8 (weights quantized once, activations per call):
    torch's dynamic quantization, on a 2-core CPU ~6× faster a decode step for SmolLM2-135M at
    one row, ~2.5× at eight (benchmarks/RESULTS.md, with its effect on scene quality). PEFT
    cannot wrap these layers, so adapters load into the full-precision model, which then serves.

    torch.ao.quantization is marked for migration to torchao; it is what torch itself ships
    (torchao would be one more dependency for the same kernels on a CPU)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the migration notice, once per load
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    quantized.eval()
    return quantized


def stop_token_ids(tokenizer, model) -> frozenset[int]:
    """The tokenizer's EOS plus whatever the model's generation config also stops on (one id or a list)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return frozenset(ids)

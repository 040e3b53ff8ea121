"""The decode loop: one running batch over a transformers causal LM, token by token.

Why our own loop instead of `model.generate`: generate() runs a fixed batch to the end
with one set of sampling settings. Here rows join at any step boundary (continuous
batching), each samples with its own settings and seed, and a finished or cancelled row
leaves the batch at once, so it stops costing compute.

How rows of different lengths share one KV cache: everything is left-padded. A new group
of prompts is prefilled on its own (left-padded among themselves), then its cache is
concatenated to the running one after padding the shorter of the two on the left with
zeros; the attention mask hides every padded column and position ids count only real
tokens, so a row computes what it would compute alone. When rows leave, leading columns
that no remaining row uses are cut off again. A group whose prompts open the same way
starts from that opening's keys and values, computed once (backend.prefix_cache); its
padding then sits between the opening and each row's own tokens.

Rows that ask for a grammar or a degeneration guard get a backend.constraints.RowConstraint
when admitted (in the worker thread: its matcher and the shared llguidance vocabulary take
time to build); a row whose grammar is complete, or broken, finishes with "stop".

Text the grammar forces (the rest of a cue once its first letters are drawn, the line break
after it) is not drawn token by token: after each drawn token the row takes every token the
grammar forces next at once ("jump-forward"). A row running alone feeds them all to the model
in its next forward pass, which costs about what one token costs (a decode step on a CPU is
bound by reading the weights, not by the tokens): with about a fifth of a scene's tokens
forced, one writer's scene takes a fifth fewer steps. In a batch each row feeds one token a
step as before, forced ones without a draw: a wider step would widen every row's part of
the KV cache with masked columns and multiply the work of all rows (measured with 8 rows on
2 cores, the same 50 scenes: 20% fewer steps, each taking nearly twice as long; 325 s against 211 s).

Only full-attention DynamicCache models (Llama, Qwen2, SmolLM2, ...) are supported:
sliding-window caches cannot be padded this way.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F

from backend.prefix_cache import Known, PrefixCache
from backend.sampling import RowSampler, SamplingParams, pick_tokens

if TYPE_CHECKING:
    from backend.constraints import RowConstraint

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch


class ModelHost(Protocol):
    """What the engine needs from its owner (ChatGenerator is one)."""

    model: Any
    device: str
    stop_ids: frozenset[int]
    pad_id: int
    model_lock: threading.Lock

    def grammar_vocabulary(self) -> Any:
        """The backend.constraints.GrammarVocabulary of the model's tokenizer (built on first use)."""


@dataclass(eq=False)
class Row:
    """One sequence in the running batch; `owner` is whatever the caller tracks it by."""

    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None = None
    owner: Any = None
    generated: list[int] = field(default_factory=list)
    sampler: RowSampler = field(init=False)
    unfed: int = 0  # generated tokens the model has not read yet: the last drawn one and those forced after it

    def __post_init__(self) -> None:
        self.sampler = RowSampler(self.params, list(self.prompt_ids))

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.generated)

    @property
    def constraint(self) -> RowConstraint | None:
        return self.sampler.constraint


@dataclass(frozen=True)
class Emitted:
    row: Row
    token: int
    finish_reason: str | None  # "stop" (a stop token), "length" (max_tokens), None (goes on)


def is_peft_model(model: Any) -> bool:
    if "peft" not in sys.modules:  # never imported: the model cannot be a PeftModel
        return False
    from peft import PeftModel

    return isinstance(model, PeftModel)


class BatchEngine:
    def __init__(self, host: ModelHost, *, jump_forward: bool = True) -> None:
        self.host = host
        self.jump_forward = jump_forward  # take grammar-forced tokens without a step each
        self.rows: list[Row] = []
        self.forward_passes = 0
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # [rows, columns] 1 = real token
        self._seen: torch.Tensor | None = None  # [rows, vocab] tokens a row has read or written
        self.openings = PrefixCache()

    # -- public steps ---------------------------------------------------------------------

    def admit(self, rows: list[Row]) -> list[Emitted]:
        """Prefill new rows, pick their first tokens and merge them into the running batch."""
        if not rows:
            return []
        self._check_adapters(rows)
        self._constrain(rows)
        device = self.host.device
        opening = self._opening(rows)
        start = opening.tokens if opening else 0
        width = max(len(row.prompt_ids) for row in rows) - start
        # Left-padded, after the opening where there is one: [opening][padding][the row's own tokens].
        ids = torch.tensor([[self.host.pad_id] * (width - len(row.prompt_ids) + start) + row.prompt_ids[start:]
                            for row in rows], device=device)
        mask = torch.tensor([[1] * start + [0] * (width - len(row.prompt_ids) + start) + [1] * (len(row.prompt_ids) - start)
                             for row in rows], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, start:]
        cache = self._new_cache(opening.layers if opening else None, len(rows))
        logits = self._forward(ids, mask, positions, cache, rows)
        seen = torch.zeros(len(rows), logits.shape[-1], dtype=torch.bool, device=device)
        for index, row in enumerate(rows):
            seen[index, row.prompt_ids] = True
        self._merge(rows, cache, mask, seen)
        return self._advance(logits, start=len(self.rows) - len(rows))

    def step(self) -> list[Emitted]:
        """One decode step for every running row."""
        if not self.rows:
            return []
        device = self.host.device
        # Alone, a row feeds everything it has not fed yet; in a batch, its oldest token (see above).
        width = self.rows[0].unfed if len(self.rows) == 1 else 1
        ids, positions = [], []
        for row in self.rows:
            first = row.length - row.unfed  # position of the oldest token not fed yet
            ids.append(row.generated[first - len(row.prompt_ids):][:width])
            positions.append(list(range(first, first + width)))
            row.unfed -= width
        self._mask = torch.cat([self._mask, torch.ones(len(self.rows), width, dtype=self._mask.dtype, device=device)], 1)
        logits = self._forward(torch.tensor(ids, device=device), self._mask, torch.tensor(positions, device=device),
                               self._cache, self.rows)
        return self._advance(logits, start=0)

    def drop(self, rows: list[Row]) -> None:
        """Take rows out of the batch (finished, cancelled or timed out)."""
        leaving = set(map(id, rows))
        keep = [index for index, row in enumerate(self.rows) if id(row) not in leaving]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.reset()
            return
        index = torch.tensor(keep, device=self.host.device)
        self.rows = [self.rows[i] for i in keep]
        self._cache.batch_select_indices(index)
        self._mask = self._mask.index_select(0, index)
        self._seen = self._seen.index_select(0, index)
        self._trim()

    def reset(self) -> None:
        """Forget the whole batch, e.g. after a failed forward left the cache in an unknown state."""
        self.rows, self._cache, self._mask, self._seen = [], None, None, None

    # -- internals ------------------------------------------------------------------------

    def _check_adapters(self, rows: list[Row]) -> None:
        if not is_peft_model(self.host.model):
            named = sorted({row.adapter for row in rows if row.adapter is not None})
            if named:
                raise ValueError(f"adapters {named} asked for, but the model has no LoRA adapters loaded")

    def _constrain(self, rows: list[Row]) -> None:
        """Give each row that asks for a grammar or guard its matcher and guard state."""
        asking = [row for row in rows if row.params.constrained and row.constraint is None]
        if not asking:
            return
        from backend.constraints import RowConstraint

        vocabulary = self.host.grammar_vocabulary()
        for row in asking:
            row.sampler.constraint = RowConstraint(vocabulary, row.params.grammar, row.params.guard)

    def _new_cache(self, opening=None, rows: int = 1) -> Any:
        from backend.kv_cache import growing_cache

        return growing_cache(opening, rows)

    def _opening(self, rows: list[Row]) -> Known | None:
        """The computed prompt opening these rows start from (backend.prefix_cache), computing and
        keeping it first when it is new; None when they share none, or mix adapters."""
        adapter = rows[0].adapter
        if any(row.adapter != adapter for row in rows):
            return None
        # Keys and values differ between models (the int8 copy and the full-precision one that
        # serves once an adapter loads), so an opening belongs to the model that computed it.
        owner = (id(self.host.model), adapter)
        known = self.openings.opening_for(owner, [row.prompt_ids for row in rows])
        if known is None or known.layers is not None:
            return known
        tokens = rows[0].prompt_ids[:known.tokens]
        ids = torch.tensor([tokens], device=self.host.device)
        cache = self._new_cache()
        self._forward(ids, torch.ones_like(ids), torch.arange(len(tokens), device=self.host.device)[None], cache,
                      rows[:1])
        layers = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
        self.openings.keep(owner, tokens, layers)
        return Known(known.tokens, layers)

    def _forward(self, ids, mask, positions, cache, rows: list[Row]) -> torch.Tensor:
        with self.host.model_lock, torch.inference_mode():
            # Read the model under the lock: adapter loading may wrap or unwrap it between steps.
            model = self.host.model
            extra = {_cache_argument(model): cache}
            if is_peft_model(model):
                adapters = getattr(self.host, "adapters", None)
                extra["adapter_names"] = (adapters.adapter_names([row.adapter for row in rows]) if adapters
                                          else [row.adapter or BASE_ADAPTER for row in rows])
            output = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                           logits_to_keep=1, **extra)
        self.forward_passes += 1
        return output.logits[:, -1, :]

    def _advance(self, logits: torch.Tensor, *, start: int) -> list[Emitted]:
        """Pick a token for rows[start:], record it, and drop the rows that finished."""
        rows = self.rows[start:]
        seen = self._seen[start:]
        # A row still holding forced tokens to feed has its next token already: no draw for it.
        drawing = [index for index, row in enumerate(rows) if row.unfed == 0]
        if len(drawing) < len(rows):
            logits, seen_by_drawing = logits[drawing], seen[drawing]
        else:
            seen_by_drawing = seen
        tokens = pick_tokens(logits, [rows[index].sampler for index in drawing], seen_by_drawing) if drawing else []
        emitted, finished = [], []
        for index, token in zip(drawing, tokens):
            row = rows[index]
            reason = self._take(row, token, seen[index])
            emitted.append(Emitted(row, token, reason))
            if reason is None and self.jump_forward and row.constraint is not None:
                # Jump forward: whatever the grammar now forces needs no draw of its own.
                for forced in row.constraint.forced_tokens():
                    reason = self._take(row, forced, seen[index])
                    emitted.append(Emitted(row, forced, reason))
                    if reason:
                        break
            if reason:
                finished.append(row)
        self.drop(finished)
        return emitted

    def _take(self, row: Row, token: int, seen: torch.Tensor) -> str | None:
        """Add a token to the row; the finish reason it brings, if any."""
        row.generated.append(token)
        row.unfed += 1
        row.sampler.append(token)
        seen[token] = True
        grammar_ended = row.constraint is not None and row.constraint.consume(token)
        if token in self.host.stop_ids or grammar_ended:
            return "stop"
        if len(row.generated) >= row.params.max_tokens:
            return "length"
        return None

    def _merge(self, rows: list[Row], cache: Any, mask: torch.Tensor, seen: torch.Tensor) -> None:
        if not self.rows:
            self.rows, self._cache, self._mask, self._seen = list(rows), cache, mask, seen
            return
        old_width, new_width = self._mask.shape[1], mask.shape[1]
        width = max(old_width, new_width)
        for old, new in zip(self._cache.layers, cache.layers):
            old.keys, old.values = (torch.cat([_pad_left(a, width - old_width), _pad_left(b, width - new_width)], 0)
                                    for a, b in ((old.keys, new.keys), (old.values, new.values)))
        self._mask = torch.cat([F.pad(self._mask, (width - old_width, 0)), F.pad(mask, (width - new_width, 0))], 0)
        self._seen = torch.cat([self._seen, seen], 0)
        self.rows = self.rows + list(rows)

    def _trim(self) -> None:
        """Cut leading columns no remaining row attends to (the long prompt that just left)."""
        used = self._mask.any(dim=0)
        first = int(used.int().argmax())
        if first == 0:
            return
        self._mask = self._mask[:, first:]
        for layer in self._cache.layers:
            layer.keys = layer.keys[:, :, first:, :]
            layer.values = layer.values[:, :, first:, :]


def _cache_argument(model: Any) -> str:
    """transformers 5 renames `past_key_values` to `cache` (the old name warns until 5.40)."""
    base = model.get_base_model() if is_peft_model(model) else model
    return _cache_argument_of(type(base))


@functools.cache
def _cache_argument_of(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _pad_left(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    """Zero keys/values in front along the sequence axis ([batch, heads, seq, dim])."""
    return F.pad(tensor, (0, 0, columns, 0)) if columns else tensor

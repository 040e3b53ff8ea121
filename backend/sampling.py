"""Per-row logits processing and sampling for a batch whose rows asked for different things.

transformers' generate() applies one set of processors to the whole batch; a batch here
mixes writers, each with their own temperature, top_p, penalties and seed. So every
setting is a per-row tensor (or a per-row Python structure where the work is inherently
per row, as for n-gram bans), and each row draws its random numbers from its own
torch.Generator: a row's text then depends on its seed and prompt only, never on who it
shares the batch with. The order (penalties, then temperature, then top_p) is HF's, so a
greedy row matches `model.generate(do_sample=False)` token for token.

A row may also carry a constraint (backend.constraints.RowConstraint: a grammar and
degeneration guards). Its mask applies after the penalties and before temperature and
top_p, as vLLM applies its grammar bitmask; the grammar always wins over n-gram bans, so a
row is never left without a token. A drawn token the constraint refuses is banned and the
row draws again, from its own dice, so its text still depends on nothing but its own
prompt, settings and seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from backend.constraints import DegenerationGuard


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None
    grammar: str | None = None  # an llguidance grammar (backend.requests converts Lark, regex, JSON schema)
    guard: DegenerationGuard | None = None

    @property
    def constrained(self) -> bool:
        return self.grammar is not None or (self.guard is not None and self.guard.active)


_SEEDS = random.SystemRandom()
_CANDIDATES = 512  # sorting the whole vocabulary per row per step costs more than the rest of sampling
MAX_REFUSALS_PER_STEP = 16  # past this many refused draws a row takes what it drew: a guard may not stall it


class TokenConstraint(Protocol):
    """What sampling asks of a row's constraint (backend.constraints.RowConstraint is the real one)."""

    def allowed_tokens(self) -> torch.Tensor | None:
        """A CPU bool mask over the vocabulary, never all False; None where any token may come."""

    def refuses(self, token: int) -> bool:
        """Whether a drawn token must be drawn again."""


@dataclass
class RowSampler:
    """What one row needs to pick its next token: its settings, its history, its dice."""

    params: SamplingParams
    history: list[int]  # prompt and generated ids: penalties look at both, as in HF
    generator: torch.Generator = field(init=False)
    constraint: TokenConstraint | None = field(default=None, init=False)  # set by the engine when admitted
    _ngrams: dict[tuple[int, ...], set[int]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.params.seed if self.params.seed is not None else _SEEDS.getrandbits(63))
        size = self.params.no_repeat_ngram_size
        if size:
            for end in range(size, len(self.history) + 1):
                self._remember(self.history[end - size:end])

    def _remember(self, gram: list[int]) -> None:
        self._ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def append(self, token: int) -> None:
        self.history.append(token)
        size = self.params.no_repeat_ngram_size
        if size and len(self.history) >= size:
            self._remember(self.history[-size:])

    def banned(self) -> set[int]:
        """Tokens that would complete an n-gram this row has already produced (or read)."""
        size = self.params.no_repeat_ngram_size
        if not size or len(self.history) < size - 1:
            return set()
        prefix = tuple(self.history[len(self.history) - size + 1:]) if size > 1 else ()
        return self._ngrams.get(prefix, set())


def _row_tensor(values: list[float], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)


def apply_penalties(logits: torch.Tensor, rows: list[RowSampler], seen: torch.Tensor) -> torch.Tensor:
    """Repetition penalty (HF's rule: divide positive logits, multiply negative ones) and n-gram bans."""
    return _ban_repeated_ngrams(_repetition_penalty(logits, rows, seen), rows, range(len(rows)))


def _ban_repeated_ngrams(logits: torch.Tensor, rows: list[RowSampler], indices) -> torch.Tensor:
    """The tokens that would repeat an n-gram, out for rows[index] of ``indices`` (a copy first where
    inference mode made the logits read-only)."""
    for index in indices:
        banned = rows[index].banned()
        if banned:
            logits = _writable(logits)
            logits[index, list(banned)] = float("-inf")
    return logits


def _writable(logits: torch.Tensor) -> torch.Tensor:
    """Logits made under torch.inference_mode cannot be written in place outside it: copy those."""
    return logits.clone() if logits.is_inference() else logits


def _repetition_penalty(logits: torch.Tensor, rows: list[RowSampler], seen: torch.Tensor) -> torch.Tensor:
    penalty = _row_tensor([row.params.repetition_penalty for row in rows], logits.device)
    if bool((penalty != 1.0).any()):
        penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(seen, penalised, logits)
    return logits


def pick_tokens(logits: torch.Tensor, rows: list[RowSampler], seen: torch.Tensor) -> list[int]:
    """One next token per row: argmax for temperature 0, else top_p sampling with the row's own dice."""
    if all(row.constraint is None for row in rows):  # the common case costs nothing extra
        return _draw(apply_penalties(logits.float(), rows, seen), rows)
    logits = _writable(_repetition_penalty(logits.float(), rows, seen))
    _restrict(logits, rows, [row.constraint.allowed_tokens() if row.constraint else None for row in rows])
    tokens = _draw(logits, rows)
    for index, row in enumerate(rows):
        if row.constraint is not None:
            tokens[index] = _redraw_refused(logits[index], row, tokens[index])
    return tokens


def _restrict(logits: torch.Tensor, rows: list[RowSampler], masks: list[torch.Tensor | None]) -> None:
    """n-gram bans and constraint masks, in place. Where the bans would leave a constrained row
    nothing, its mask alone applies: the grammar's forced text beats a repeated n-gram."""
    _ban_repeated_ngrams(logits, rows, [index for index, mask in enumerate(masks) if mask is None])
    constrained: list[int] = []
    allowed: list[torch.Tensor] = []
    for index, (row, mask) in enumerate(zip(rows, masks)):
        if mask is None:
            continue
        banned = row.banned()
        if banned:
            narrowed = mask.clone()
            narrowed[list(banned)] = False
            if narrowed.numpy().any():  # numpy's any: a tenth of torch's on a CPU vector this size
                mask = narrowed
        constrained.append(index)
        allowed.append(mask)
    if not constrained:
        return
    if allowed[0].shape[-1] != logits.shape[-1]:
        raise ValueError(f"a constraint's mask covers {allowed[0].shape[-1]} tokens, the logits {logits.shape[-1]}")
    forbidden = ~torch.stack(allowed).to(logits.device)  # one transfer for all constrained rows
    for slot, index in enumerate(constrained):
        logits[index].masked_fill_(forbidden[slot], float("-inf"))


def _redraw_refused(row_logits: torch.Tensor, row: RowSampler, token: int) -> int:
    """Ban and draw again while the row's constraint refuses what was drawn (a bounded number of
    times, and never into an empty row: then the last draw stands)."""
    for _ in range(MAX_REFUSALS_PER_STEP):
        if not row.constraint.refuses(token):
            return token
        row_logits[token] = float("-inf")
        if not bool(torch.isfinite(row_logits).any()):
            return token
        token = _draw(row_logits.unsqueeze(0), [row])[0]
    return token


def _draw(logits: torch.Tensor, rows: list[RowSampler]) -> list[int]:
    greedy = logits.argmax(dim=-1).tolist()
    sampling = [index for index, row in enumerate(rows) if row.params.temperature > 0]
    if not sampling:
        return greedy
    chosen = torch.tensor(sampling, device=logits.device)
    temperature = _row_tensor([rows[i].params.temperature for i in sampling], logits.device)
    top_p = _row_tensor([rows[i].params.top_p for i in sampling], logits.device)
    probs = torch.softmax(logits.index_select(0, chosen) / temperature, dim=-1)
    sorted_probs, order = _nucleus_candidates(probs, top_p)
    # Keep the smallest head of the distribution whose mass reaches top_p (at least one token).
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    cdf = sorted_probs.cumsum(dim=-1)
    # One uniform draw per row from its own generator, then an inverse-CDF lookup: the same
    # draws in the same order whatever the batch looks like.
    draws = torch.stack([torch.rand((), generator=rows[i].generator) for i in sampling]).to(logits.device)
    position = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(1).contiguous())
    position = position.clamp(max=cdf.shape[-1] - 1)
    picked = order.gather(1, position).squeeze(1).tolist()
    for slot, index in enumerate(sampling):
        greedy[index] = picked[slot]
    return greedy


def _nucleus_candidates(probs: torch.Tensor, top_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distribution sorted high to low, or just its head when the head already holds every
    row's top_p mass: tokens past it would be cut anyway, so the result is the same."""
    if probs.shape[-1] > _CANDIDATES:
        head, order = probs.topk(_CANDIDATES, dim=-1)
        if bool((head.sum(dim=-1, keepdim=True) >= top_p).all()):
            return head, order
    return probs.sort(dim=-1, descending=True)

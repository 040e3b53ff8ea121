"""The evaluation gate: a candidate adapter against what serves now, on the serving code path.

    candidate, serving = evaluate_models(EvalSetup(...))
    verdict = decide(candidate, serving, margin=0.02, validity_tolerance=0.125)

Both models are scored on the same material:

- **perplexity** of the scene tokens (the prompt is context, as in training) on the
  dataset's validation split and on a fixed screenplay set from the bundled corpus
  (training.corpus_scenes.heldout_scenes: excerpts never used as training material), so
  a candidate that merely memorised the room's recent approvals does not pass;
- **Fountain validity**: the share of sampled scenes, one per request of a fixed prompt
  set (training.eval_prompts), that parse as Fountain with every requested character
  speaking. Each scene is one sample through the bot's own loop (prefilled heading and
  cue, normalisation, name repair), with no retries, continuations or copy guard, so the
  number says how often the model itself gets it right. Every model gets the prompt it is
  served with, worked example included.

The models run in the backend's own engine (ChatGenerator + AdapterSet + Scheduler, via
backend.inprocess), with the candidate and the serving adapter loaded side by side from a
scratch registry in the run's work directory: their rows share batches, as they would
in production, and nothing is published until the gate has spoken.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from training.sft_tokens import pad_batch, tokenize_chat

CANDIDATE = "candidate"  # the candidate's name in the scratch registry
SCRATCH_REGISTRY = "eval-registry"
PERPLEXITY_BATCH = 8

Chat = Sequence[dict[str, str]]


@dataclass(frozen=True)
class Scores:
    """One model's numbers; None where that measure was not taken (an empty set)."""

    label: str  # "candidate", "base model" or the serving adapter's version
    validation_ppl: float | None = None
    screenplay_ppl: float | None = None
    valid: int = 0
    sampled: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list, repr=False)  # prompt, valid, problems, text

    @property
    def validity(self) -> float | None:
        return self.valid / self.sampled if self.sampled else None

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "validation_ppl": _round(self.validation_ppl),
                "screenplay_ppl": _round(self.screenplay_ppl), "validity": _round(self.validity),
                "valid": self.valid, "sampled": self.sampled}


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: list[str]  # one line per measure, saying how it compared and what was needed

    def as_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reasons": list(self.reasons)}


@dataclass
class EvalSetup:
    base_model_dir: Path
    base_name: str  # what the backend calls the base model (adapters' manifests name it)
    candidate_dir: Path  # PEFT's two files
    serving_dir: Path | None  # the serving adapter version's directory; None: the base model serves
    serving_label: str  # its version, or "base model"
    validation_chats: list[Chat]
    screenplay_chats: list[Chat]
    prompts: list[str]  # requests to sample one scene each from
    sampling: dict[str, Any]  # temperature, top_p, repetition_penalty, no_repeat_ngram_size, max_tokens
    work_dir: Path
    decoding: dict[str, Any] = field(default_factory=dict)  # screenplay.scene_loop.decoding_options: as served
    max_seq_len: int = 512
    seed: int = 0
    device: str = "auto"
    exemplar_chars: int = 600
    bf16: bool = False  # perplexity with bf16 matmuls, as the trainer ran (training.trainer.mixed_bf16)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _relative_gain(candidate: float, serving: float) -> float:
    return (serving - candidate) / serving if serving > 0 else 0.0


def decide(candidate: Scores, serving: Scores, *, margin: float, validity_tolerance: float) -> Verdict:
    """Promote only when perplexity is lower by ``margin`` (relative) on every set both have,
    and the share of valid scenes is not lower by more than ``validity_tolerance``."""
    reasons, passed, compared = [], True, 0
    for name, attribute in (("validation", "validation_ppl"), ("corpus screenplay", "screenplay_ppl")):
        mine, theirs = getattr(candidate, attribute), getattr(serving, attribute)
        if mine is None or theirs is None:
            continue
        compared += 1
        gain = _relative_gain(mine, theirs)
        ok = gain >= margin
        passed &= ok
        reasons.append(f"{name} perplexity {mine:.2f} vs {theirs:.2f} ({serving.label}): "
                       f"{gain:+.1%} {'≥' if ok else '<'} the {margin:.0%} needed")
    if not compared:
        passed = False
        reasons.append("no perplexity could be measured (empty validation and screenplay sets)")
    if candidate.validity is not None and serving.validity is not None:
        drop = serving.validity - candidate.validity
        ok = drop <= validity_tolerance + 1e-9
        passed &= ok
        reasons.append(f"valid scenes {candidate.valid}/{candidate.sampled} vs {serving.valid}/{serving.sampled} "
                       f"({serving.label}): " + ("no worse" if drop <= 0 else f"{drop:.0%} fewer")
                       + ("" if ok else f", more than the {validity_tolerance:.0%} allowed"))
    return Verdict(bool(passed), reasons)


def run_gate(settings: Any, *, model_dir: Path, base_name: str, candidate_dir: Path, serving_dir: Path | None,
             serving_label: str, validation_chats: list[Chat], screenplay_chats: list[Chat],
             work_dir: Path) -> tuple[Scores, Scores, Verdict]:
    """(candidate, serving, verdict) with everything else as ``settings`` (a config Settings) say:
    the held-out prompts no heuristic was tuned on, sampled and decoded as served, and the
    training section's margins. Room runs (training.run) and the house adapter (training.house)
    are judged by this one gate."""
    from screenplay.scene_loop import decoding_options, sampling_parameters
    from training.eval_prompts import HELDOUT_PROMPTS
    from training.trainer import mixed_bf16, pick_device

    t, g = settings.training, settings.generation
    setup = EvalSetup(
        base_model_dir=model_dir, base_name=base_name, candidate_dir=candidate_dir, serving_dir=serving_dir,
        serving_label=serving_label, validation_chats=validation_chats, screenplay_chats=screenplay_chats,
        prompts=list(HELDOUT_PROMPTS[: t.eval_generations]), sampling=sampling_parameters(g),
        decoding=decoding_options(g), work_dir=work_dir, max_seq_len=t.max_seq_len, seed=t.seed,
        device=settings.model.device, exemplar_chars=g.exemplar_chars,
        bf16=mixed_bf16(t.precision, pick_device(settings.model.device)))
    candidate, serving = evaluate_models(setup)
    return candidate, serving, decide(candidate, serving, margin=t.promote_margin,
                                      validity_tolerance=t.validity_tolerance)


# --- running the models -------------------------------------------------------------------


def evaluate_models(setup: EvalSetup) -> tuple[Scores, Scores]:
    """(candidate, serving) scores; loads the base model once with both adapters in it."""
    from backend.adapters import serve_from_scratch
    from backend.generator import ChatGenerator

    registry = setup.work_dir / SCRATCH_REGISTRY
    shutil.rmtree(registry, ignore_errors=True)  # a killed run's leftovers
    sources = {CANDIDATE: setup.candidate_dir}
    serving_version = None
    if setup.serving_dir is not None:
        serving_version = Path(setup.serving_dir).name
        sources[serving_version] = setup.serving_dir
    generator = ChatGenerator(setup.base_model_dir, name=setup.base_name, device=setup.device)
    adapters = serve_from_scratch(generator, registry, sources, base_name=setup.base_name)
    try:
        models = [(CANDIDATE, CANDIDATE), (serving_version, setup.serving_label)]
        perplexities = {label: (perplexity(generator, adapters, version, setup.validation_chats,
                                           max_len=setup.max_seq_len, bf16=setup.bf16),
                                perplexity(generator, adapters, version, setup.screenplay_chats,
                                           max_len=setup.max_seq_len, bf16=setup.bf16))
                        for version, label in models}
        samples = asyncio.run(_sample_all(generator, setup, [(CANDIDATE, CANDIDATE),
                                                             (serving_version or setup.base_name, setup.serving_label)]))
    finally:
        shutil.rmtree(registry, ignore_errors=True)
    scores = []
    for _, label in models:
        rows = samples[label]
        scores.append(Scores(label=label, validation_ppl=perplexities[label][0], screenplay_ppl=perplexities[label][1],
                             valid=sum(1 for row in rows if row["valid"]), sampled=len(rows), samples=rows))
    return scores[0], scores[1]


def perplexity(generator: Any, adapters: Any, version: str | None, chats: Sequence[Chat], *,
               max_len: int, batch_size: int = PERPLEXITY_BATCH, bf16: bool = False) -> float | None:
    """exp(mean negative log-likelihood) of the scene tokens, over all chats together."""
    import torch
    import torch.nn.functional as F

    examples = [e for e in (tokenize_chat(generator.tokenizer, chat, max_len=max_len) for chat in chats) if e]
    if not examples:
        return None
    examples.sort(key=lambda e: len(e.input_ids))  # similar lengths together: less padding
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = pad_batch(examples[start:start + batch_size], generator.pad_id)
        ids = batch["input_ids"].to(generator.device)
        mask = batch["attention_mask"].to(generator.device)
        labels = batch["labels"].to(generator.device)
        device_type = "cuda" if str(generator.device).startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            logits = adapters.forward([version] * len(ids), input_ids=ids, attention_mask=mask).logits.float()
        # Token t is predicted from the positions before it.
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                              ignore_index=-100, reduction="sum")
        total_nll += float(nll)
        total_tokens += int((labels[:, 1:] != -100).sum())
    return math.exp(total_nll / total_tokens) if total_tokens else None


async def _sample_all(generator: Any, setup: EvalSetup, models: list[tuple[str, str]]) -> dict[str, list[dict]]:
    """One scene per prompt per model, all submitted at once so the scheduler batches them."""
    from backend.inprocess import InProcessChat

    chat = InProcessChat(generator, max_batch=max(1, min(32, len(setup.prompts) * len(models))))
    try:
        jobs = [_sample(chat, name, number, prompt, setup) for name, _ in models
                for number, prompt in enumerate(setup.prompts)]
        rows = await asyncio.gather(*jobs)
    finally:
        chat.close()
    out: dict[str, list[dict]] = {label: [] for _, label in models}
    per_model = len(setup.prompts)
    for index, (_, label) in enumerate(models):
        out[label] = list(rows[index * per_model:(index + 1) * per_model])
    return out


async def _sample(chat: Any, model: str, number: int, prompt: str, setup: EvalSetup) -> dict[str, Any]:
    from screenplay.prompting import build_messages, parse_dialogue_request
    from screenplay.scene_loop import generate_scene

    request = parse_dialogue_request(prompt)
    messages = build_messages(request, [], exemplar_chars=setup.exemplar_chars)  # as served: with the worked example
    # The same seed for the same prompt in every model: the comparison is paired.
    result = await generate_scene(chat, model=model, request=request, messages=messages, sampling=setup.sampling,
                                  max_attempts=1, continuation_tries=0, copy_min_words=0,
                                  seed=setup.seed * 1000 + number, **setup.decoding)
    first = result.attempts[0]
    # "valid" is the strict judge's verdict (screenplay/judge.py), the one writers are served under.
    return {"prompt": prompt, "valid": first.report.valid, "problems": list(first.report.problems),
            "looping": first.report.looping, "text": first.text}

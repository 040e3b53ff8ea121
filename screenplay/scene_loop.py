"""The scene loop: generate, normalize to Fountain, repair, validate, retry, continue silent
voices and check for copying, against anything that speaks the chat-completions API.

    result = await generate_scene(chat, model="smollm2-135m-instruct", request=request,
                                  messages=build_messages(request, exemplars), sampling=sampling_parameters(g))

The bot's /dialogue and thread follow-ups, the training gate and the benchmarks all run
this one loop (the bot over HTTP, the gate and benchmarks over the backend in process), so
what is measured is what writers are served. No store is touched here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Sequence

from config.settings import GenerationSettings
from llm.client import ChatClient
from retrieval.types import SceneHit
from screenplay.copy_guard import (
    COPY_MIN_WORDS,
    COPY_SEARCH_K,
    CopyHit,
    CopySource,
    check_copy,
)
from screenplay.form import (
    HEADING_LINE,
    ValidationReport,
    derive_heading,
    normalize_fountain,
    repair_names,
    validate_fountain,
)
from screenplay.prompting import (
    CONTINUE_FINAL_MESSAGE,
    HEADING_MAX_TOKENS,
    HEADING_PREFILL,
    DialogueRequest,
    build_prefill,
    heading_from_completion,
    join_prefill,
    load_template,
    with_prefill,
)

# Generations per /dialogue when the answer is not valid Fountain; the bot reads
# settings.generation.max_attempts, this is the default for callers without settings.
MAX_ATTEMPTS = 3
# Tokens for continuing a scene with a missing character's cue: a few lines of dialogue.
CONTINUATION_MAX_TOKENS = 96
# Short requests per silent character: SmolLM2 sometimes answers a written cue with a blank
# line or another speaker's name, and a second sample usually gives the line.
CONTINUATION_TRIES = 2


@dataclass(frozen=True)
class Attempt:
    """One generation, normalized, repaired and checked."""

    text: str
    raw: str
    seed: int
    model: str
    before_repair: ValidationReport
    report: ValidationReport
    repairs: tuple[str, ...] = ()
    copy: CopyHit | None = None

    def as_json(self) -> dict:
        return {"seed": self.seed, "valid_before_repair": self.before_repair.valid, "valid": self.report.valid,
                "problems": list(self.report.problems), "repairs": list(self.repairs),
                "copy": self.copy.as_json() if self.copy else None}


@dataclass(frozen=True)
class SceneResult:
    """The chosen attempt and how it was reached."""

    chosen: Attempt
    attempts: list[Attempt]
    prefill: str

    @property
    def text(self) -> str:
        return self.chosen.text

    @property
    def warnings(self) -> list[str]:
        notes = []
        if not self.chosen.report.valid:
            notes.append(f"This scene is not fully in screenplay form after {len(self.attempts)} "
                         f"attempt(s): {'; '.join(self.chosen.report.problems)}.")
        if self.chosen.copy:
            hit = self.chosen.copy
            notes.append(f"This scene repeats {hit.words} words verbatim from \u201c{hit.title}\u201d"
                         f"{f' ({hit.script_id})' if hit.script_id else ''}: \u201c{_clip(hit.excerpt)}\u201d. "
                         "Rewrite that passage before using it.")
        return notes

    def parameters(self) -> dict:
        """What the store keeps about how the scene was reached (beside the sampling parameters)."""
        return {
            "attempts": len(self.attempts),
            "seeds": [attempt.seed for attempt in self.attempts],
            "prefill": self.prefill,
            "validation": self.chosen.report.as_json(),
            "valid_before_repair": self.chosen.before_repair.valid,
            "repairs": list(self.chosen.repairs),
            "copy": self.chosen.copy.as_json() if self.chosen.copy else None,
            "attempt_log": [attempt.as_json() for attempt in self.attempts],
        }


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "\u2026"


def sampling_parameters(settings: GenerationSettings) -> dict:
    """The sampling every scene is asked with (the evaluation gate uses the same)."""
    return {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "repetition_penalty": settings.repetition_penalty,
        "no_repeat_ngram_size": settings.no_repeat_ngram_size,
        "max_tokens": settings.max_tokens,
    }


async def generate_scene(chat: ChatClient, *, model: str, request: DialogueRequest, messages: list[dict[str, str]],
                         sampling: dict, exemplars: Sequence[SceneHit] = (),
                         search: Callable[..., Awaitable[list[SceneHit]]] | None = None,
                         max_attempts: int = MAX_ATTEMPTS, copy_min_words: int = COPY_MIN_WORDS,
                         copy_search_k: int = COPY_SEARCH_K, seed: int | None = None,
                         continuation_tries: int = CONTINUATION_TRIES) -> SceneResult:
    """Generate until a scene is valid Fountain (at most ``max_attempts`` whole scenes), keep
    the best, then make sure it does not copy the library (one more generation if it does).

    A scene whose only flaw is requested characters who never speak is continued with each
    missing cue written (up to ``continuation_tries`` short requests per character) before
    another whole scene is asked for: small models often give the first voices all the lines.

    ``chat`` is anything with the ChatClient's async ``complete``; no store is touched, so
    benchmarks drive the same loop against an in-process model.
    """
    base_seed = random.SystemRandom().randrange(1, 2**31 - max_attempts - 1) if seed is None else seed
    heading = derive_heading(request.situation)
    if heading is None and request.characters:
        heading = await _model_heading(chat, model=model, messages=messages, sampling=sampling, seed=base_seed,
                                       situation=request.situation)
    prefill = build_prefill(request, heading)
    prompt = with_prefill(messages, prefill)
    attempts: list[Attempt] = []

    async def attempt() -> Attempt:
        made = await _attempt(chat, model=model, messages=prompt, prefill=prefill, request=request,
                              sampling=sampling, seed=base_seed + len(attempts))
        attempts.append(made)
        return made

    async def continuation(base: Attempt, name: str) -> Attempt:
        """Go on from ``base`` with ``name``'s cue already written: the model writes that
        character's line (nothing is invented here), in one short request instead of a whole
        new scene."""
        open_text = f"{base.text.rstrip()}\n\n{name}\n"
        budget = min(int(sampling.get("max_tokens", CONTINUATION_MAX_TOKENS)), CONTINUATION_MAX_TOKENS)
        made = await _attempt(chat, model=model, messages=with_prefill(messages, open_text), prefill=open_text,
                              request=request, sampling={**sampling, "max_tokens": budget},
                              seed=base_seed + len(attempts))
        attempts.append(made)
        return made

    async def give_voices(base: Attempt) -> Attempt:
        """Continue ``base`` once per silent requested character (a second try when the model
        answers a cue with a blank line or another speaker), keeping each gain."""
        for name in base.report.missing_characters:
            for _ in range(continuation_tries):
                made = await continuation(base, name)
                if name not in made.report.missing_characters and made.report.score >= base.report.score:
                    base = made
                    break
        return base

    def only_missing(candidate: Attempt) -> bool:
        report = candidate.report
        return bool(report.missing_characters) and len(report.problems) == 1

    best = await attempt()
    scenes, continued = 1, set()
    while not best.report.valid:
        # A scene whose only flaw is a requested voice that never speaks is continued, not redone
        # (each scene once: a scene kept as best after its continuations failed is not retried).
        if only_missing(best) and continuation_tries and id(best) not in continued:
            continued.add(id(best))
            best = await give_voices(best)
            continued.add(id(best))
            if best.report.valid:
                break
        if scenes >= max_attempts:
            break
        latest = await attempt()
        scenes += 1
        if latest.report.score > best.report.score:
            best = latest
    if copy_min_words > 0 and best.text:
        extra = [CopySource("the worked example in config/prompts/dialogue.toml", load_template()["example_scene"])]

        async def copied(candidate: Attempt) -> Attempt:
            hit = await check_copy(candidate.text, exemplars=list(exemplars), search=search, extra=extra,
                                   min_words=copy_min_words, k=copy_search_k)
            checked = replace(candidate, copy=hit)
            attempts[attempts.index(candidate)] = checked
            return checked

        best = await copied(best)
        if best.copy:
            again = await copied(await attempt())
            if again.text and (not again.copy or again.report.score > best.report.score):
                best = again
    return SceneResult(best, attempts, prefill)


async def _model_heading(chat: ChatClient, *, model: str, messages: list[dict[str, str]], sampling: dict, seed: int,
                         situation: str) -> str | None:
    """When the situation names no place, a few tokens of the model's own heading, so that the
    scene request can still open with heading and first cue."""
    completion = await chat.complete(model=model, messages=with_prefill(messages, HEADING_PREFILL),
                                     **{**sampling, "max_tokens": HEADING_MAX_TOKENS}, seed=seed,
                                     **CONTINUE_FINAL_MESSAGE)
    text = completion.text
    if HEADING_LINE.match(text.lstrip()):  # a server that ignored the prefill started its own heading
        text = re.sub(r"^\s*\S+", "", text.lstrip(), count=1)
    return heading_from_completion(text, situation)


async def _attempt(chat: ChatClient, *, model: str, messages: list[dict[str, str]], prefill: str,
                   request: DialogueRequest, sampling: dict, seed: int) -> Attempt:
    extension = CONTINUE_FINAL_MESSAGE if prefill else {}
    completion = await chat.complete(model=model, messages=messages, **sampling, seed=seed, **extension)
    raw = join_prefill(prefill, completion.text)
    text = normalize_fountain(raw, characters=request.characters, situation=request.situation,
                              truncated=completion.finish_reason == "length")
    before = validate_fountain(text, request.characters)
    repairs: list[str] = []
    report = before
    if not before.valid:
        repaired, repairs = repair_names(text, request.characters)
        if repairs:
            text, report = repaired, validate_fountain(repaired, request.characters)
    return Attempt(text, completion.text, seed, completion.model, before, report, tuple(repairs))

"""The scene loop: generate under the scene grammar, read the structure back as Fountain, judge,
retry, and check for copying, against anything that speaks the chat-completions API.

    result = await generate_scene(chat, model="smollm2-135m-instruct", request=request,
                                  messages=build_messages(request, exemplars), sampling=sampling_parameters(g))

Constrained (the default): the request carries the scene's grammar and degeneration guard
(screenplay/grammar.py), so form is decided at decoding time; a retry is for what a grammar
cannot rule out (the strict judge's loops and bounds). Unconstrained (a server without
structured outputs): the old path — prefilled heading and cue, normalizing prose into
Fountain, repairing near-miss names, continuing silent voices. Either way the strict judge
(screenplay/judge.py) says whether a scene is kept.

The bot's /dialogue and thread follow-ups, the training gate and the benchmarks all run
this one loop (the bot over HTTP, the gate and benchmarks over the backend in process), so
what is measured is what writers are served. No store is touched here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from config.settings import GenerationSettings
from llm.client import ChatClient, Completion, QueueListener
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
    derive_heading,
    normalize_fountain,
    repair_names,
)
from screenplay.grammar import (
    CAST_PREFILL,
    MAX_BLOCKS,
    MAX_LINE_TOKENS,
    MAX_SPEAKER_RUN,
    SceneShape,
    cast_grammar,
    names_from_cast,
    parse_scene,
    render_fountain,
)
from screenplay.judge import SceneBounds, Verdict, judge_scene
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
from screenplay.vocabulary import judge_words

# Generations per /dialogue when the answer is not valid Fountain; the bot reads
# settings.generation.max_attempts, this is the default for callers without settings.
MAX_ATTEMPTS = 3
# Tokens for continuing a scene with a missing character's cue: a few lines of dialogue.
CONTINUATION_MAX_TOKENS = 96
# Short requests per silent character: SmolLM2 sometimes answers a written cue with a blank
# line or another speaker's name, and a second sample usually gives the line.
CONTINUATION_TRIES = 2
CAST_MAX_TOKENS = 12  # " Name, Name": a few tokens each


@dataclass(frozen=True)
class Attempt:
    """One generation, normalized, repaired and checked."""

    text: str
    raw: str
    seed: int
    model: str
    before_repair: Verdict
    report: Verdict  # the strict judge's
    repairs: tuple[str, ...] = ()
    copy: CopyHit | None = None
    finish_reason: str = "stop"

    def as_json(self) -> dict:
        return {"seed": self.seed, "valid_before_repair": self.before_repair.valid, "valid": self.report.valid,
                "problems": list(self.report.problems), "looping": self.report.looping,
                "repairs": list(self.repairs), "finish_reason": self.finish_reason,
                "copy": self.copy.as_json() if self.copy else None}


@dataclass(frozen=True)
class SceneResult:
    """The chosen attempt and how it was reached."""

    chosen: Attempt
    attempts: list[Attempt]
    prefill: str
    constrained: bool = False

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
            "constrained": self.constrained,
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


@dataclass(frozen=True)
class GuardLimits:
    """The degeneration guard's limits (settings.generation carries them for the bot)."""

    max_speaker_run: int = MAX_SPEAKER_RUN
    max_line_tokens: int = MAX_LINE_TOKENS


def decoding_options(settings: GenerationSettings) -> dict:
    """How every scene is decoded (the bot and the evaluation gate alike): constrained or not,
    the most speeches a scene may hold, and the guard's limits."""
    return {"constrained": settings.constrained, "max_speeches": settings.max_speeches,
            "guard": GuardLimits(settings.max_speaker_run, settings.max_line_tokens)}


@dataclass(frozen=True)
class _Judge:
    requested: tuple[str, ...]
    cast: tuple[str, ...]

    def __call__(self, text: str, *, lenient_length: bool = False) -> Verdict:
        bounds = SceneBounds(min_dialogue_blocks=0) if lenient_length else SceneBounds()
        return judge_scene(text, requested=self.requested, cast=self.cast, bounds=bounds)


async def generate_scene(chat: ChatClient, *, model: str, request: DialogueRequest, messages: list[dict[str, str]],
                         sampling: dict, exemplars: Sequence[SceneHit] = (),
                         search: Callable[..., Awaitable[list[SceneHit]]] | None = None,
                         max_attempts: int = MAX_ATTEMPTS, copy_min_words: int = COPY_MIN_WORDS,
                         copy_search_k: int = COPY_SEARCH_K, seed: int | None = None,
                         continuation_tries: int = CONTINUATION_TRIES, constrained: bool = True,
                         guard: GuardLimits = GuardLimits(), cast: Sequence[str] = (),
                         on_queue: QueueListener | None = None, max_speeches: int = MAX_BLOCKS) -> SceneResult:
    """Generate until the strict judge passes a scene (at most ``max_attempts`` whole scenes),
    keep the best, then make sure it does not copy the library (one more generation if it does).

    ``constrained``: ask for the scene grammar and the degeneration guard (screenplay/grammar.py),
    with at most ``max_speeches`` speeches (SmolLM2 writes as many as it may: this sets the length).
    Without it, a scene whose only flaw is requested characters who never speak is continued
    with each missing cue written (up to ``continuation_tries`` short requests per character)
    before another whole scene is asked for: small models often give the first voices all the lines.
    ``cast``: the room's other known characters, whom the judge accepts as speakers.
    ``on_queue``: hears the backend's queue reports for every request the scene takes.

    ``chat`` is anything with the ChatClient's async ``complete``; no store is touched, so
    benchmarks drive the same loop against an in-process model.
    """
    base_seed = random.SystemRandom().randrange(1, 2**31 - max_attempts - 1) if seed is None else seed
    if on_queue is not None:
        chat = _Listening(chat, on_queue)
    heading = derive_heading(request.situation)
    judge = _Judge(request.characters, tuple(name.upper() for name in cast))
    if constrained:
        words = judge_words()
        if len(request.characters) < 2:  # the model names the rest first, so the scene can be held to them
            named = await _model_cast(chat, model=model, messages=messages, sampling=sampling, seed=base_seed,
                                      request=request, not_name_words=words.not_name_words)
            request = replace(request, characters=request.characters + named)
            judge = _Judge(request.characters, judge.cast)
        shape = SceneShape.for_request(request, heading=heading, not_name_words=words.not_name_words,
                                       sentence_words=words.sentence_words, max_blocks=max_speeches)
        prefill = f"{heading}\n\n" if heading else ""
        extra = shape.request_fields(shape.guard(max_speaker_run=guard.max_speaker_run,
                                                 max_line_tokens=guard.max_line_tokens))
    else:
        if heading is None and request.characters:
            heading = await _model_heading(chat, model=model, messages=messages, sampling=sampling, seed=base_seed,
                                           situation=request.situation)
        prefill, extra = build_prefill(request, heading), {}
    prompt = with_prefill(messages, prefill)
    attempts: list[Attempt] = []

    async def attempt() -> Attempt:
        made = await _attempt(chat, model=model, messages=prompt, prefill=prefill, request=request,
                              sampling={**sampling, **extra}, seed=base_seed + len(attempts), judge=judge,
                              structured=constrained)
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
                              seed=base_seed + len(attempts), judge=judge, structured=False)
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
        """Silent requested voices are the flaw of a scene that is dialogue already (one short of
        speeches counts as missing them; prose with no speech is redone, not continued)."""
        report = candidate.report
        return bool(report.missing_characters) and report.dialogue_blocks >= 2 and \
            len(judge(candidate.text, lenient_length=True).problems) == 1

    best = await attempt()
    scenes, continued = 1, set()
    while not best.report.valid:
        # A scene whose only flaw is a requested voice that never speaks is continued, not redone
        # (each scene once: a scene kept as best after its continuations failed is not retried).
        # Under the grammar every requested voice speaks in the first round, so this is the
        # unconstrained path's.
        if not constrained and only_missing(best) and continuation_tries and id(best) not in continued:
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
        extra_sources = [CopySource("the worked example in config/prompts/dialogue.toml",
                                    load_template()["example_scene"])]

        async def copied(candidate: Attempt) -> Attempt:
            hit = await check_copy(candidate.text, exemplars=list(exemplars), search=search, extra=extra_sources,
                                   min_words=copy_min_words, k=copy_search_k)
            checked = replace(candidate, copy=hit)
            attempts[attempts.index(candidate)] = checked
            return checked

        best = await copied(best)
        if best.copy:
            again = await copied(await attempt())
            if again.text and (not again.copy or again.report.score > best.report.score):
                best = again
    return SceneResult(best, attempts, prefill, constrained)


class _Listening:
    """The chat client with ``on_queue`` added to every request, so that the loop's helpers
    need not each carry it."""

    def __init__(self, chat: ChatClient, on_queue: QueueListener) -> None:
        self._chat, self._on_queue = chat, on_queue

    async def complete(self, **request: object) -> Completion:
        return await self._chat.complete(**request, on_queue=self._on_queue)


async def _model_cast(chat: ChatClient, *, model: str, messages: list[dict[str, str]], sampling: dict, seed: int,
                      request: DialogueRequest, not_name_words: frozenset[str]) -> tuple[str, ...]:
    """Names for the characters a request leaves to the model (one short constrained request);
    none when the server ignored the grammar and wrote no usable names."""
    wanted = 2 - len(request.characters)
    completion = await chat.complete(model=model, messages=with_prefill(messages, CAST_PREFILL),
                                     **{**sampling, "max_tokens": CAST_MAX_TOKENS}, seed=seed,
                                     structured_outputs={"grammar": cast_grammar(
                                         wanted, taken=request.characters, not_name_words=not_name_words)},
                                     **CONTINUE_FINAL_MESSAGE)
    return tuple(name for name in names_from_cast(completion.text) if name not in request.characters)[:wanted]


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
                   request: DialogueRequest, sampling: dict, seed: int, judge: _Judge, structured: bool) -> Attempt:
    extension = CONTINUE_FINAL_MESSAGE if prefill else {}
    completion = await chat.complete(model=model, messages=messages, **sampling, seed=seed, **extension)
    raw = join_prefill(prefill, completion.text)
    truncated = completion.finish_reason == "length"
    # Cut off by max_tokens, a grammar's scene loses its unfinished last paragraph and keeps its shape.
    complete = raw[:raw.rstrip().rfind("\n\n")] if truncated and "\n\n" in raw.rstrip() else raw
    scene = parse_scene(complete) if structured else None
    if scene is not None:  # the grammar's structure, rendered: nothing to normalize or repair
        text = render_fountain(scene)
        report = judge(text)
        return Attempt(text, completion.text, seed, completion.model, report, report,
                       finish_reason=completion.finish_reason)
    # From a server that ignored the grammar (or no grammar asked): turn what can be turned into
    # Fountain (a cut-off last speech is dropped) and repair near-miss names.
    text = normalize_fountain(raw, characters=request.characters, situation=request.situation, truncated=truncated)
    before = judge(text)
    repairs: list[str] = []
    report = before
    if not before.valid:
        repaired, repairs = repair_names(text, request.characters)
        if repairs:
            text, report = repaired, judge(repaired)
    return Attempt(text, completion.text, seed, completion.model, before, report, tuple(repairs),
                   finish_reason=completion.finish_reason)

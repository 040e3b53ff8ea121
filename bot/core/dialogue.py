"""/dialogue: a scene in screenplay format, grounded in scenes from the library."""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Sequence

from retrieval.types import SceneHit

from bot.core.copy_guard import COPY_MIN_WORDS, COPY_SEARCH_K, CopyHit, CopySource, check_copy
from bot.core.llm_client import ChatClient, GenerationError
from bot.core.prompting import (
    CONTINUE_FINAL_MESSAGE,
    HEADING_MAX_TOKENS,
    HEADING_PREFILL,
    DialogueRequest,
    build_messages,
    build_prefill,
    heading_from_completion,
    join_prefill,
    load_template,
    parse_dialogue_request,
    with_prefill,
)
from bot.core.replies import Action, ActionKind, Citation, Invocation, Reply, Section, SectionKind, error_reply
from bot.core.screenplay import (
    HEADING_LINE,
    ValidationReport,
    derive_heading,
    normalize_fountain,
    repair_names,
    validate_fountain,
)
from bot.core.services import CoreServices
from bot.settings import GenerationSettings
from bot.store import queries
from bot.store.db import session_scope

# Generations per /dialogue when the answer is not valid Fountain; the bot reads
# settings.generation.max_attempts, this is the default for callers without settings.
MAX_ATTEMPTS = 3
# Tokens for continuing a scene with a missing character's cue: a few lines of dialogue.
CONTINUATION_MAX_TOKENS = 96
# Short requests per silent character: SmolLM2 sometimes answers a written cue with a blank
# line or another speaker's name, and a second sample usually gives the line.
CONTINUATION_TRIES = 2

DIALOGUE_ACTIONS = (
    (ActionKind.APPROVE, "Approve"),
    (ActionKind.REJECT, "Reject"),
    (ActionKind.REGENERATE, "Regenerate"),
    (ActionKind.EDIT, "Edit"),
)


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


@dataclass(frozen=True)
class Scene:
    """A generated scene as the CLI's --json and the replies describe it."""

    generation_id: int
    text: str
    model: str
    adapter: str | None
    sources: list[SceneHit]
    latency_ms: int
    request: DialogueRequest
    warnings: tuple[str, ...] = ()
    attempts: int = 1
    valid: bool = True

    def as_json(self) -> dict:
        return {
            "generation_id": self.generation_id,
            "text": self.text,
            "model": self.model,
            "adapter": self.adapter,
            "latency_ms": self.latency_ms,
            "characters": list(self.request.characters),
            "sources": [hit.as_json() for hit in self.sources],
            "valid": self.valid,
            "attempts": self.attempts,
            "warnings": list(self.warnings),
        }


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "\u2026"


def validate_prompt(text: str, *, limit: int) -> str | None:
    """A message for the writer when the prompt cannot be used, else None."""
    if not text.strip():
        return "Describe the situation, e.g. `/dialogue a detective corners her former partner in a rainy alley`."
    if len(text) > limit:
        return f"That situation is {len(text):,} characters; the limit is {limit:,}. Shorten it and try again."
    return None


async def write_scene(services: CoreServices, invocation: Invocation, *, parent_id: int | None = None) -> Scene:
    """Retrieve exemplars, generate (validate, repair, retry, copy-check) and record; raises GenerationError."""
    request = parse_dialogue_request(invocation.text)
    exemplars = await _exemplars(services, request.situation or invocation.text)
    model, adapter = await services.model_for(invocation.room_id)
    messages = scene_messages(services, request, exemplars)
    return await generate_and_record(
        services, invocation, request=request, messages=messages, exemplars=exemplars, model=model, adapter=adapter,
        stored_prompt=invocation.text, parent_id=parent_id,
        empty="The model returned an empty scene. Try Regenerate or rephrase the situation.")


def sampling_parameters(settings: GenerationSettings) -> dict:
    """The sampling every scene is asked with (the evaluation gate uses the same)."""
    return {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "repetition_penalty": settings.repetition_penalty,
        "no_repeat_ngram_size": settings.no_repeat_ngram_size,
        "max_tokens": settings.max_tokens,
    }


def scene_messages(services: CoreServices, request: DialogueRequest,
                   exemplars: Sequence[SceneHit]) -> list[dict[str, str]]:
    """The prompt for ``request``, with the worked example whether or not an adapter serves
    (see build_messages: adapters are trained without it and served with it)."""
    return build_messages(request, list(exemplars), exemplar_chars=services.settings.generation.exemplar_chars)


async def generate_and_record(services: CoreServices, invocation: Invocation, *, request: DialogueRequest,
                              messages: list[dict[str, str]], exemplars: Sequence[SceneHit], model: str,
                              adapter: str | None, stored_prompt: str, parent_id: int | None, empty: str,
                              shown: DialogueRequest | None = None, extra: dict | None = None) -> Scene:
    """The scene loop (generate_scene) with the room's settings, then the scene recorded under
    ``stored_prompt`` (what Regenerate re-runs); ``empty`` is the message for an empty answer."""
    settings = services.settings.generation
    sampling = sampling_parameters(settings)
    started = time.perf_counter()
    result = await generate_scene(services.chat, model=model, request=request, messages=messages, sampling=sampling,
                                  exemplars=exemplars, search=services.search_if_possible,
                                  max_attempts=settings.max_attempts, copy_min_words=settings.copy_guard_words)
    latency_ms = int((time.perf_counter() - started) * 1000)
    if not result.text:
        raise GenerationError(empty)
    chosen_model = result.chosen.model or model
    generation_id = await asyncio.to_thread(
        record_scene, services, invocation, prompt=stored_prompt, text=result.text,
        parameters={**sampling, **result.parameters(), **(extra or {})},
        source_ids=[hit.scene_id for hit in exemplars], model=chosen_model, adapter=adapter, latency_ms=latency_ms,
        parent_id=parent_id)
    return Scene(generation_id, result.text, chosen_model, adapter, list(exemplars), latency_ms, shown or request,
                 tuple(result.warnings), len(result.attempts), result.chosen.report.valid)


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


async def _exemplars(services: CoreServices, query: str) -> list[SceneHit]:
    count = services.settings.generation.exemplars
    # An empty library, or a search that cannot run, gives no exemplars: the scene is then
    # written ungrounded (the reply cites no sources) rather than not at all.
    return await services.search_if_possible(query, k=count) if count else []


def record_scene(services: CoreServices, invocation: Invocation, *, prompt: str, text: str, parameters: dict,
                 source_ids: list[str], model: str, adapter: str | None, latency_ms: int,
                 parent_id: int | None) -> int:
    """Store a generated scene (a /dialogue, a regeneration or a thread follow-up); its id."""
    with session_scope(services.sessions) as session:
        room = queries.get_or_create_room(session, platform=invocation.platform, external_id=invocation.room_id,
                                          name=invocation.room_name)
        user = queries.get_or_create_user(session, platform=invocation.platform, external_id=invocation.user_id,
                                          display_name=invocation.user_name)
        generation = queries.record_generation(
            session, room=room, user=user, prompt=prompt, parameters=parameters, retrieved_scene_ids=source_ids,
            output=text, model=model, adapter=adapter, latency_ms=latency_ms, thread_ref=invocation.thread_id,
            parent_id=parent_id,
        )
        session.flush()
        return generation.id


def scene_reply(scene: Scene) -> Reply:
    title = scene.request.situation[:150] or "Scene"
    citations = tuple(
        Citation(script_id=hit.script_id, title=hit.title, scene_index=hit.scene.index, heading=hit.scene.heading,
                 excerpt=hit.scene.excerpt, score=hit.score)
        for hit in scene.sources
    )
    value = str(scene.generation_id)
    warnings = tuple(Section(SectionKind.TEXT, f"\u26a0\ufe0f {warning}") for warning in scene.warnings)
    return Reply(
        title=title,
        sections=(Section(SectionKind.SCREENPLAY, scene.text), *warnings),
        citations=citations,
        actions=tuple(Action(kind, label, value) for kind, label in DIALOGUE_ACTIONS),
        generation_id=scene.generation_id,
        metadata={"model": scene.model, "adapter": scene.adapter, "latency_ms": scene.latency_ms,
                  "valid": scene.valid, "attempts": scene.attempts, "warnings": list(scene.warnings)},
    )


async def dialogue(services: CoreServices, invocation: Invocation) -> Reply:
    problem = validate_prompt(invocation.text, limit=services.settings.generation.max_prompt_chars)
    if problem:
        return error_reply("/dialogue", problem)
    try:
        scene = await write_scene(services, invocation)
    except GenerationError as exc:
        return error_reply("/dialogue", str(exc))
    return scene_reply(scene)

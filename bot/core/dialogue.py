"""/dialogue: a scene in screenplay format, grounded in scenes from the library."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from bot.core.pipeline import check_rate_limit
from bot.core.queue_notice import queue_listener
from bot.core.replies import (
    Action,
    ActionKind,
    Citation,
    Invocation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.core.services import CoreServices
from llm.client import GenerationError
from retrieval.types import SceneHit
from screenplay.prompting import (
    DialogueRequest,
    build_messages,
    follow_up_turns,
    merged_request,
    parse_dialogue_request,
    prompt_text,
)
from screenplay.scene_loop import decoding_options, generate_scene, sampling_parameters
from store import generations, rooms
from store.db import session_scope

FOLLOW_UP_TITLE = "Follow-up"

DIALOGUE_ACTIONS = (
    (ActionKind.APPROVE, "Approve"),
    (ActionKind.REJECT, "Reject"),
    (ActionKind.REGENERATE, "Regenerate"),
    (ActionKind.EDIT, "Edit"),
)


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
    validation: dict = field(default_factory=dict)  # the strict judge's verdict (screenplay/judge.py)

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
            "validation": self.validation,
            "attempts": self.attempts,
            "warnings": list(self.warnings),
        }


def validate_prompt(text: str, *, limit: int) -> str | None:
    """A message for the writer when the prompt cannot be used, else None."""
    if not text.strip():
        return "Describe the situation, e.g. `/dialogue a detective corners her former partner in a rainy alley`."
    if len(text) > limit:
        return f"That situation is {len(text):,} characters; the limit is {limit:,}. Shorten it and try again."
    return None


@dataclass(frozen=True)
class FollowUp:
    """A thread follow-up: the scene it continues (and that scene's request) and the direction."""

    parent_prompt: str
    previous_scene: str
    direction: str


@dataclass(frozen=True)
class _Ask:
    """What one scene request amounts to, however it arrived."""

    request: DialogueRequest  # what the model is asked for
    query: str  # what the library is searched for
    stored_prompt: str  # what the store keeps, and Regenerate re-runs
    shown: DialogueRequest  # what the reply's title shows
    extra_turns: list[dict[str, str]]  # turns after the scene prompt (a follow-up's)
    extra: dict  # what the store keeps besides the sampling
    empty: str  # the message for an empty answer


def _ask(invocation: Invocation, follow_up: FollowUp | None) -> _Ask:
    if follow_up is None:
        request = parse_dialogue_request(invocation.text)
        return _Ask(request, request.situation or invocation.text, invocation.text, request, [], {},
                    "The model returned an empty scene. Try Regenerate or rephrase the situation.")
    request = merged_request(follow_up.parent_prompt, follow_up.direction)
    note = parse_dialogue_request(follow_up.direction).situation or follow_up.direction
    # Stored: the scene's situation with this direction, so Regenerate on the follow-up asks
    # for the same thing from scratch.
    stored = prompt_text(replace(request, situation=f"{request.situation}. Then: {note}"))
    return _Ask(request, f"{request.situation} {note}", stored,
                replace(request, situation=f"{FOLLOW_UP_TITLE}: {follow_up.direction}"),
                follow_up_turns(follow_up.previous_scene, follow_up.direction), {"follow_up": follow_up.direction},
                "The model returned an empty scene. Try again or reword the direction.")


async def write_scene(services: CoreServices, invocation: Invocation, *, parent_id: int | None = None,
                      follow_up: FollowUp | None = None) -> Scene:
    """Retrieve exemplars, generate (validate, repair, retry, copy-check) and record; raises
    GenerationError, or Refused when the writer is over the rate limit.

    Every scene is written here — /dialogue, Regenerate, and thread follow-ups (``follow_up``:
    the previous scene and the direction go after the usual prompt) — so the rate limit,
    the sampling and the prompt are the same for all of them.
    """
    check_rate_limit(services, invocation)
    ask = _ask(invocation, follow_up)
    exemplars = await _exemplars(services, ask.query)
    model, adapter = await services.model_for(invocation.room_id)
    messages = scene_messages(services, ask.request, exemplars) + ask.extra_turns
    settings = services.settings.generation
    sampling = sampling_parameters(settings)
    started = time.perf_counter()
    result = await generate_scene(services.chat, model=model, request=ask.request, messages=messages,
                                  sampling=sampling, exemplars=exemplars, search=services.search_if_possible,
                                  max_attempts=settings.max_attempts, copy_min_words=settings.copy_guard_words,
                                  on_queue=queue_listener(invocation.notify), **decoding_options(settings))
    latency_ms = int((time.perf_counter() - started) * 1000)
    if not result.text:
        raise GenerationError(ask.empty)
    chosen_model = result.chosen.model or model
    generation_id = await asyncio.to_thread(
        record_scene, services, invocation, prompt=ask.stored_prompt, text=result.text,
        parameters={**sampling, **result.parameters(), **ask.extra},
        source_ids=[hit.scene_id for hit in exemplars], model=chosen_model, adapter=adapter, latency_ms=latency_ms,
        parent_id=parent_id)
    return Scene(generation_id, result.text, chosen_model, adapter, list(exemplars), latency_ms, ask.shown,
                 tuple(result.warnings), len(result.attempts), result.chosen.report.valid,
                 result.chosen.report.as_json())


def scene_messages(services: CoreServices, request: DialogueRequest,
                   exemplars: Sequence[SceneHit]) -> list[dict[str, str]]:
    """The prompt for ``request``, with the worked example whether or not an adapter serves
    (see build_messages: adapters are trained without it and served with it)."""
    return build_messages(request, list(exemplars), exemplar_chars=services.settings.generation.exemplar_chars)


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
        room = rooms.get_or_create_room(session, platform=invocation.platform, external_id=invocation.room_id,
                                          name=invocation.room_name)
        user = rooms.get_or_create_user(session, platform=invocation.platform, external_id=invocation.user_id,
                                          display_name=invocation.user_name)
        generation = generations.record_generation(
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

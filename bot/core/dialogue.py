"""/dialogue: a scene in screenplay format, grounded in scenes from the library."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Sequence

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
from screenplay.prompting import DialogueRequest, build_messages, parse_dialogue_request
from screenplay.scene_loop import generate_scene, sampling_parameters
from store import queries
from store.db import session_scope

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

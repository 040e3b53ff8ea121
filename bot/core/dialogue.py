"""/dialogue: a scene in screenplay format, grounded in scenes from the library."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from retrieval.types import SceneHit

from bot.core.llm_client import GenerationError
from bot.core.prompting import DialogueRequest, build_messages, normalize_fountain, parse_dialogue_request
from bot.core.replies import Action, ActionKind, Citation, Invocation, Reply, Section, SectionKind, error_reply
from bot.core.services import CoreServices
from bot.store import queries
from bot.store.db import session_scope

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

    def as_json(self) -> dict:
        return {
            "generation_id": self.generation_id,
            "text": self.text,
            "model": self.model,
            "adapter": self.adapter,
            "latency_ms": self.latency_ms,
            "characters": list(self.request.characters),
            "sources": [hit.as_json() for hit in self.sources],
        }


def validate_prompt(text: str, *, limit: int) -> str | None:
    """A message for the writer when the prompt cannot be used, else None."""
    if not text.strip():
        return "Describe the situation, e.g. `/dialogue a detective corners her former partner in a rainy alley`."
    if len(text) > limit:
        return f"That situation is {len(text):,} characters; the limit is {limit:,}. Shorten it and try again."
    return None


async def write_scene(services: CoreServices, invocation: Invocation, *, parent_id: int | None = None) -> Scene:
    """Retrieve exemplars, generate, normalize and record; raises GenerationError."""
    settings = services.settings.generation
    request = parse_dialogue_request(invocation.text)
    exemplars = await _exemplars(services, request.situation or invocation.text)
    messages = build_messages(request, exemplars, exemplar_chars=settings.exemplar_chars)
    parameters = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "repetition_penalty": settings.repetition_penalty,
        "no_repeat_ngram_size": settings.no_repeat_ngram_size,
        "max_tokens": settings.max_tokens,
    }
    model = await services.base_model()
    started = time.perf_counter()
    completion = await services.chat.complete(model=model, messages=messages, **parameters)
    latency_ms = int((time.perf_counter() - started) * 1000)
    text = normalize_fountain(completion.text)
    if not text:
        raise GenerationError("The model returned an empty scene. Try Regenerate or rephrase the situation.")
    generation_id = await asyncio.to_thread(
        _record, services, invocation, text=text, parameters=parameters, sources=exemplars,
        model=completion.model or model, latency_ms=latency_ms, parent_id=parent_id,
    )
    return Scene(generation_id, text, completion.model or model, None, exemplars, latency_ms, request)


async def _exemplars(services: CoreServices, query: str) -> list[SceneHit]:
    count = services.settings.generation.exemplars
    # An empty library gives no exemplars: the scene is then written ungrounded.
    return await services.search(query, k=count) if count else []


def _record(services: CoreServices, invocation: Invocation, *, text: str, parameters: dict,
            sources: list[SceneHit], model: str, latency_ms: int, parent_id: int | None) -> int:
    with session_scope(services.sessions) as session:
        room = queries.get_or_create_room(session, platform=invocation.platform, external_id=invocation.room_id,
                                          name=invocation.room_name)
        user = queries.get_or_create_user(session, platform=invocation.platform, external_id=invocation.user_id,
                                          display_name=invocation.user_name)
        generation = queries.record_generation(
            session, room=room, user=user, prompt=invocation.text, parameters=parameters,
            retrieved_scene_ids=[hit.scene_id for hit in sources], output=text, model=model, adapter=None,
            latency_ms=latency_ms, thread_ref=invocation.thread_id, parent_id=parent_id,
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
    return Reply(
        title=title,
        sections=(Section(SectionKind.SCREENPLAY, scene.text),),
        citations=citations,
        actions=tuple(Action(kind, label, value) for kind, label in DIALOGUE_ACTIONS),
        generation_id=scene.generation_id,
        metadata={"model": scene.model, "adapter": scene.adapter, "latency_ms": scene.latency_ms},
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

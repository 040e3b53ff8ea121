"""Follow-ups in a scene's thread: "@writersroom make Cole angrier" under a scene writes the
next version of that scene, with the scene itself as context.

A platform thread is tied to the generations in it through the store: the adapter
records where it posted each scene (`remember_post`, the generation's message_ref),
and scenes written inside a thread carry that thread as their thread_ref. The newest
generation found either way is the one a follow-up continues, and becomes its parent.

Generation reuses dialogue's public pieces (prompt building, the validate-and-retry
loop, the scene reply); only the conversation differs: the previous scene is put in
as the model's own earlier answer and the direction as the writer's next turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from sqlalchemy import or_, select

from bot.core.commands import COMMANDS, refusal
from bot.core.dialogue import Scene, generate_and_record, scene_messages, scene_reply
from bot.core.ratelimit_reply import rate_limited
from bot.core.replies import Invocation, Reply, Section, SectionKind, error_reply
from bot.core.services import CoreServices
from llm.client import GenerationError
from screenplay.prompting import DialogueRequest, parse_dialogue_request
from store import queries
from store.db import session_scope
from store.models import Generation, Platform, Room

TITLE = "Follow-up"
NOTE = ("Write the next version of the scene above, following this direction: {direction}\n"
        "Keep the screenplay format, and keep what the direction does not change.")
EMPTY = "Say what to change after the mention, e.g. `@writersroom make Cole angrier, and end on the siren`."


@dataclass(frozen=True)
class Parent:
    generation_id: int
    prompt: str
    output: str


async def remember_post(services: CoreServices, *, generation_id: int, message_ref: str) -> None:
    """Record where a scene was posted, so a follow-up in that message's thread finds it."""

    def store() -> None:
        with session_scope(services.sessions) as session:
            queries.set_message_ref(session, generation_id=generation_id, message_ref=message_ref)

    await asyncio.to_thread(store)


async def scene_in_thread(services: CoreServices, invocation: Invocation, *, root_ref: str) -> int | None:
    """The newest generation of this thread: posted as its root message (`root_ref`, the
    message_ref given to `remember_post`) or written inside it (thread_ref = the thread id)."""
    if invocation.thread_id is None:
        return None

    def find() -> int | None:
        with session_scope(services.sessions) as session:
            query = (
                select(Generation.id)
                .join(Room, Generation.room_id == Room.id)
                .where(Room.platform == Platform(invocation.platform), Room.external_id == invocation.room_id,
                       or_(Generation.message_ref == root_ref, Generation.thread_ref == invocation.thread_id))
                .order_by(Generation.id.desc())
                .limit(1)
            )
            return session.scalars(query).first()

    return await asyncio.to_thread(find)


async def continue_thread(services: CoreServices, invocation: Invocation, *, root_ref: str) -> Reply:
    """A mention: the next version of the thread's scene, or help when there is no scene here."""
    refused = refusal(services, invocation)
    if refused:
        return refused
    parent_id = await scene_in_thread(services, invocation, root_ref=root_ref)
    if parent_id is None:
        return mention_help()
    return await follow_up(services, invocation, parent_id=parent_id)


def mention_help() -> Reply:
    lines = ["Mention me in the thread of a scene to take it further: `@writersroom make Cole angrier`.",
             "Or use a command:"]
    lines += [f"`{command.usage}` — {command.summary}" for command in COMMANDS.values() if command.name != "help"]
    return Reply(title="writersroom", sections=(Section(SectionKind.TEXT, "\n".join(lines)),))


async def follow_up(services: CoreServices, invocation: Invocation, *, parent_id: int) -> Reply:
    """The next version of generation `parent_id`, following `invocation.text` as direction."""
    direction = invocation.text.strip()
    if not direction:
        return error_reply(TITLE, EMPTY)
    limit = services.settings.generation.max_prompt_chars
    if len(direction) > limit:
        return error_reply(TITLE, f"That direction is {len(direction):,} characters; the limit is {limit:,}. "
                                  "Shorten it and try again.")
    limited = rate_limited(services, invocation)
    if limited:
        return limited
    parent = await asyncio.to_thread(_load_parent, services, parent_id)
    if parent is None:
        return error_reply(TITLE, f"Generation {parent_id} does not exist (was it deleted?).")
    try:
        scene = await _write_follow_up(services, invocation, parent, direction)
    except GenerationError as exc:
        return error_reply(TITLE, str(exc))
    return scene_reply(scene)


def merged_request(parent_prompt: str, direction: str) -> DialogueRequest:
    """The parent's request, with characters and tone the direction adds or changes."""
    parent = parse_dialogue_request(parent_prompt)
    asked = parse_dialogue_request(direction)
    characters = parent.characters + tuple(name for name in asked.characters if name not in parent.characters)
    return DialogueRequest(parent.situation, characters, asked.tone or parent.tone)


def prompt_text(request: DialogueRequest) -> str:
    """A request as /dialogue text (what Regenerate re-runs), parsed back the same way."""
    text = request.situation
    if request.characters:
        text += f" characters: {', '.join(request.characters)}"
    if request.tone:
        text += f" tone: {request.tone}"
    return text


async def _write_follow_up(services: CoreServices, invocation: Invocation, parent: Parent, direction: str) -> Scene:
    count = services.settings.generation.exemplars
    request = merged_request(parent.prompt, direction)
    note = parse_dialogue_request(direction).situation or direction
    exemplars = await services.search_if_possible(f"{request.situation} {note}", k=count) if count else []
    model, adapter = await services.model_for(invocation.room_id)
    messages = scene_messages(services, request, exemplars)
    messages += [{"role": "assistant", "content": parent.output},
                 {"role": "user", "content": NOTE.format(direction=direction)}]
    # What the store keeps as the prompt: the scene's situation with this direction, so
    # Regenerate on the follow-up asks for the same thing from scratch.
    stored = replace(request, situation=f"{request.situation}. Then: {note}")
    return await generate_and_record(
        services, invocation, request=request, messages=messages, exemplars=exemplars, model=model, adapter=adapter,
        stored_prompt=prompt_text(stored), parent_id=parent.generation_id,
        empty="The model returned an empty scene. Try again or reword the direction.",
        shown=replace(request, situation=f"{TITLE}: {direction}"), extra={"follow_up": direction})


def _load_parent(services: CoreServices, generation_id: int) -> Parent | None:
    with session_scope(services.sessions) as session:
        generation = queries.get_generation(session, generation_id=generation_id)
        return Parent(generation.id, generation.prompt, generation.output) if generation else None

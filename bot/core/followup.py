"""Follow-ups in a scene's thread: "@writersroom make Cole angrier" under a scene writes the
next version of that scene, with the scene itself as context.

A platform thread is tied to the generations in it through the store: the adapter
records where it posted each scene (`remember_post`, the generation's message_ref),
and scenes written inside a thread carry that thread as their thread_ref. The newest
generation found either way is the one a follow-up continues, and becomes its parent.

The scene itself is written by dialogue.write_scene, like every scene (same prompt,
sampling, rate limit and recording); a follow-up only adds the previous scene and the
direction after the prompt (screenplay.prompting.follow_up_turns).
"""

from __future__ import annotations

import asyncio

from bot.core.commands import COMMANDS
from bot.core.dialogue import FOLLOW_UP_TITLE, FollowUp, scene_reply, write_scene
from bot.core.pipeline import serve
from bot.core.replies import Invocation, Reply, Section, SectionKind, error_reply
from bot.core.services import CoreServices
from llm.client import GenerationError
from store import generations
from store.db import session_scope

EMPTY = "Say what to change after the mention, e.g. `@writersroom make Cole angrier, and end on the siren`."


async def remember_post(services: CoreServices, *, generation_id: int, message_ref: str) -> None:
    """Record where a scene was posted, so a follow-up in that message's thread finds it."""

    def store() -> None:
        with session_scope(services.sessions) as session:
            generations.set_message_ref(session, generation_id=generation_id, message_ref=message_ref)

    await asyncio.to_thread(store)


async def scene_in_thread(services: CoreServices, invocation: Invocation, *, root_ref: str) -> int | None:
    """The newest generation of this thread: posted as its root message (`root_ref`, the
    message_ref given to `remember_post`) or written inside it (thread_ref = the thread id)."""
    if invocation.thread_id is None:
        return None

    def find() -> int | None:
        with session_scope(services.sessions) as session:
            return generations.newest_in_thread(session, platform=invocation.platform,
                                                room_external_id=invocation.room_id, root_ref=root_ref,
                                                thread_id=invocation.thread_id)

    return await asyncio.to_thread(find)


async def continue_thread(services: CoreServices, invocation: Invocation, *, root_ref: str) -> Reply:
    """A mention, through the pipeline: the next version of the thread's scene, or help when
    there is no scene here."""
    return await serve(services, invocation, "follow_up", lambda: _continue(services, invocation, root_ref))


async def _continue(services: CoreServices, invocation: Invocation, root_ref: str) -> Reply:
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
        return error_reply(FOLLOW_UP_TITLE, EMPTY)
    limit = services.settings.generation.max_prompt_chars
    if len(direction) > limit:
        return error_reply(FOLLOW_UP_TITLE, f"That direction is {len(direction):,} characters; the limit is "
                                            f"{limit:,}. Shorten it and try again.")
    parent = await asyncio.to_thread(_load_parent, services, parent_id, direction)
    if parent is None:
        return error_reply(FOLLOW_UP_TITLE, f"Generation {parent_id} does not exist (was it deleted?).")
    try:
        scene = await write_scene(services, invocation, parent_id=parent_id, follow_up=parent)
    except GenerationError as exc:
        return error_reply(FOLLOW_UP_TITLE, str(exc))
    return scene_reply(scene)


def _load_parent(services: CoreServices, generation_id: int, direction: str) -> FollowUp | None:
    with session_scope(services.sessions) as session:
        generation = generations.get_generation(session, generation_id=generation_id)
        return FollowUp(generation.prompt, generation.output, direction) if generation else None

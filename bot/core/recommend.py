"""/recommend: scripts from the library this room has not drawn on yet, close to its taste.

A room's taste is the library scenes its approved generations were grounded in
(``Generation.retrieved_scene_ids`` of generations with more approvals than
rejections; the same "approved" as training uses, without the consent filter, since
nothing here trains). There is no separate "useful" mark on search results yet:
approvals are the only signal. A later "useful" button on /similar results could add
its scenes to ``RoomHistory.liked`` without changing anything else.

The store reads are ``store.feedback.approved_generation_ids`` and
``store.generations.cited_scenes``; the ranking is ``retrieval.recommend``, imported when
a recommendation is computed, so loading the command table pulls in no numpy or index code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from bot.core.replies import (
    Citation,
    Invocation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.core.services import CoreServices
from store import feedback, generations, rooms
from store.db import session_scope
from store.models import Room

DEFAULT_K = 5
MAX_K = 20
USAGE = "/recommend [how many, default 5]"

NO_HISTORY = (
    "No recommendations yet: they start from what this room approves. Write scenes with "
    "`/dialogue <situation>` and press Approve on the ones you like. Each approved scene was grounded in "
    "scenes from the library; those become this room's taste, and `/recommend` then suggests scripts "
    "the room has not drawn on yet, with the approved scene each one is close to."
)
NO_SOURCES = (
    "This room has approved scenes, but none of them drew on the library (it was empty when they were "
    "written), so there is no taste to go on yet. Add scripts with `writersroom ingest PATH`, then approve "
    "new scenes."
)
NOTHING_LEFT = "Every script in the library close to your room's taste has already been drawn on here."


@dataclass(frozen=True)
class RoomHistory:
    """What /recommend needs from the store about one room."""

    approved_generations: int = 0
    #: (scene id, newest approved generation citing it), newest first, one per scene id.
    liked: tuple[tuple[str, int], ...] = ()
    #: Every scene id cited by any generation of the room, approved or not.
    seen: frozenset[str] = field(default_factory=frozenset)


# --- the room's history -------------------------------------------------------------------


def room_history(session: Session, *, room: Room) -> RoomHistory:
    """What the store says of the room's taste (see the module doc)."""
    approved = feedback.approved_generation_ids(session, room=room)
    liked: dict[str, int] = {}
    seen: set[str] = set()
    for generation_id, scene_ids in generations.cited_scenes(session, room=room):
        for scene_id in scene_ids:
            seen.add(scene_id)
            if generation_id in approved:
                liked.setdefault(_scene_key(scene_id), generation_id)  # newest first
    return RoomHistory(approved_generations=len(approved), liked=tuple(liked.items()), seen=frozenset(seen))


def _scene_key(scene_id: str) -> str:
    # The same normalisation as retrieval.recommend.scene_key, without importing numpy here.
    head, sep, tail = scene_id.rpartition("#")
    return f"{head}#{tail.split('.', 1)[0]}" if sep else scene_id


# --- ranking ---------------------------------------------------------------------------------


def compute(searcher, history: RoomHistory, *, k: int):
    """retrieval.recommend over the searcher's index and embedder (blocking: run it in a thread)."""
    from retrieval.recommend import LikedScene
    from retrieval.recommend import recommend as rank

    index, embedder = getattr(searcher, "index", None), getattr(searcher, "embedder", None)
    if index is None or embedder is None:
        raise LookupError("recommendations need the scene index and its embedder; this searcher has neither")
    liked = [LikedScene(scene_id, generation_id) for scene_id, generation_id in history.liked]
    return rank(index, embedder, liked=liked, seen_scene_ids=history.seen, k=k)


def reply_for(history: RoomHistory, result) -> Reply:
    """The /recommend reply for a room's history and the ranking (None: not computed)."""
    if not history.approved_generations:
        return Reply(title="/recommend", sections=(Section(SectionKind.TEXT, NO_HISTORY),))
    if not history.liked:
        return Reply(title="/recommend", sections=(Section(SectionKind.TEXT, NO_SOURCES),))
    if not result.liked_used:
        return Reply(title="/recommend", sections=(Section(SectionKind.TEXT,
                     "The library scenes your room approved are no longer in the index (re-ingested or removed); "
                     "approve new scenes to build the taste again."),))
    if not result.items:
        return Reply(title="/recommend", sections=(Section(SectionKind.TEXT, NOTHING_LEFT),))
    lines = []
    for rank, item in enumerate(result.items, 1):
        seen = " (already drawn on)" if item.seen else ""
        heading = item.heading or f"scene {item.scene_index + 1}"
        lines.append(f"{rank}. {item.title or item.script_id}{seen} — {heading} ({item.score:.2f})\n   {item.reason}")
    citations = tuple(
        Citation(script_id=item.script_id, title=item.title, scene_index=item.scene_index, heading=item.heading,
                 excerpt=item.excerpt, score=item.score)
        for item in result.items
    )
    return Reply(
        title="Recommended for this room",
        sections=(Section(SectionKind.TEXT, "\n".join(lines)),),
        citations=citations,
        metadata={"recommendations": [item.as_json() for item in result.items]},
    )


def parse_k(text: str) -> int | None:
    """How many recommendations the command text asks for; None when it is not a number in range."""
    text = text.strip()
    if not text:
        return DEFAULT_K
    if not text.isdigit() or not 1 <= int(text) <= MAX_K:
        return None
    return int(text)


async def recommend(services: CoreServices, invocation: Invocation) -> Reply:
    k = parse_k(invocation.text)
    if k is None:
        return error_reply("/recommend", f"Usage: `{USAGE}`: a number from 1 to {MAX_K}, or nothing.")
    with session_scope(services.sessions) as session:
        room = rooms.find_room(session, platform=invocation.platform, external_id=invocation.room_id)
        history = room_history(session, room=room) if room is not None else RoomHistory()
    if not history.approved_generations or not history.liked:
        return reply_for(history, None)

    def work():
        return compute(services.searcher(), history, k=k)

    try:
        result = await asyncio.to_thread(work)
    except LookupError as exc:
        return error_reply("/recommend", str(exc))
    return reply_for(history, result)

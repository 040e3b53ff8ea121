"""/similar: the scenes in the library closest to a logline or a pasted scene."""

from __future__ import annotations

from bot.core.replies import (
    Citation,
    Invocation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.core.services import CoreServices
from retrieval.types import SearchUnavailableError

# A pasted scene may be long; the embedder reads ~256 word pieces anyway.
SIMILAR_MAX_CHARS = 20_000
NOTHING_FOUND = "Nothing found: the library is empty. Add scripts with `writersroom ingest PATH`."


async def similar(services: CoreServices, invocation: Invocation) -> Reply:
    query = invocation.text.strip()
    if not query:
        return error_reply("/similar", "Give a logline or paste a scene, e.g. `/similar a con artist falls for her mark`.")
    if len(query) > SIMILAR_MAX_CHARS:
        return error_reply("/similar", f"That text is {len(query):,} characters; the limit is {SIMILAR_MAX_CHARS:,}.")
    try:
        hits = await services.search(query, k=services.settings.retrieval.top_k)
    except SearchUnavailableError as exc:
        return error_reply("/similar", str(exc))
    if not hits:
        return Reply(title="/similar", sections=(Section(SectionKind.TEXT, NOTHING_FOUND),))
    # Ranks, not scores: a fused hybrid score (~0.03) means nothing to a writer.
    lines = [f"{rank}. {hit.title} — {hit.scene.heading}" for rank, hit in enumerate(hits, 1)]
    citations = tuple(
        Citation(script_id=hit.script_id, title=hit.title, scene_index=hit.scene.index, heading=hit.scene.heading,
                 excerpt=hit.scene.excerpt, score=hit.score)
        for hit in hits
    )
    return Reply(
        title=f"Closest to: {query[:120]}",
        sections=(Section(SectionKind.TEXT, "\n".join(lines)),),
        citations=citations,
    )

"""/similar: the scenes in the library closest to a logline or a pasted scene.

While the library is still loading (`writersroom start` loads it in the background on first
run) the reply says how far it has got, from the status the load writes beside the index:
results from part of a library must not pass for results from all of it.
"""

from __future__ import annotations

import asyncio

from bot.core.replies import (
    Citation,
    Invocation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.core.services import CoreServices
from retrieval.ingest_status import LibraryLoad, read_status
from retrieval.types import SearchUnavailableError

# A pasted scene may be long; the embedder reads ~256 word pieces anyway.
SIMILAR_MAX_CHARS = 20_000
NOTHING_FOUND = "Nothing found: the library is empty. Add scripts with `writersroom ingest PATH`."


def loading_note(load: LibraryLoad | None, *, found: bool) -> str | None:
    """What a writer should know about a library that is not wholly loaded; None when it is."""
    if load is None or not load.unfinished:
        return None
    if load.loading:
        if not found:
            return (f"Nothing found yet: the library is still loading ({load.progress()}). "
                    "Try again in a minute.")
        return f"The library is still loading: {load.progress()}; results cover those only."
    return (f"The library stopped loading at {load.files_done} of {load.files_total} scripts; results cover those "
            "only. `writersroom start` loads the rest.")


async def similar(services: CoreServices, invocation: Invocation) -> Reply:
    query = invocation.text.strip()
    if not query:
        return error_reply("/similar", "Give a logline or paste a scene, e.g. `/similar a con artist falls for her mark`.")
    if len(query) > SIMILAR_MAX_CHARS:
        return error_reply("/similar", f"That text is {len(query):,} characters; the limit is {SIMILAR_MAX_CHARS:,}.")
    # Read before searching: the search sees at least what this status says is loaded.
    load = await asyncio.to_thread(read_status, services.settings.index_dir)
    try:
        hits = await services.search(query, k=services.settings.retrieval.top_k)
    except SearchUnavailableError as exc:
        return error_reply("/similar", str(exc))
    note = loading_note(load, found=bool(hits))
    if not hits:
        return Reply(title="/similar", sections=(Section(SectionKind.TEXT, note or NOTHING_FOUND),))
    # Ranks, not scores: a fused hybrid score (~0.03) means nothing to a writer.
    lines = [f"{rank}. {hit.title} — {hit.scene.heading}" for rank, hit in enumerate(hits, 1)]
    citations = tuple(
        Citation(script_id=hit.script_id, title=hit.title, scene_index=hit.scene.index, heading=hit.scene.heading,
                 excerpt=hit.scene.excerpt, score=hit.score)
        for hit in hits
    )
    sections = ((Section(SectionKind.TEXT, note),) if note else ()) + (Section(SectionKind.TEXT, "\n".join(lines)),)
    return Reply(title=f"Closest to: {query[:120]}", sections=sections, citations=citations)

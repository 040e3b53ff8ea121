"""Does a generated scene repeat the library word for word?

A scene that shares a run of COPY_MIN_WORDS words with a library scene is a copy, not
a new scene: the writers could not use it without lifting someone's script. Runs are
found with word shingles after case and punctuation are normalized, so "Hello, world!"
and "hello world" are the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

from retrieval.types import SceneHit

COPY_MIN_WORDS = 12  # verbatim run that counts as copying; the bot reads settings.generation.copy_guard_words
COPY_SEARCH_K = 3  # library scenes fetched by searching with the generated text itself

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class CopySource:
    """A text the scene must not copy, and how to name it to a writer."""

    title: str
    text: str
    script_id: str = ""
    scene_id: str = ""


@dataclass(frozen=True)
class CopyHit:
    title: str
    script_id: str
    scene_id: str
    words: int  # length of the longest shared run
    excerpt: str  # that run, normalized

    def as_json(self) -> dict:
        return {"title": self.title, "script_id": self.script_id, "scene_id": self.scene_id,
                "words": self.words, "excerpt": self.excerpt}


def words_of(text: str) -> list[str]:
    """Lowercase words without punctuation; apostrophes join ("don't" -> "dont")."""
    return _WORD.findall(text.lower().replace("'", "").replace("’", ""))


def shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


def longest_shared_run(text: str, source: str, *, min_words: int = COPY_MIN_WORDS) -> list[str]:
    """The longest run of at least ``min_words`` words that both texts contain, else []."""
    ours, theirs = words_of(text), words_of(source)
    shared = shingles(theirs, min_words)
    best: list[str] = []
    start = None  # first shingle of the current run of shared shingles
    for i in range(len(ours) - min_words + 2):
        hit = i <= len(ours) - min_words and tuple(ours[i:i + min_words]) in shared
        if hit and start is None:
            start = i
        elif not hit and start is not None:
            run = ours[start:i - 1 + min_words]
            best = run if len(run) > len(best) else best
            start = None
    return best


def find_copy(text: str, sources: Iterable[CopySource], *, min_words: int = COPY_MIN_WORDS) -> CopyHit | None:
    """The source sharing the longest verbatim run (≥ min_words) with ``text``, or None."""
    best: CopyHit | None = None
    for source in sources:
        run = longest_shared_run(text, source.text, min_words=min_words)
        if run and (best is None or len(run) > best.words):
            best = CopyHit(source.title, source.script_id, source.scene_id, len(run), " ".join(run))
    return best


def sources_from_hits(hits: Iterable[SceneHit]) -> list[CopySource]:
    return [CopySource(hit.title, hit.scene.text or hit.scene.excerpt, hit.script_id, hit.scene_id) for hit in hits]


async def check_copy(text: str, *, exemplars: list[SceneHit], search: Callable[..., Awaitable[list[SceneHit]]] | None,
                     extra: Iterable[CopySource] = (), min_words: int = COPY_MIN_WORDS,
                     k: int = COPY_SEARCH_K) -> CopyHit | None:
    """Compare with the exemplars shown to the model, ``extra`` texts, and the top ``k`` library
    scenes found by searching with the generated text itself (the nearest are the likeliest source)."""
    sources = [*sources_from_hits(exemplars), *extra]
    if search is not None and k > 0 and len(words_of(text)) >= min_words:
        sources += sources_from_hits(await search(text, k=k))
    return find_copy(text, sources, min_words=min_words)

"""Scenes -> embeddable chunks.

One chunk per scene keeps "which scene is this like?" answerable. A long scene
(stage-play acts run to thousands of words) is cut into overlapping word windows,
because MiniLM reads at most 256 word pieces and silently drops the rest: without
windows, everything after the first page of a scene would be invisible to search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.document import Scene, Script

DEFAULT_MAX_WORDS = 200  # ~260 word pieces of English: near MiniLM's 256 limit
DEFAULT_OVERLAP = 40  # so a moment cut at a window edge is still whole in one window
SCENE_TEXT_LIMIT = 1500  # characters of scene text kept for display and prompting

_SCREENPLAY_HEADING = re.compile(
    r"^\.?(?P<ie>INT\.?\s*/\s*EXT\.?|EXT\.?\s*/\s*INT\.?|I\.?/E\.?|INT\.?|EXT\.?|EST\.?)\s+(?P<rest>.+)$", re.IGNORECASE
)
_TIME_SPLIT = re.compile(r"\s+[-–—]+\s+|\s*--+\s*|\s+[–—]\s*")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # "<script_id>#<scene_index>.<n>"
    script_id: str
    scene_index: int
    heading: str
    text: str  # what gets embedded
    characters: tuple[str, ...] = ()
    location: str = ""  # "KITCHEN" from "INT. KITCHEN - NIGHT"
    time_of_day: str = ""  # "NIGHT"
    title: str = ""  # the script's title, so a hit can be shown without the script
    scene_text: str = ""  # the whole scene (up to SCENE_TEXT_LIMIT chars)

    @property
    def scene_id(self) -> str:
        return f"{self.script_id}#{self.scene_index}"


def parse_heading(heading: str) -> tuple[str, str]:
    """(location, time of day) from a screenplay heading; ("", "") for anything else.

    "INT. MOUNT GURU FOOTHILLS--DAY" -> ("MOUNT GURU FOOTHILLS", "DAY").
    """
    match = _SCREENPLAY_HEADING.match(heading.strip())
    if not match:
        return "", ""
    rest = match.group("rest").strip().lstrip("-–—. ")
    parts = [p.strip() for p in _TIME_SPLIT.split(rest) if p.strip()]
    if len(parts) >= 2:
        return " - ".join(parts[:-1]), parts[-1]
    return rest, ""


def chunk_script(script: Script, *, max_words: int = DEFAULT_MAX_WORDS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """All chunks of a script, scene by scene."""
    chunks: list[Chunk] = []
    for scene in script.scenes:
        chunks.extend(chunk_scene(script, scene, max_words=max_words, overlap=overlap))
    return chunks


def chunk_scene(script: Script, scene: Scene, *, max_words: int = DEFAULT_MAX_WORDS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    if not 0 <= overlap < max_words:
        raise ValueError(f"overlap ({overlap}) must be at least 0 and smaller than max_words ({max_words})")
    text = scene.text()
    if not text.strip():
        return []
    location, time_of_day = parse_heading(scene.heading)
    windows = split_words(text, max_words=max_words, overlap=overlap)
    scene_text = truncate(text, SCENE_TEXT_LIMIT)
    out = []
    for n, window in enumerate(windows):
        # Later windows lose the heading; put it back so each window says where it is.
        if n > 0 and scene.heading:
            window = f"{scene.heading}\n\n{window}"
        out.append(
            Chunk(
                chunk_id=f"{script.script_id}#{scene.index}.{n}",
                script_id=script.script_id,
                scene_index=scene.index,
                heading=scene.heading,
                text=window,
                characters=scene.characters,
                location=location,
                time_of_day=time_of_day,
                title=script.title,
                scene_text=scene_text,
            )
        )
    return out


def split_words(text: str, *, max_words: int, overlap: int) -> list[str]:
    """Overlapping windows of at most ``max_words`` words, keeping the original line breaks."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if len(spans) <= max_words:
        return [text.strip()]
    step = max_words - overlap
    windows = []
    start = 0
    while True:
        end = min(start + max_words, len(spans))
        windows.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            return windows
        start += step


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary and mark the cut, so excerpts never end mid-word."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + " …"

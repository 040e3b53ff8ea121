"""The parsed form of a script, shared by every parser (Fountain, TEI, later FDX/PDF).

Parsers differ wildly in their input but all produce this one shape, so chunking,
embedding and prompting never need to know where a script came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Element kinds. Plain strings (not an Enum) so they serialise to JSON as they are.
HEADING = "heading"
ACTION = "action"
CHARACTER = "character"
PARENTHETICAL = "parenthetical"
DIALOGUE = "dialogue"
TRANSITION = "transition"
LYRIC = "lyric"
NOTE = "note"
SECTION = "section"
SYNOPSIS = "synopsis"
PAGE_BREAK = "page_break"
CENTERED = "centered"

ELEMENT_KINDS = frozenset(
    {HEADING, ACTION, CHARACTER, PARENTHETICAL, DIALOGUE, TRANSITION, LYRIC, NOTE, SECTION, SYNOPSIS, PAGE_BREAK, CENTERED}
)
# Kinds that carry story content; a "scene" holding none of these (only sections,
# notes or page breaks) is not worth indexing.
CONTENT_KINDS = frozenset({ACTION, CHARACTER, DIALOGUE, PARENTHETICAL, LYRIC, CENTERED, TRANSITION})


@dataclass
class Element:
    """One screenplay element. ``extension`` is e.g. "V.O." on a character cue;
    ``dual`` marks both cues of a dual-dialogue pair; ``level`` is a section's depth;
    ``number`` is a heading's scene number (the ``#1A#`` suffix in Fountain)."""

    kind: str
    text: str
    extension: str = ""
    dual: bool = False
    level: int = 0
    number: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ELEMENT_KINDS:
            raise ValueError(f"unknown element kind {self.kind!r}")


@dataclass
class Scene:
    index: int
    heading: str
    elements: list[Element] = field(default_factory=list)
    characters: tuple[str, ...] = ()

    def text(self) -> str:
        """Render the scene as Fountain-like screenplay text.

        This is what gets embedded and what a prompt quotes, so it keeps the
        conventions a language model has seen in screenplays (uppercase cues,
        dialogue under them) and drops what is not story (notes, sections, page breaks).
        """
        blocks: list[str] = []
        if self.heading:
            blocks.append(self.heading)
        speech: list[str] = []  # cue + parentheticals + dialogue, kept as one block

        def flush() -> None:
            if speech:
                blocks.append("\n".join(speech))
                speech.clear()

        for el in self.elements:
            if el.kind == HEADING:
                continue  # the scene heading is rendered above
            if el.kind == CHARACTER:
                flush()
                cue = el.text.upper()
                if el.extension:
                    cue += f" ({el.extension})"
                speech.append(cue)
            elif el.kind == PARENTHETICAL and speech:
                speech.append(f"({el.text})")
            elif el.kind in (DIALOGUE, LYRIC) and speech:
                speech.append(el.text if el.kind == DIALOGUE else f"~{el.text}")
            else:
                flush()
                rendered = _render_block(el)
                if rendered:
                    blocks.append(rendered)
        flush()
        return "\n\n".join(blocks)


def _render_block(el: Element) -> str:
    if el.kind in (NOTE, SECTION, PAGE_BREAK):
        return ""
    if el.kind == TRANSITION:
        return el.text.upper()
    if el.kind == CENTERED:
        return f"> {el.text} <"
    if el.kind == LYRIC:
        return f"~{el.text}"
    if el.kind == SYNOPSIS:
        return f"= {el.text}"
    if el.kind == PARENTHETICAL:
        return f"({el.text})"
    return el.text


@dataclass
class Script:
    script_id: str
    title: str
    authors: list[str] = field(default_factory=list)
    source_path: str = ""
    format: str = ""  # "fountain", "tei"
    language: str = ""
    licence: str = ""
    scenes: list[Scene] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def characters_of(elements: list[Element]) -> tuple[str, ...]:
    """Distinct speaking characters of a scene, uppercased, in order of first cue."""
    seen: dict[str, None] = {}
    for el in elements:
        if el.kind == CHARACTER and el.text.strip():
            seen.setdefault(el.text.strip().upper(), None)
    return tuple(seen)

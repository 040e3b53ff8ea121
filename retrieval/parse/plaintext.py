"""Screenplays laid out as plain text (a .txt export, or the text of a PDF page) -> Script.

In a printed screenplay the element is told by where a line starts, not by markup:

    action / scene heading   the left margin (1.5" from the page edge)
    dialogue                 about 1" further in
    parenthetical            about 1.5" further in, in brackets
    character cue            about 2" further in, uppercase, right above the speech
    transition               far right ("CUT TO:"), or any line ending in "TO:"

Programs differ by a few columns (screenplain puts cues 1.9" in, Final Draft 2.2"), so
the rules are mostly relative: a cue is an uppercase line indented further than the
line below it, which is itself indented past the margin. Page furniture is dropped:
page numbers at the top or bottom of a page (or far right), "(MORE)", "CONTINUED:", and
the "NAME (CONT'D)" that repeats a cue at the top of the next page (its speech is joined
back to the one the page broke).

This module is the shared core; ``pdf.py`` feeds it the layout text of each PDF page
with each line's true indentation restored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from retrieval.document import (
    ACTION,
    CENTERED,
    CHARACTER,
    DIALOGUE,
    HEADING,
    PARENTHETICAL,
    TRANSITION,
    Element,
    Script,
)

# Offsets from the left margin, in columns of 12-pt Courier (10 to the inch).
DIALOGUE_MIN = 5  # a line at least this far in is not action
CUE_STEP = 3  # a cue sits at least this far right of the speech under it
RIGHT_SIDE = 35  # transitions and right-hand page numbers start at least this far in
CENTER_MIN = 12  # a lone line this far in that is no cue or transition is centred text

_NUMBER_ONLY = re.compile(r"^(?:page\s*)?[-–(]?\s*\d{1,4}\s*[-–.)]?\s*$", re.IGNORECASE)
_FURNITURE = re.compile(r"^\(?(?:MORE|CONTINUED|CONT['’]?D)\)?(?::?\s*\(\d+\))?:?$", re.IGNORECASE)
_SCENE_NO = r"[A-Z]?\d{1,4}[A-Z]?(?:[-.]?[A-Z0-9]{1,2})?"
_NUMBERED = re.compile(rf"^(?P<left>{_SCENE_NO})?(?P<gap>\s{{2,}})?(?P<body>.+?)(?:\s{{2,}}(?P<right>{_SCENE_NO}))?$")
_COLUMNS = re.compile(r"\s{3,}")
_TRANSITION_WORDS = re.compile(r"^(?:FADE (?:OUT|IN|TO BLACK)|CUT TO BLACK|SMASH CUT|MATCH CUT|DISSOLVE)\b")
_BYLINE = re.compile(r"^(?:(?:written|screenplay|teleplay|story|script)\s+)?by:?$", re.IGNORECASE)


@dataclass
class Line:
    indent: int  # columns from the page's left edge (text) or left margin estimate (PDF)
    text: str  # stripped at both ends; runs of inner spaces kept (dual dialogue columns)
    page: int = 0


def text_pages(text: str) -> list[list[str]]:
    """Split a text file into pages at form feeds (how text exports mark page breaks)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [page.split("\n") for page in text.split("\f")]


def page_lines(pages: list[list[str]]) -> list[Line | None]:
    """Lines of all pages with furniture removed; ``None`` marks a blank line.

    A page boundary is always a blank line too, so no block runs over a page break.
    """
    out: list[Line | None] = []
    for number, raw_lines in enumerate(pages):
        lines = [_line(raw, number) for raw in raw_lines]
        filled = [i for i, line in enumerate(lines) if line is not None]
        edges = set(filled[:1] + filled[-1:])
        for i, line in enumerate(lines):
            if line is not None and _is_furniture(line, at_edge=i in edges):
                lines[i] = None
        out.extend(lines)
        out.append(None)
    return out


def _line(raw: str, page: int) -> Line | None:
    raw = _CONTROL.sub("", raw.expandtabs(8)).rstrip()
    if not raw.strip():
        return None
    return Line(len(raw) - len(raw.lstrip()), raw.strip(), page)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _is_furniture(line: Line, *, at_edge: bool) -> bool:
    if _FURNITURE.match(line.text):
        return True
    # A page number: alone on a line at the top or bottom of a page, or far right anywhere.
    return bool(_NUMBER_ONLY.match(line.text)) and (at_edge or line.indent >= 40)


# -- classification -------------------------------------------------------------------


def layout_elements(lines: list[Line | None], *, margin: int | None = None) -> list[Element]:
    """Classify laid-out lines into elements.

    ``margin`` is the column of the action margin when the caller knows it (a PDF page
    whose leftmost text is dialogue); otherwise it is the smallest indentation found.
    """
    lines = [_strip_scene_number(line) if line else None for line in lines]
    indents = [line.indent for line in lines if line is not None]
    if not indents:
        return []
    left = min(indents) if margin is None else min(margin, min(indents))
    out: list[Element] = []
    state = _State()
    for block in _blocks(lines):
        _classify_block(block, left, out, state)
    for el in out:
        el.text = el.text.strip("\n")
    return [el for el in out if el.text or el.kind == HEADING]


@dataclass
class _State:
    speaker: str = ""  # the cue of the speech in progress, "" when none
    page: int = -1  # the page that speech was last written on


def _blocks(lines: list[Line | None]) -> list[list[Line]]:
    blocks: list[list[Line]] = []
    current: list[Line] = []
    for line in lines + [None]:
        if line is None:
            if current:
                blocks.append(current)
            current = []
        else:
            current.append(line)
    return blocks


def _strip_scene_number(line: Line) -> Line:
    """"12   INT. HOUSE - DAY   12" -> the heading alone, indented where it really starts.
    The number is kept on the line object for the heading element."""
    from retrieval.parse.fountain import is_scene_heading

    match = _NUMBERED.match(line.text)
    if not match or not (match.group("left") or match.group("right")) or not is_scene_heading(match.group("body")):
        return line
    if match.group("left") and not match.group("gap"):
        return line
    number = match.group("left") or match.group("right")
    shift = match.start("body")
    stripped = _NumberedLine(line.indent + shift, match.group("body").strip(), line.page)
    stripped.number, stripped.number_indent = number, line.indent
    return stripped


@dataclass
class _NumberedLine(Line):
    number: str = ""
    number_indent: int = 0  # where the line started, scene number included


def _is_upper(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.upper()


def _cue_of(text: str) -> Element | None:
    from retrieval.parse.fountain import character_cue

    if len(text) > 50 or not _is_upper(text) or text.endswith((":", ".", "!", "?")) and not text.endswith(")"):
        return None
    return character_cue(text)


def _classify_block(block: list[Line], left: int, out: list[Element], state: _State) -> None:
    from retrieval.parse.fountain import is_scene_heading

    first = block[0]
    delta = first.indent - left
    # a scene number in the margin may push a heading's text past the action margin
    if min(delta, getattr(first, "number_indent", first.indent) - left) < DIALOGUE_MIN and is_scene_heading(first.text):
        out.append(Element(HEADING, " ".join(first.text.split()), number=getattr(first, "number", "")))
        state.speaker = ""
        if len(block) > 1:
            _classify_block(block[1:], left, out, state)
        return
    if delta >= DIALOGUE_MIN and _dual_cues(first.text) and len(block) > 1:
        _dual_dialogue(block, out)
        state.speaker = ""
        return
    cue = _cue_of(first.text) if delta >= DIALOGUE_MIN + CUE_STEP else None
    if cue is not None and len(block) > 1 and _speech_follows(first, block[1], left):
        _speech(cue, block[1:], left, out, state)
        return
    if len(block) == 1 and _is_transition(first.text, delta):
        out.append(Element(TRANSITION, first.text))
        state.speaker = ""
        return
    if state.speaker and all(line.indent - left >= DIALOGUE_MIN for line in block):
        # a speech going on after a blank line (or onto the next page)
        _speech_lines(block, out, new_paragraph=True)
        state.page = block[-1].page
        return
    state.speaker = ""
    if len(block) == 1 and delta >= CENTER_MIN:
        out.append(Element(CENTERED, first.text))
        return
    out.append(Element(ACTION, "\n".join(line.text for line in block)))


def _speech_follows(cue: Line, below: Line, left: int) -> bool:
    """The line under a cue candidate is speech: indented past the margin, and either to
    the left of the cue or a parenthetical."""
    return below.indent - left >= DIALOGUE_MIN and (below.indent <= cue.indent - CUE_STEP or below.text.startswith("("))


def _speech(cue: Element, lines: list[Line], left: int, out: list[Element], state: _State) -> None:
    repeated = cue.text == state.speaker and lines[0].page > state.page >= 0 and _is_contd(out)
    if not repeated:
        out.append(cue)
    state.speaker = cue.text
    _speech_lines(lines, out, new_paragraph=repeated)
    state.page = lines[-1].page


def _is_contd(out: list[Element]) -> bool:
    return bool(out) and out[-1].kind in (DIALOGUE, PARENTHETICAL)


def _speech_lines(lines: list[Line], out: list[Element], *, new_paragraph: bool) -> None:
    """Parentheticals (possibly wrapped over lines) and dialogue under one cue."""
    paren: list[str] = []
    for line in lines:
        text = line.text
        if paren or text.startswith("("):
            paren.append(text)
            if text.endswith(")"):
                out.append(Element(PARENTHETICAL, " ".join(paren).removeprefix("(").removesuffix(")").strip()))
                paren = []
            continue
        if out and out[-1].kind == DIALOGUE:
            out[-1].text += ("\n\n" if new_paragraph else "\n") + text
        else:
            out.append(Element(DIALOGUE, text))
        new_paragraph = False
    if paren:  # an unclosed bracket is dialogue after all
        out.append(Element(DIALOGUE, " ".join(paren)))


def _dual_cues(text: str) -> tuple[Element, Element] | None:
    parts = _COLUMNS.split(text)
    if len(parts) != 2:
        return None
    a, b = (_cue_of(p) for p in parts)
    return (a, b) if a and b else None


def _segments(line: Line) -> list[Line]:
    """The parts of a line separated by three or more spaces, each at its own column."""
    return [Line(line.indent + m.start(), m.group(), line.page) for m in _SEGMENT.finditer(line.text)]


_SEGMENT = re.compile(r"\S+(?: {1,2}\S+)*")


def _dual_dialogue(block: list[Line], out: list[Element]) -> None:
    """Two speeches side by side: each part of a line goes to the column it starts in,
    split at the midpoint between the two cues."""
    left_cue, right_cue = _dual_cues(block[0].text)
    cue_columns = _segments(block[0])
    split = (cue_columns[0].indent + cue_columns[1].indent) // 2
    columns: list[list[Line]] = [[], []]
    for line in block[1:]:
        for part in _segments(line):
            columns[0 if part.indent < split else 1].append(part)
    for cue, lines in ((left_cue, columns[0]), (right_cue, columns[1])):
        cue.dual = True
        out.append(cue)
        _speech_lines(lines, out, new_paragraph=False)


def _is_transition(text: str, delta: int) -> bool:
    if not _is_upper(text):
        return False
    if text.endswith("TO:"):
        return True
    return delta >= RIGHT_SIDE and (text.endswith((":", ".")) or bool(_TRANSITION_WORDS.match(text)))


# -- title page ---------------------------------------------------------------------


def title_page(lines: list[Line], left: int) -> tuple[str, list[str]]:
    """(title, authors) from a title page: the first centred line is the title; the
    authors are the lines after a "Written by" line, or else the next centred line."""
    centred = [line for line in lines if line.indent - left >= CENTER_MIN]
    if not centred:
        return "", []
    title = centred[0].text
    rest = centred[1:]
    for i, line in enumerate(rest):
        if _BYLINE.match(line.text):
            names = [n.text for n in rest[i + 1 : i + 3] if not _BYLINE.match(n.text)][:1]
            return title, _split_names(names)
    return title, _split_names([rest[0].text] if rest else [])


def _split_names(names: list[str]) -> list[str]:
    return [n.strip() for name in names for n in re.split(r"\s+&\s+|\s+and\s+", name) if n.strip()]


def has_story(elements: list[Element]) -> bool:
    return any(el.kind in (HEADING, CHARACTER) for el in elements)


# -- whole files ---------------------------------------------------------------------


def parse_screenplay_text(text: str, *, path: str | Path = "") -> Script:
    """Parse a screenplay laid out as plain text (pages split at form feeds)."""
    return script_from_pages(text_pages(text), path=path, fmt="screenplay-text")


def script_from_pages(pages: list[list[str]], *, path: str | Path, fmt: str, margin: int | None = None) -> Script:
    """The shared end of the text and PDF parsers: pages of laid-out lines -> Script.

    A first page with no scene heading and no speech, followed by more pages, is a
    title page: it names the script and is not indexed as a scene.
    """
    from retrieval.parse import slugify
    from retrieval.parse.fountain import group_scenes

    lines = page_lines(pages)
    title, authors = "", []
    if len(pages) > 1:
        first = [line for line in lines if line is not None and line.page == 0]
        if first and not has_story(layout_elements([*first], margin=margin)):
            known = [line.indent for line in lines if line is not None and line.page > 0]
            left = min(known + ([margin] if margin is not None else [])) if known else 0
            title, authors = title_page(first, left)
            lines = [line for line in lines if line is None or line.page > 0]
    elements = layout_elements(lines, margin=margin)
    stem = Path(path).stem if path else ""
    return Script(
        script_id=slugify(stem or title or "script"),
        title=title or stem.replace("_", " ") or "Untitled",
        authors=authors,
        source_path=str(path),
        format=fmt,
        scenes=group_scenes(elements),
    )


def looks_like_screenplay_text(text: str) -> bool:
    """True when the text is laid out like a printed screenplay: at least three
    speeches whose cue is an uppercase line indented past the speech under it, or a
    scene heading and at least one such speech. (See ``detect_format``.)"""
    lines = [line for line in page_lines(text_pages(text[:200_000]))]
    indents = [line.indent for line in lines if line is not None]
    if not indents:
        return False
    left = min(indents)
    speeches = headings = 0
    from retrieval.parse.fountain import is_scene_heading

    for above, below in zip(lines, lines[1:]):
        if above is None or below is None:
            continue
        if above.indent - left >= DIALOGUE_MIN + CUE_STEP and _cue_of(above.text) and _speech_follows(above, below, left):
            speeches += 1
    headings = sum(1 for line in lines if line is not None and line.indent - left < DIALOGUE_MIN and is_scene_heading(line.text))
    return speeches >= 3 or (headings >= 1 and speeches >= 1)

"""Fountain 1.1 parser (https://fountain.io/syntax), the core of the format.

Written as a line classifier with one line of look-behind (was the previous line
blank?) and one of look-ahead (is the next line blank?), which is how the spec
defines headings, character cues and transitions. Notes and boneyard are removed
before classification so they can never change how the surrounding text reads.
"""

from __future__ import annotations

import re
from pathlib import Path

from retrieval.document import (
    ACTION,
    CENTERED,
    CHARACTER,
    CONTENT_KINDS,
    DIALOGUE,
    HEADING,
    LYRIC,
    NOTE,
    PAGE_BREAK,
    PARENTHETICAL,
    SECTION,
    SYNOPSIS,
    TRANSITION,
    Element,
    Scene,
    Script,
    characters_of,
)

_BONEYARD = re.compile(r"/\*.*?\*/", re.DOTALL)
# A note may span lines but not an empty line; a line of spaces does not end it
# (the spec's rule, which screenplain and screenplay-tools agree on).
_NOTE = re.compile(r"\[\[((?:(?!\n\n).)*?)\]\]", re.DOTALL)
_NOTE_LINE = "\x00note:"  # a whole-paragraph note is kept as a line with this prefix
_HEADING = re.compile(r"^(?:INT\.?/EXT|EXT\.?/INT|I\.?/E|INT|EXT|EST)[.\s]", re.IGNORECASE)
_SCENE_NUMBER = re.compile(r"\s*#([\w.\-]+)#\s*$")
_TITLE_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9 _-]*?):[ \t]*(.*)$")
_PAGE_BREAK = re.compile(r"^={3,}$")
_CUE = re.compile(r"^(?P<name>[^(^]+?)\s*(?P<ext>(?:\([^)]*\)\s*)*)(?P<dual>\^)?$")
_CONTD = re.compile(r"^CONT['’`]?D$|^CONTINUED$", re.IGNORECASE)


def parse_fountain(text: str, *, path: str | Path = "", script_id: str = "") -> Script:
    """Parse Fountain source text. ``path`` only names the script (id and title fallback)."""
    from retrieval.parse import slugify

    lines = _prepare(text)
    title_page, body_start = _read_title_page(lines)
    elements = _classify(lines[body_start:])
    stem = Path(path).stem if path else ""
    title = _first_line(title_page.get("title", "")) or stem.replace("_", " ") or "Untitled"
    return Script(
        script_id=script_id or slugify(stem or title),
        title=title,
        authors=_authors(title_page),
        source_path=str(path),
        format="fountain",
        language="",
        licence=_first_line(title_page.get("copyright", "") or title_page.get("license", "") or title_page.get("licence", "")),
        scenes=_group_scenes(elements),
        metadata={"title_page": title_page},
    )


def parse_elements(text: str) -> list[Element]:
    """All body elements of a Fountain text in order, scene headings included (for tests and tools)."""
    lines = _prepare(text)
    _, body_start = _read_title_page(lines)
    return _classify(lines[body_start:])


# -- preparation -------------------------------------------------------------------


def _prepare(text: str) -> list[str]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = _BONEYARD.sub("", text)
    return _mark_notes(text).split("\n")


def _mark_notes(text: str) -> str:
    """Drop inline notes; keep a note that is its own paragraph as one marked line."""

    def replace(match: re.Match) -> str:
        start, end = match.span()
        before = text[:start].rsplit("\n", 1)[-1]
        after = text[end:].split("\n", 1)[0]
        if before.strip() or after.strip():
            return ""
        body = " ".join(part.strip() for part in match.group(1).split("\n") if part.strip())
        return _NOTE_LINE + body

    return _NOTE.sub(replace, text)


def _read_title_page(lines: list[str]) -> tuple[dict[str, str], int]:
    """Title page keys (lowercased) and the index of the first body line.

    The title page must start on the first line; it runs while lines are either
    ``Key: value`` or indented continuations, and ends at the first other line.
    """
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or first != 0:
        return {}, 0
    match = _TITLE_KEY.match(lines[0])
    if not match or _is_transition_text(lines[0].strip()):
        return {}, 0
    entries: dict[str, str] = {}
    key = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _TITLE_KEY.match(line)
        if match and not line.startswith((" ", "\t")):
            key = match.group(1).strip().lower()
            entries[key] = match.group(2).strip()
        elif key and line.strip() and line.startswith(("   ", "\t")):
            entries[key] = (entries[key] + "\n" + line.strip()).strip("\n")
        else:
            break
        i += 1
    return entries, i


def _first_line(value: str) -> str:
    for line in value.split("\n"):
        cleaned = line.strip().strip("*_").strip().strip('"').strip()
        if cleaned:
            return cleaned
    return ""


def _authors(title_page: dict[str, str]) -> list[str]:
    raw = title_page.get("author", "") or title_page.get("authors", "")
    return [a.strip() for a in re.split(r"\n|\s+&\s+|\s+and\s+", raw) if a.strip()]


# -- classification ------------------------------------------------------------------


def _is_transition_text(stripped: str) -> bool:
    return stripped.endswith("TO:") and stripped == stripped.upper()


def _is_blank(line: str | None) -> bool:
    return line is None or not line.strip()


def _classify(lines: list[str]) -> list[Element]:
    out: list[Element] = []
    n = len(lines)
    i = 0
    while i < n:
        raw = lines[i]
        s = raw.strip()
        prev_blank = i == 0 or _is_blank(lines[i - 1])
        nxt = lines[i + 1] if i + 1 < n else None
        if not s:
            i += 1
            continue
        if s.startswith(_NOTE_LINE):
            out.append(Element(NOTE, s[len(_NOTE_LINE):]))
        elif _PAGE_BREAK.match(s):
            out.append(Element(PAGE_BREAK, ""))
        elif s.startswith("!"):
            i = _read_action(lines, i, out)
            continue
        elif s.startswith("#"):
            level = len(s) - len(s.lstrip("#"))
            out.append(Element(SECTION, s[level:].strip(), level=level))
        elif s.startswith("="):
            out.append(Element(SYNOPSIS, s[1:].strip()))
        elif s.startswith("~"):
            out.append(Element(LYRIC, s[1:].strip()))
        elif s.startswith(">") and s.endswith("<") and len(s) > 1:
            out.append(Element(CENTERED, s[1:-1].strip()))
        elif s.startswith(">"):
            out.append(Element(TRANSITION, s[1:].strip()))
        elif prev_blank and (_forced_heading(s) or _HEADING.match(s)):
            out.append(_heading(s[1:] if _forced_heading(s) else s))
        elif prev_blank and _is_blank(nxt) and _is_transition_text(s):
            out.append(Element(TRANSITION, s))
        elif prev_blank and not _is_blank(nxt) and (cue := _cue(s)) is not None:
            _mark_dual(out, cue)
            out.append(cue)
            i = _read_dialogue(lines, i + 1, out)
            continue
        else:
            i = _read_action(lines, i, out)
            continue
        i += 1
    return out


def is_scene_heading(s: str) -> bool:
    """True for a line that reads as a scene heading (INT./EXT./EST./I/E ...), for the
    layout parsers (PDF, screenplay text) that share Fountain's idea of a heading."""
    return bool(_HEADING.match(s.strip()))


def character_cue(s: str) -> Element | None:
    """A CHARACTER element for a cue line ("JIM (O.S.) (CONT'D)" -> JIM, "O.S."), or None."""
    return _cue(s.strip())


def group_scenes(elements: list[Element]) -> list[Scene]:
    """Split a flat element list into scenes at each heading (shared by every parser)."""
    return _group_scenes(elements)


def _forced_heading(s: str) -> bool:
    return len(s) > 1 and s[0] == "." and s[1].isalnum()


def _heading(s: str) -> Element:
    number = ""
    match = _SCENE_NUMBER.search(s)
    if match:
        number = match.group(1)
        s = s[: match.start()]
    return Element(HEADING, s.strip(), number=number)


def _cue(s: str) -> Element | None:
    """A character cue, or None. Uppercase name with a letter in it, or forced with '@'."""
    forced = s.startswith("@")
    body = s[1:].strip() if forced else s
    match = _CUE.match(body)
    if not match:
        return None
    name = match.group("name").strip()
    if not name or (not forced and (name != name.upper() or not any(c.isalpha() for c in name))):
        return None
    groups = re.findall(r"\(([^)]*)\)", match.group("ext") or "")
    extension = " ".join(g.strip() for g in groups if not _CONTD.match(g.strip()))
    return Element(CHARACTER, name, extension=extension, dual=bool(match.group("dual")))


def _mark_dual(out: list[Element], cue: Element) -> None:
    """A '^' cue pairs with the previous cue: both become dual."""
    if not cue.dual:
        return
    for el in reversed(out):
        if el.kind == CHARACTER:
            el.dual = True
            return


def _read_dialogue(lines: list[str], i: int, out: list[Element]) -> int:
    """Read parentheticals, dialogue and lyrics after a cue until a blank line.

    A line of two or more spaces (not empty) keeps the speech going, as the spec allows.
    """
    speech: list[str] = []

    def flush() -> None:
        if speech:
            out.append(Element(DIALOGUE, "\n".join(speech).strip("\n")))
            speech.clear()

    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        if not s:
            if len(raw) >= 2 and i + 1 < len(lines) and lines[i + 1].strip():
                speech.append("")
                i += 1
                continue
            break
        if s.startswith("(") and s.endswith(")"):
            flush()
            out.append(Element(PARENTHETICAL, s[1:-1].strip()))
        elif s.startswith("~"):
            flush()
            out.append(Element(LYRIC, s[1:].strip()))
        else:
            speech.append(s)
        i += 1
    flush()
    return i


def _read_action(lines: list[str], i: int, out: list[Element]) -> int:
    """Consecutive lines that are nothing else form one action paragraph ('!' forces action)."""
    para: list[str] = []
    while i < len(lines):
        s = lines[i].strip()
        if not s:
            break
        if para and (s.startswith(("~", "=", "#", _NOTE_LINE)) or _PAGE_BREAK.match(s) or (s.startswith(">") and s.endswith("<"))):
            break  # these start their own element even without a blank line before
        para.append(s[1:] if s.startswith("!") else s)
        i += 1
    out.append(Element(ACTION, "\n".join(para)))
    return i


# -- scenes ------------------------------------------------------------------------


def _group_scenes(elements: list[Element]) -> list[Scene]:
    """Split at headings. Text before the first heading becomes an unnamed scene if it has story."""
    groups: list[tuple[str, list[Element]]] = [("", [])]
    for el in elements:
        if el.kind == HEADING:
            groups.append((el.text, [el]))
        else:
            groups[-1][1].append(el)
    scenes: list[Scene] = []
    for heading, els in groups:
        if not heading and not any(e.kind in CONTENT_KINDS for e in els):
            continue
        scenes.append(Scene(index=len(scenes), heading=heading, elements=els, characters=characters_of(els)))
    return scenes

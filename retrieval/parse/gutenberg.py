"""Plays in Project Gutenberg plain text (the Shakespeare editions and the like) -> Script.

The layout these texts share:

    ACT I.                                     act heading, flush left
    SCENE 1. A hall in the DUKE'S palace.      scene heading (number, then the place)
    [Enter the DUKE, AEGEON, GAOLER.]          stage direction in brackets
    AEGEON.                                    speaker: caps, or an abbreviation ("Ber."),
    Proceed, Solinus, to procure my fall,      on its own line above the speech
    DUKE. Merchant of Syracuse, plead no more; or in front of its first line

Each scene (or an act, prologue or induction with no scenes) becomes a scene; a speech
becomes a cue plus dialogue; a bracketed direction becomes action, or a parenthetical
when it sits inside a speech ("[Aside.]"); an indented line beginning "Enter"/"Exit"/...
is a direction too (some editions indent them instead of bracketing). Speech resumed
after a direction gets its cue repeated, so every speech reads as one in a prompt.

Speaker lines are only trusted when the same name is used at least twice (or it is in
capitals), so a one-word line of verse such as "Farewell." is not taken for a speaker.
The Gutenberg licence header and footer are stripped when present.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from retrieval.document import (
    ACTION,
    CHARACTER,
    DIALOGUE,
    HEADING,
    PARENTHETICAL,
    Element,
    Script,
)

_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^(?:\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG|End of (?:the )?Project Gutenberg).*$", re.IGNORECASE | re.MULTILINE)
_NUM = r"(?:[IVXLC]+|\d+|ONE|TWO|THREE|FOUR|FIVE|FIRST|SECOND|THIRD|FOURTH|FIFTH)"
_ACT = re.compile(rf"^ACT\s+{_NUM}\b\.?(?P<rest>.*)$", re.IGNORECASE)
_SCENE = re.compile(rf"^SCENE\s+{_NUM}\b", re.IGNORECASE)
_PART = re.compile(r"^(?:PROLOGUE|EPILOGUE|INDUCTION)\b\.?\s*$", re.IGNORECASE)
_CAPS_SPEAKER = re.compile(r"^(?=.*[A-Z]{2})[A-Z][A-Z .,'&-]{0,38}?\.?$")
_ABBR_SPEAKER = re.compile(r"^[A-Z][a-z']*\.?(?: [A-Z]?[a-z']*\.?){0,3}$")
_INLINE = re.compile(r"^(?P<name>[A-Z][A-Za-z'.]*(?: [A-Z][A-Za-z'.]*){0,3})\.\s+(?P<text>\S.*)$")
_DIRECTION_WORDS = re.compile(r"^(?:Enter|Re-enter|Exit|Exeunt|Manet|Flourish|Alarum|Sennet|Trumpets|Music|Dies|They fight)\b")
_BY = re.compile(r"^by\s+(.+)$", re.IGNORECASE)
_HEADER_FIELD = re.compile(r"^(Title|Author):\s*(.+)$", re.MULTILINE)


def strip_boilerplate(text: str) -> str:
    """The text between Project Gutenberg's START and END markers (all of it if none)."""
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text


def parse_gutenberg(text: str, *, path: str | Path = "") -> Script:
    from retrieval.parse import slugify
    from retrieval.parse.fountain import group_scenes

    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    header = dict((k.lower(), v.strip()) for k, v in _HEADER_FIELD.findall(text[: text.find("***") if "***" in text else 0]))
    lines = strip_boilerplate(text).split("\n")
    body_start = next((i for i, line in enumerate(lines) if _is_heading(line)), None)
    front = lines[:body_start] if body_start is not None else []
    title, authors = _title_and_authors(front)
    elements = _elements(lines[body_start:] if body_start is not None else lines)
    stem = Path(path).stem if path else ""
    title = header.get("title") or title or stem.replace("_", " ") or "Untitled"
    return Script(
        script_id=slugify(stem or title),
        title=title,
        authors=[header["author"]] if header.get("author") else authors,
        source_path=str(path),
        format="gutenberg",
        language="en",
        licence="Public domain (Project Gutenberg text)",
        scenes=group_scenes(elements),
    )


def _is_heading(line: str) -> bool:
    s = line.strip()
    return line == line.lstrip() and len(s) < 100 and bool(_ACT.match(s) or _SCENE.match(s) or _PART.match(s))


def _title_and_authors(front: list[str]) -> tuple[str, list[str]]:
    """The first line is the title; a "by ..." line under it names the author."""
    filled = [line.strip() for line in front if line.strip()]
    title = filled[0] if filled else ""
    for line in filled[1:4]:
        match = _BY.match(line)
        if match:
            return title, [match.group(1).strip()]
    return title, []


def _speaker_candidate(line: str) -> str:
    """The name if ``line`` could be a speaker line on its own, else ""."""
    s = line.strip()
    if line != line.lstrip() or not s or len(s) > 40 or s.startswith("[") or _ACT.match(s) or _SCENE.match(s):
        return ""
    if _CAPS_SPEAKER.match(s) or (_ABBR_SPEAKER.match(s) and s.endswith(".")):
        return s.rstrip(".").strip()
    return ""


def _speaker_names(lines: list[str]) -> set[str]:
    """Names used as speaker lines: a line after a blank with text right under it.
    Capitals count at once; an abbreviation ("Ber.") from its second use."""
    counts: Counter[str] = Counter()
    for i in range(1, len(lines) - 1):
        if lines[i - 1].strip() or not lines[i + 1].strip():
            continue
        name = _speaker_candidate(lines[i])
        if name:
            counts[name] += 1
    return {name for name, n in counts.items() if n >= 2 or name == name.upper()}


def _elements(lines: list[str]) -> list[Element]:
    names = _speaker_names(lines)
    out: list[Element] = []
    act = ""
    speaker = ""  # the speaker whose speech is going on
    in_block = False  # inside a run of non-blank lines that belongs to that speech
    i = 0
    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        if not s:
            in_block = False
            i += 1
            continue
        speaks = _PART.match(s) and i + 1 < len(lines) and lines[i + 1].strip()  # PROLOGUE, the speaker
        if _is_heading(raw) and not speaks:
            act, heading = _heading(s, act, lines, i)
            if heading:
                out.append(Element(HEADING, heading))
            speaker, in_block = "", False
            i += 1
            continue
        if s.startswith("["):
            direction, i = _bracketed(lines, i)
            if speaker and in_block:
                out.append(Element(PARENTHETICAL, direction))
            else:
                out.append(Element(ACTION, direction))
                in_block = False
            continue
        if raw != raw.lstrip() and _DIRECTION_WORDS.match(s):
            out.append(Element(ACTION, s))
            in_block = False
            i += 1
            continue
        own = _speaker_candidate(raw)
        if own and own in names and i + 1 < len(lines) and lines[i + 1].strip():
            speaker, in_block = _cue(own), True
            out.append(Element(CHARACTER, speaker))
            i += 1
            continue
        inline = _INLINE.match(s) if raw == raw.lstrip() else None
        if inline and (inline.group("name") in names or _is_caps_name(inline.group("name"))):
            speaker, in_block = _cue(inline.group("name")), True
            out.append(Element(CHARACTER, speaker))
            _add_line(out, inline.group("text"))
            i += 1
            continue
        if speaker:
            if not in_block and out[-1].kind not in (DIALOGUE, CHARACTER, PARENTHETICAL):
                out.append(Element(CHARACTER, speaker))  # the speech resumes after a direction
            in_block = True
            _add_line(out, s)
        elif out and out[-1].kind == ACTION and in_block:
            _append(out[-1], s)
        else:
            out.append(Element(ACTION, s))
            in_block = True
        i += 1
    return out


def _is_caps_name(name: str) -> bool:
    letters = [c for c in name if c.isalpha()]
    return len(letters) >= 2 and name == name.upper()


def _cue(name: str) -> str:
    return " ".join(name.rstrip(".").split()).upper()


def _add_line(out: list[Element], text: str) -> None:
    if out and out[-1].kind == DIALOGUE:
        _append(out[-1], text)
    else:
        out.append(Element(DIALOGUE, text))


def _append(el: Element, text: str) -> None:
    el.text = f"{el.text}\n{text}"


def _bracketed(lines: list[str], i: int) -> tuple[str, int]:
    """A stage direction in brackets, possibly over several lines; returns (text, next i)."""
    parts = []
    while i < len(lines) and lines[i].strip():
        parts.append(lines[i].strip())
        i += 1
        if parts[-1].endswith("]"):
            break
    return " ".join(" ".join(parts).strip("[] ").split()), i


def _heading(s: str, act: str, lines: list[str], i: int) -> tuple[str, str]:
    """(the current act, the heading to emit or ""). An act heading is emitted only when
    no scene heading follows it (an act played as one scene, or an act prologue)."""
    s = " ".join(s.split()).rstrip()
    match = _ACT.match(s)
    if match:
        rest = match.group("rest").strip().lstrip(".").strip()
        act_label = s[: len(s) - len(match.group("rest"))].strip().rstrip(".")
        if rest and _SCENE.match(rest):  # "ACT I. SCENE I. Elsinore."
            return act_label, f"{act_label}, {rest}"
        nxt = next((line for line in lines[i + 1 :] if line.strip()), "")
        return act_label, "" if _is_heading(nxt) else act_label
    if _PART.match(s):
        label = s.rstrip(".")
        return act, f"{act}, {label}" if act else label
    return act, f"{act}, {s}" if act else s


def looks_like_play(text: str) -> bool:
    """True for a stage play in this layout: act or scene headings flush left, and at
    least ten speeches (four under a Project Gutenberg header) opened by speaker lines,
    with at least two speakers who speak more than once. (See ``detect_format``.)"""
    needed = 4 if _START.search(text[:20_000]) else 10  # the Gutenberg header is evidence too
    lines = strip_boilerplate(text[:400_000]).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headings = sum(1 for line in lines if _is_heading(line))
    if headings < 1:
        return False
    names = _speaker_names(lines)
    cues = Counter(_cue(c) for line in lines if (c := _speaker_candidate(line)) in names)
    for line in lines:
        inline = _INLINE.match(line) if line == line.lstrip() else None
        if inline and _is_caps_name(inline.group("name")):
            cues[_cue(inline.group("name"))] += 1
    return sum(cues.values()) >= needed and sum(1 for n in cues.values() if n >= 2) >= 2

"""Style analysis of one parsed script: length, cast, balance of talk and action.

``analyze(script)`` works on any :class:`retrieval.document.Script` (Fountain, FDX, PDF,
TEI, Gutenberg plain text), because it reads only the shared element kinds.

Page estimate (the rule, so a writer can check it by hand)
    A page holds :data:`LINES_PER_PAGE` (55) printed lines. Each element is wrapped
    word by word at its column width: action, centered text and anything else at
    :data:`ACTION_WIDTH` (60 characters), dialogue, parentheticals and lyrics at
    :data:`DIALOGUE_WIDTH` (35). Scene headings, character cues and transitions take
    one line each. A hard line break inside an element starts a new line; an empty
    one counts as a blank line. One blank line separates consecutive elements, except
    inside a speech (cue, parentheticals and dialogue print as one block). Notes,
    sections, synopses and page breaks print nothing. Real page counts differ by the
    usual "MORE"/"CONT'D" and widow rules, by up to ~10%.

Other definitions
    - scenes: scenes holding story content (action, cues, dialogue...); a title page,
      a block of notes or a lone "FADE IN:" before the first heading is not a scene.
    - cast: per speaking character (cue uppercased, extensions such as V.O. dropped),
      ``lines`` = dialogue blocks (one per cue) and ``words`` = words of dialogue and
      lyrics under those cues; sorted by lines, then words, then name.
    - dialogue/action ratio: dialogue words / action words (action = action and
      centered text; parentheticals count as neither).
    - mean dialogue line length: words per dialogue block.
    - INT/EXT and day/night: from screenplay headings ("INT. KITCHEN - NIGHT"); a
      script with no such heading (a stage play's "Act I, Scene 2") reports "n/a".
      Times of day map to day (DAY, MORNING, AFTERNOON, NOON, DAWN, SUNRISE), night
      (NIGHT, EVENING, DUSK, SUNSET, MIDNIGHT) or other (CONTINUOUS, LATER, none...).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.chunk import parse_heading
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
)

LINES_PER_PAGE = 55
ACTION_WIDTH = 60
DIALOGUE_WIDTH = 35
NOT_APPLICABLE = "n/a"

_ONE_LINE_KINDS = frozenset({HEADING, CHARACTER, TRANSITION})
_SPEECH_KINDS = frozenset({PARENTHETICAL, DIALOGUE, LYRIC})  # print under a cue, no blank line
_UNPRINTED_KINDS = frozenset({NOTE, SECTION, SYNOPSIS, PAGE_BREAK})
_NARROW_KINDS = frozenset({DIALOGUE, PARENTHETICAL, LYRIC})

_IE = re.compile(r"^\.?\s*(?P<ie>INT\.?\s*/\s*EXT|EXT\.?\s*/\s*INT|I\.?\s*/\s*E|INT|EXT|EST)\b\.?", re.IGNORECASE)
_DAY_WORDS = frozenset({"DAY", "MORNING", "AFTERNOON", "NOON", "DAWN", "SUNRISE", "DAYTIME", "MIDDAY"})
_NIGHT_WORDS = frozenset({"NIGHT", "EVENING", "DUSK", "SUNSET", "MIDNIGHT", "NIGHTTIME", "TWILIGHT"})
_CUE_SUFFIX = re.compile(r"\s*\([^)]*\)\s*$")


@dataclass(frozen=True)
class CastMember:
    name: str
    lines: int  # dialogue blocks
    words: int

    def as_json(self) -> dict:
        return {"name": self.name, "lines": self.lines, "words": self.words}


@dataclass(frozen=True)
class SceneLength:
    index: int
    heading: str
    lines: int  # estimated printed lines
    words: int

    @property
    def pages(self) -> float:
        return self.lines / LINES_PER_PAGE

    @property
    def eighths(self) -> int:
        """Length in eighths of a page, as a schedule counts it (at least 1)."""
        return max(1, round(self.pages * 8))

    def as_json(self) -> dict:
        return {"index": self.index, "heading": self.heading, "lines": self.lines, "words": self.words,
                "pages": round(self.pages, 2), "eighths": self.eighths}


@dataclass(frozen=True)
class StyleReport:
    script_id: str
    title: str
    format: str
    scenes: int
    lines: int  # estimated printed lines
    cast: tuple[CastMember, ...]
    dialogue_words: int
    action_words: int
    dialogue_blocks: int
    int_ext: dict[str, int] | None  # None: no screenplay headings ("n/a")
    day_night: dict[str, int] | None
    longest_scene: SceneLength | None
    scene_lengths: tuple[SceneLength, ...] = field(default=(), repr=False)

    @property
    def pages(self) -> float:
        return round(self.lines / LINES_PER_PAGE, 1)

    @property
    def dialogue_action_ratio(self) -> float | None:
        """Dialogue words per action word; None when there is no action at all."""
        return self.dialogue_words / self.action_words if self.action_words else None

    @property
    def dialogue_share(self) -> float:
        """Dialogue words as a share of dialogue + action words (0..1)."""
        total = self.dialogue_words + self.action_words
        return self.dialogue_words / total if total else 0.0

    @property
    def mean_dialogue_words(self) -> float:
        return self.dialogue_words / self.dialogue_blocks if self.dialogue_blocks else 0.0

    def as_json(self) -> dict:
        ratio = self.dialogue_action_ratio
        return {
            "script_id": self.script_id,
            "title": self.title,
            "format": self.format,
            "scenes": self.scenes,
            "pages": self.pages,
            "lines": self.lines,
            "page_rule": f"{LINES_PER_PAGE} lines a page; action {ACTION_WIDTH} chars, dialogue {DIALOGUE_WIDTH} chars",
            "cast": [member.as_json() for member in self.cast],
            "dialogue_words": self.dialogue_words,
            "action_words": self.action_words,
            "dialogue_action_ratio": round(ratio, 3) if ratio is not None else None,
            "dialogue_share": round(self.dialogue_share, 3),
            "dialogue_blocks": self.dialogue_blocks,
            "mean_dialogue_words": round(self.mean_dialogue_words, 2),
            "int_ext": dict(self.int_ext) if self.int_ext is not None else NOT_APPLICABLE,
            "day_night": dict(self.day_night) if self.day_night is not None else NOT_APPLICABLE,
            "longest_scene": self.longest_scene.as_json() if self.longest_scene else None,
        }

    def as_text(self, *, cast_limit: int = 10) -> str:
        """A short plain-text report for a terminal or a chat message."""
        ratio = self.dialogue_action_ratio
        lines = [
            f"{self.title} ({self.format or 'script'})",
            f"Scenes: {self.scenes}   Pages: ~{self.pages:g} ({self.lines} lines at {LINES_PER_PAGE} a page)",
            f"Dialogue/action: {self.dialogue_words:,} / {self.action_words:,} words"
            + (f" (ratio {ratio:.2f}, dialogue {self.dialogue_share:.0%})" if ratio is not None
               else f" (dialogue {self.dialogue_share:.0%})"),
            f"Mean dialogue line: {self.mean_dialogue_words:.1f} words over {self.dialogue_blocks:,} lines",
            f"INT/EXT: {_split_text(self.int_ext)}",
            f"Day/night: {_split_text(self.day_night)}",
        ]
        if self.longest_scene:
            longest = self.longest_scene
            lines.append(f"Longest scene: #{longest.index + 1} {longest.heading or '(no heading)'} — "
                         f"{longest.eighths}/8 page ({longest.words:,} words)")
        if self.cast:
            lines.append("Cast (lines, words):")
            for member in self.cast[:cast_limit]:
                lines.append(f"  {member.name}: {member.lines} lines, {member.words:,} words")
            if len(self.cast) > cast_limit:
                lines.append(f"  … and {len(self.cast) - cast_limit} more")
        else:
            lines.append("Cast: no dialogue")
        return "\n".join(lines)


def _split_text(split: dict[str, int] | None) -> str:
    if split is None:
        return NOT_APPLICABLE
    return ", ".join(f"{key} {value}" for key, value in split.items())


# -- analysis ------------------------------------------------------------------------


def analyze(script: Script) -> StyleReport:
    """The style report of a parsed script (see the module doc for every definition)."""
    scenes = [scene for scene in script.scenes if _has_content(scene)]
    cast: dict[str, list[int]] = {}  # name -> [lines, words]
    dialogue_words = action_words = blocks = 0
    lengths: list[SceneLength] = []
    for scene in scenes:
        scene_words = 0
        speaker: str | None = None
        for element in scene.elements:
            words = _words(element.text)
            if element.kind == CHARACTER:
                speaker = _cue_name(element)
                cast.setdefault(speaker, [0, 0])[0] += 1
                blocks += 1
            elif element.kind in (DIALOGUE, LYRIC):
                dialogue_words += words
                if speaker is not None:
                    cast[speaker][1] += words
            elif element.kind == PARENTHETICAL:
                pass  # a speech goes on after a parenthetical
            else:
                speaker = None
                if element.kind in (ACTION, CENTERED):
                    action_words += words
            if element.kind not in _UNPRINTED_KINDS:
                scene_words += words
        lengths.append(SceneLength(scene.index, scene.heading, scene_lines(scene), scene_words))
    members = sorted((CastMember(name, n, w) for name, (n, w) in cast.items()),
                     key=lambda m: (-m.lines, -m.words, m.name))
    int_ext, day_night = _heading_splits(scenes)
    return StyleReport(
        script_id=script.script_id,
        title=script.title,
        format=script.format,
        scenes=len(scenes),
        lines=sum(length.lines for length in lengths),
        cast=tuple(members),
        dialogue_words=dialogue_words,
        action_words=action_words,
        dialogue_blocks=blocks,
        int_ext=int_ext,
        day_night=day_night,
        longest_scene=max(lengths, key=lambda length: (length.lines, -length.index)) if lengths else None,
        scene_lengths=tuple(lengths),
    )


def analyze_file(path: str | Path) -> StyleReport:
    """Parse a script file (any supported format) and analyze it; raises ParseError."""
    from retrieval.parse import parse_file

    return analyze(parse_file(path))


def analyze_fountain(text: str, *, name: str = "pasted_text") -> StyleReport:
    """Analyze pasted Fountain text. Raises ValueError when there is nothing that
    reads as a screenplay: no scene heading and no character cue."""
    from retrieval.parse.fountain import parse_fountain

    if not text.strip():
        raise ValueError("the text is empty")
    script = parse_fountain(text, path=f"{name}.fountain")
    kinds = {element.kind for scene in script.scenes for element in scene.elements}
    if not kinds & {HEADING, CHARACTER} and not any(scene.heading for scene in script.scenes):
        raise ValueError("no scene heading (INT./EXT.) and no character cue found: this does not read as a screenplay")
    return analyze(script)


def _has_content(scene: Scene) -> bool:
    # A lone "FADE IN:" before the first heading is furniture, not a scene.
    return any(element.kind in CONTENT_KINDS and element.kind != TRANSITION for element in scene.elements)


def _words(text: str) -> int:
    return len(text.split())


def _cue_name(element: Element) -> str:
    # Parsers put extensions apart; a cue typed as "BOB (V.O.)" in a raw text still groups with BOB.
    name = _CUE_SUFFIX.sub("", element.text.strip()).strip().rstrip("^").strip()
    return (name or element.text.strip()).upper()


# -- page estimate -------------------------------------------------------------------


def scene_lines(scene: Scene) -> int:
    """Estimated printed lines of a scene, under the rule in the module doc."""
    total = 0
    previous: str | None = None
    if scene.heading and not any(element.kind == HEADING for element in scene.elements):
        total, previous = 1, HEADING  # a parser that keeps the heading only on the Scene
    for element in scene.elements:
        if element.kind in _UNPRINTED_KINDS:
            continue
        in_speech = element.kind in _SPEECH_KINDS and previous in (CHARACTER, *_SPEECH_KINDS)
        if previous is not None and not in_speech:
            total += 1  # the blank line between elements
        total += element_lines(element)
        previous = element.kind
    return total


def element_lines(element: Element) -> int:
    if element.kind in _ONE_LINE_KINDS:
        return 1
    width = DIALOGUE_WIDTH if element.kind in _NARROW_KINDS else ACTION_WIDTH
    text = f"({element.text})" if element.kind == PARENTHETICAL else element.text
    return sum(_wrapped(line, width) for line in text.split("\n")) or 1


def _wrapped(line: str, width: int) -> int:
    line = line.strip()
    if not line:
        return 1
    if len(line) <= width:
        return 1
    return len(textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False)) or 1


# -- headings ------------------------------------------------------------------------


def _heading_splits(scenes: list[Scene]) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """(INT/EXT counts, day/night counts), both None when no heading is a screenplay heading."""
    places = {"INT": 0, "EXT": 0, "INT/EXT": 0, "other": 0}
    times = {"day": 0, "night": 0, "other": 0}
    screenplay_headings = 0
    for scene in scenes:
        place = interior_exterior(scene.heading)
        if place:
            screenplay_headings += 1
        places[place or "other"] += 1
        times[time_of_day(scene.heading) if place else "other"] += 1
    if not screenplay_headings:
        return None, None
    return places, times


def interior_exterior(heading: str) -> str:
    """"INT", "EXT", "INT/EXT" or "" (not a screenplay heading). EST. (establishing) is EXT."""
    match = _IE.match(heading.strip())
    if not match:
        return ""
    ie = re.sub(r"[\s.]", "", match.group("ie").upper())
    if "/" in ie:
        return "INT/EXT"
    return "INT" if ie == "INT" else "EXT"


def time_of_day(heading: str) -> str:
    """"day", "night" or "other" for a screenplay heading's time of day."""
    _, time = parse_heading(heading)
    words = set(re.findall(r"[A-Z]+", time.upper()))
    if words & _NIGHT_WORDS:
        return "night"
    if words & _DAY_WORDS:
        return "day"
    return "other"


__all__ = [
    "StyleReport", "CastMember", "SceneLength", "analyze", "analyze_file", "analyze_fountain", "scene_lines",
    "element_lines", "interior_exterior", "time_of_day", "LINES_PER_PAGE", "ACTION_WIDTH", "DIALOGUE_WIDTH",
    "NOT_APPLICABLE",
]

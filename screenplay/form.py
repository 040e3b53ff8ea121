"""Model output -> Fountain: normalize, validate against our parser, repair.

A 135M model writes screenplay form only some of the time: `NAME: line`, quoted prose
speech, markdown and misspelt names are common. This module turns what can be turned
into Fountain without inventing anything, and says in words what is still wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.document import CHARACTER, DIALOGUE, HEADING, PARENTHETICAL
from retrieval.parse.fountain import parse_elements
from screenplay.vocabulary import screenplay_words

# -- scene headings derived from a situation ----------------------------------------

_PLACE_PREPOSITION = re.compile(
    r"\b(?:in|at|on|inside|outside|aboard|near|under|by|onto|into|from|behind|atop)\s+"
    r"(?:(?:the|a|an|her|his|their|our|my|its|some)\s+)?(?P<place>[a-z][a-z'-]*(?:\s+[a-z][a-z'-]*){0,3})",
    re.IGNORECASE,
)
# The word lists are data: config/screenplay_words.toml says where each comes from.
_HEADING_WORDS = screenplay_words().heading
_PHRASE_STOP = _HEADING_WORDS.phrase_stop  # words that end a place phrase ("in a bar while ..." -> "BAR")
_TIME_WORDS = _HEADING_WORDS.time_words
_NOT_PLACES = _HEADING_WORDS.not_places
_NOT_MODIFIERS = _HEADING_WORDS.not_modifiers
_ROLE_PLACES = _HEADING_WORDS.role_places  # who is in a scene often says where it is
_OUTDOOR = _HEADING_WORDS.outdoor
_PLACE_NOUNS = _HEADING_WORDS.places  # outdoor ones included; a situation may name one without a preposition


def derive_heading(situation: str) -> str | None:
    """'a detective corners her partner in a rainy alley at night' -> 'EXT. RAINY ALLEY - NIGHT'.

    None when the situation names no recognisable place: a made-up heading would be
    worse than the model's own.
    """
    place = _place_phrase(situation)
    if not place:
        return None
    words = place.lower().split()
    prefix = "EXT." if any(word in _OUTDOOR for word in words) else "INT."
    return f"{prefix} {place.upper()} - {time_of_day(situation)}"


def time_of_day(situation: str) -> str:
    for word in re.findall(r"[a-z]+", situation.lower()):
        if word in _TIME_WORDS:
            return _TIME_WORDS[word]
    return "DAY"


def _place_phrase(situation: str) -> str:
    for match in _PLACE_PREPOSITION.finditer(situation):
        words: list[str] = []
        for word in match.group("place").split():
            if word.lower() in _PHRASE_STOP:
                break
            words.append(word)
        while words and words[-1].lower() not in _PLACE_NOUNS and len(words) > 1:
            words.pop()  # "in a bakery kitchen downtown" -> "bakery kitchen"
        if words and words[-1].lower() in _PLACE_NOUNS and words[0].lower() not in _NOT_PLACES:
            return " ".join(words)
    tokens = re.findall(r"[A-Za-z'-]+", situation)
    for index, token in enumerate(tokens):
        if token.lower() in _PLACE_NOUNS:
            start = index
            # keep a modifier only in "the family farm" form: after a verb it is usually no modifier
            if index > 1 and tokens[index - 2].lower() in ("the", "a", "an", "his", "her", "their") and \
                    tokens[index - 1].lower() not in _PHRASE_STOP | _NOT_MODIFIERS:
                start = index - 1
            return " ".join(tokens[start:index + 1])
    for token in tokens:
        place = _ROLE_PLACES.get(token.lower().rstrip("s"))
        if place:
            return place
    return ""


# -- normalizing -----------------------------------------------------------------------

HEADING_LINE = re.compile(r"^(?:INT\.?/EXT|EXT\.?/INT|I\.?/E|INT|EXT|EST)[.\s]", re.IGNORECASE)
_SPEECH_WORDS = screenplay_words().speech
# Cue extensions that belong on the cue line; anything else in parentheses is acting direction.
_CUE_EXTENSIONS = _SPEECH_WORDS.cue_extensions
_NAME = r"[A-Za-z][A-Za-z.'’-]*(?:\s+[A-Za-z][A-Za-z.'’-]*){0,2}"
# `NAME: line`, `NAME (whispering): line`, `**NAME**: line`, and a lone `NAME:`.
_NAME_COLON = re.compile(rf"^(?P<name>{_NAME})\s*(?:\((?P<paren>[^)]{{1,40}})\))?\s*:\s*(?P<line>.*)$")
_CUE_LINE = re.compile(rf"^(?P<name>{_NAME})\s*(?:\((?P<paren>[^)]{{1,40}})\))?$")
_LEADING_PAREN = re.compile(r"^\((?P<paren>[^)]{1,60})\)\s*(?P<rest>\S.*)$")
# Lines that echo the prompt rather than tell the story.
_ECHO = re.compile(r"^(?:scene|characters?|tone|setting|title|situation)\s*:", re.IGNORECASE)
_SPEECH_VERBS = "|".join([*map(re.escape, _SPEECH_WORDS.speech_verbs),  # "said", and "told him"
                          *(rf"{re.escape(verb)}\s+\w+" for verb in _SPEECH_WORDS.speech_verbs_with_object)])
_QUOTE = r"[\"“”]"
_QUOTED = rf"{_QUOTE}(?P<speech>[^\"“”]+?){_QUOTE}"
# "Line," Maya said.   /   "Line," said Maya.   /   Maya said, "Line."   /   Maya: "Line"
_QUOTE_THEN_NAME = re.compile(rf"^{_QUOTED}\s*,?\s*(?P<name>{_NAME})\s+(?:{_SPEECH_VERBS})\b[^\"“”]*$")
_QUOTE_THEN_VERB = re.compile(rf"^{_QUOTED}\s*,?\s*(?:{_SPEECH_VERBS})\s+(?P<name>{_NAME})\s*[.!?]?$")
_NAME_THEN_QUOTE = re.compile(rf"^(?P<name>{_NAME})\s+(?:{_SPEECH_VERBS})\s*,?\s*:?\s*{_QUOTED}\s*$")
_TERMINAL = ".!?\"')”’—-:…*"
_NOT_NAMES = _SPEECH_WORDS.not_names  # first words before a colon that name no speaker


def normalize_fountain(text: str, *, characters: tuple[str, ...] = (), situation: str = "",
                       truncated: bool | None = None) -> str:
    """Model output -> Fountain, inventing nothing.

    ``characters`` are the requested names (their mixed-case cues and quoted speech are
    recognised); ``situation`` gives a heading when the model wrote none; ``truncated``
    says the token limit cut the text (None: guess from the last line's punctuation).
    """
    lines = _strip_markdown(text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line for line in lines if not _ECHO.match(line.strip())]
    if truncated is not False:
        lines = _drop_cut_off_tail(lines, certain=bool(truncated))
    blocks = _to_blocks(lines, {name.upper() for name in characters})
    blocks = _ensure_heading(blocks, situation)
    return _render(blocks)


def _strip_markdown(text: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```") or re.fullmatch(r"[-*_=]{3,}", stripped):
            continue  # code fences and horizontal rules
        stripped = re.sub(r"^#{1,6}\s*", "", stripped)  # markdown headings ('#' is a Fountain section)
        stripped = re.sub(r"^(?:[-*+]|\d+[.)])\s+(?=\S)", "", stripped)  # list bullets
        stripped = re.sub(r"(\*\*|__)(.+?)\1", r"\2", stripped)
        stripped = re.sub(r"(?<![\w*])\*(?!\s)([^*]+?)(?<!\s)\*(?![\w*])", r"\1", stripped)
        out.append(stripped.replace("**", "").strip())
    return out


def _drop_cut_off_tail(lines: list[str], *, certain: bool) -> list[str]:
    """Drop a last line that stops mid-sentence, and a cue left without its speech."""
    lines = _trim_blank_end(lines)
    if len(lines) > 1 and lines[-1] and lines[-1][-1] not in _TERMINAL and not _looks_like_cue(lines[-1]):
        if certain or len(lines[-1].split()) > 1 or not lines[-1][-1].isalnum():
            lines = _trim_blank_end(lines[:-1])
    if len(lines) > 1 and _looks_like_cue(lines[-1]) and not HEADING_LINE.match(lines[-1]):
        lines = _trim_blank_end(lines[:-1])
    return lines


def _trim_blank_end(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return lines[:end]


def _looks_like_cue(line: str) -> bool:
    match = _CUE_LINE.match(line.strip())
    return bool(match) and match.group("name") == match.group("name").upper() and len(line) <= 40


# A block is a list of lines rendered together: ("heading"|"action"|"speech"|"transition", lines).
Block = tuple[str, list[str]]


def _to_blocks(lines: list[str], requested: set[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if HEADING_LINE.match(line):
            blocks.append(("heading", [_heading_case(line)]))
            i += 1
            continue
        if line.upper().endswith("TO:") and line == line.upper() or line.upper() in ("FADE IN:", "FADE OUT.", "FADE OUT"):
            blocks.append(("transition", [line.upper()]))
            i += 1
            continue
        speech = _speech_from_line(line, requested)
        if speech:
            blocks.append(("speech", speech))
            i += 1
            continue
        cue = _standalone_cue(line, requested)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if cue and nxt and not HEADING_LINE.match(nxt) and not _standalone_cue(nxt, requested):
            body, i = _read_speech(lines, i + 1)
            if body:
                blocks.append(("speech", cue + body))
                continue
        blocks.append(("action", [line]))
        i += 1
    return _merge_action(blocks)


def _heading_case(line: str) -> str:
    return line.upper() if line != line.upper() else line


def _speech_from_line(line: str, requested: set[str]) -> list[str] | None:
    """One line holding a whole speech: `NAME: line`, or quoted speech with its speaker named."""
    match = _NAME_COLON.match(line)
    if match and match.group("line").strip() and _is_name(match.group("name"), requested):
        return _cue_and_speech(match.group("name"), match.group("paren"), match.group("line"))
    for pattern in (_QUOTE_THEN_NAME, _QUOTE_THEN_VERB, _NAME_THEN_QUOTE):
        match = pattern.match(line)
        if match and _is_name(match.group("name"), requested, prose=True):
            return _cue_and_speech(match.group("name"), None, match.group("speech"))
    return None


def _cue_and_speech(name: str, paren: str | None, speech: str) -> list[str]:
    cue, out = _cue_text(name, paren)
    speech = speech.strip().strip("\"“”").strip()
    lead = _LEADING_PAREN.match(speech)
    if lead:
        out.append(f"({lead.group('paren').strip()})")
        speech = lead.group("rest")
    speech = re.sub(r",$", ".", speech)
    return [cue, *out, speech] if speech else [cue, *out]


def _cue_text(name: str, paren: str | None) -> tuple[str, list[str]]:
    """('Maya', 'whispering') -> ('MAYA', ['(whispering)']); ('Maya', 'V.O.') -> ('MAYA (V.O.)', [])."""
    cue = " ".join(name.split()).upper().rstrip(".")
    if not paren:
        return cue, []
    if paren.strip().upper() in _CUE_EXTENSIONS:
        return f"{cue} ({paren.strip().upper()})", []
    return cue, [f"({paren.strip()})"]


def _is_name(name: str, requested: set[str], *, prose: bool = False) -> bool:
    """Whether a word or two before a colon (or a speech verb) names a speaker."""
    upper = " ".join(name.split()).upper()
    if upper in requested:
        return True
    words = name.split()
    if words[0].lower() in _NOT_NAMES or len(words) > 3:
        return False
    if prose:  # in prose only a capitalised name that is not the sentence's pronoun
        return all(word[0].isupper() for word in words)
    return all(word[0].isupper() for word in words if word.lower() not in ("of", "the"))


def _standalone_cue(line: str, requested: set[str]) -> list[str] | None:
    """A line that is only a speaker: 'MAYA', 'Maya', 'MAYA (whispering)', 'Maya:'."""
    candidate = line[:-1].strip() if line.endswith(":") else line
    match = _CUE_LINE.match(candidate)
    if not match or len(candidate) > 40:
        return None
    name = match.group("name")
    upper = " ".join(name.split()).upper()
    uppercase = name == name.upper() and any(c.isalpha() for c in name)
    if upper in requested or (uppercase and upper.lower().split()[0] not in _NOT_NAMES) or (
        line.endswith(":") and _is_name(name, requested)
    ):
        cue, paren = _cue_text(name, match.group("paren"))
        return [cue, *paren]
    return None


def _read_speech(lines: list[str], i: int) -> tuple[list[str], int]:
    """Parentheticals and dialogue after a cue, to the next blank line, cue or heading."""
    body: list[str] = []
    while i < len(lines) and lines[i]:
        line = lines[i]
        if HEADING_LINE.match(line) or (body and _looks_like_cue(line)):
            break
        lead = _LEADING_PAREN.match(line)
        if line.startswith("(") and line.endswith(")"):
            body.append(f"({line[1:-1].strip()})")
        elif lead:
            body += [f"({lead.group('paren').strip()})", _unquote(lead.group("rest"))]
        else:
            body.append(_unquote(line))
        i += 1
    if body and all(line.startswith("(") for line in body):
        return [], i - len(body)  # a cue with only a parenthetical has no speech: leave it as action
    return body, i


def _unquote(line: str) -> str:
    """'"Get out."' -> 'Get out.': a whole line in one pair of quotes is speech already under its cue."""
    if len(line) > 2 and line[0] in "\"“" and line[-1] in "\"”" and not re.search(r"[\"“”]", line[1:-1]):
        return line[1:-1].strip()
    return line


def _merge_action(blocks: list[Block]) -> list[Block]:
    merged: list[Block] = []
    for kind, lines in blocks:
        if kind == "action" and merged and merged[-1][0] == "action":
            merged[-1][1].extend(lines)
        else:
            merged.append((kind, list(lines)))
    return merged


def _ensure_heading(blocks: list[Block], situation: str) -> list[Block]:
    if any(kind == "heading" for kind, _ in blocks):
        return blocks
    heading = derive_heading(situation) if situation else None
    return [("heading", [heading]), *blocks] if heading else blocks


def _render(blocks: list[Block]) -> str:
    return "\n\n".join("\n".join(_forced_action(lines) if kind == "action" else lines)
                       for kind, lines in blocks).strip()


def _forced_action(lines: list[str]) -> list[str]:
    """A shouted sentence opening a paragraph would parse as a cue; Fountain's '!' keeps it action."""
    first = lines[0]
    if len(lines) > 1 and not first.startswith("!") and first == first.upper() and any(c.isalpha() for c in first) and (
        len(first.split()) > 4 or re.search(r"\d| - ", first)
    ):
        return [f"!{first}", *lines[1:]]
    return lines


# -- validating ------------------------------------------------------------------------

MIN_DIALOGUE_BLOCKS = 2


@dataclass(frozen=True)
class ValidationReport:
    """What our Fountain parser makes of a scene, and what keeps it from being usable."""

    valid: bool
    problems: tuple[str, ...]
    headings: int
    dialogue_blocks: int
    cues: tuple[str, ...]  # distinct speaker names, in order of first appearance
    missing_characters: tuple[str, ...]

    @property
    def score(self) -> tuple:
        """Higher is better: valid first, then fewer problems, more requested voices, more dialogue."""
        return (self.valid, -len(self.problems), -len(self.missing_characters), min(self.dialogue_blocks, 12))

    def as_json(self) -> dict:
        return {"valid": self.valid, "problems": list(self.problems), "headings": self.headings,
                "dialogue_blocks": self.dialogue_blocks, "cues": list(self.cues),
                "missing_characters": list(self.missing_characters)}


def validate_fountain(text: str, characters: tuple[str, ...] = ()) -> ValidationReport:
    """Valid: a scene heading, two or more cue+dialogue blocks, uppercase cues, every requested speaker."""
    elements = parse_elements(text)
    headings = sum(1 for el in elements if el.kind == HEADING)
    blocks, cues, lowercase = 0, [], []
    for index, el in enumerate(elements):
        if el.kind != CHARACTER:
            continue
        if el.text != el.text.upper():
            lowercase.append(el.text)
        if el.text not in cues:
            cues.append(el.text)
        following = elements[index + 1:index + 3]  # dialogue may follow a parenthetical
        if any(f.kind == DIALOGUE for f in following if f.kind in (DIALOGUE, PARENTHETICAL)) and \
                _speech_follows(elements, index):
            blocks += 1
    missing = tuple(name for name in characters if name.upper() not in {cue.upper() for cue in cues})
    problems = []
    if not headings:
        problems.append("no scene heading (INT./EXT. PLACE - TIME)")
    if blocks < MIN_DIALOGUE_BLOCKS:
        problems.append(f"{blocks} line(s) of dialogue under a character cue; at least {MIN_DIALOGUE_BLOCKS} needed")
    if lowercase:
        problems.append("cue(s) not in capitals: " + ", ".join(lowercase))
    if missing:
        problems.append("requested character(s) never speak: " + ", ".join(missing))
    return ValidationReport(not problems, tuple(problems), headings, blocks, tuple(cues), missing)


def _speech_follows(elements: list, index: int) -> bool:
    for el in elements[index + 1:]:
        if el.kind == DIALOGUE:
            return True
        if el.kind != PARENTHETICAL:
            return False
    return False


# -- repairing -------------------------------------------------------------------------


def repair_names(text: str, characters: tuple[str, ...]) -> tuple[str, list[str]]:
    """Map near-miss cues to the requested names ('MAYAH' -> 'MAYA', 'DETECTIVE MAYA' -> 'MAYA').

    Only cue lines change, and only when one requested name is clearly meant and does not
    already speak under that spelling; no line of dialogue is written. Returns the text
    and the changes in words.
    """
    if not characters:
        return text, []
    requested = [name.upper() for name in characters]
    elements = parse_elements(text)
    mapping: dict[str, str] = {}
    for cue in dict.fromkeys(el.text.upper() for el in elements if el.kind == CHARACTER):
        if cue in requested:
            continue
        target = _meant_name(cue, requested)
        if target:  # a misspelling of a voice already speaking is still that voice
            mapping[cue] = target
    if not mapping:
        return text, []
    lines = text.split("\n")
    for number, line in enumerate(lines):
        match = _CUE_LINE.match(line.strip())
        if match and match.group("name").upper() in mapping and (number == 0 or not lines[number - 1].strip()):
            name = match.group("name")
            lines[number] = line.replace(name, mapping[name.upper()], 1)
    return "\n".join(lines), [f"cue {old} -> {new}" for old, new in mapping.items()]


def _meant_name(cue: str, requested: list[str]) -> str | None:
    titled = [name for name in requested if _is_title_form(cue, name)]
    if len(titled) == 1:
        return titled[0]
    scored = sorted((edit_distance(cue, name), name) for name in requested)
    best_distance, best = scored[0]
    allowed = 1 if len(best) <= 4 else 2
    if best_distance > allowed or best_distance >= len(best):
        return None
    if len(scored) > 1 and scored[1][0] == best_distance:
        return None  # as close to two requested names: not clear which was meant
    return best


def _is_title_form(cue: str, name: str) -> bool:
    """'DETECTIVE MAYA', 'MAYA COLE' or 'MR. IVES' for 'IVES' (and 'IVES' for 'MR. IVES')."""
    cue_words, name_words = cue.replace(".", ". ").split(), name.replace(".", ". ").split()
    return len(cue_words) != len(name_words) and (
        set(name_words) <= set(cue_words) or set(cue_words) <= set(name_words)
    ) and any(len(word) >= 3 for word in set(cue_words) & set(name_words))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]

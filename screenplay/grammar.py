"""The shape of a scene as a grammar the backend decodes under, and the scene read back from it.

    shape = SceneShape.for_request(request, heading="INT. LIGHTHOUSE - NIGHT")
    fields = shape.request_fields(guard)        # structured_outputs + degeneration_guard
    scene = parse_scene(prefill + completion)   # heading, then blocks: cue, (paren), line, action
    text = render_fountain(scene)

Why a grammar: a 135M model asked for screenplay form writes it some of the time; decoded
under this grammar it cannot write anything else. Every cue is a requested character (or,
when fewer than two were asked for, a name-like word that is no sentence in capitals), each
cue is followed by one line of dialogue that holds lower-case letters and ends like a
sentence, every requested character speaks in the first round, and the scene has at least
``min_blocks`` speeches before it may end. What a grammar cannot say (no line twice, no
speaker's endless run, a line's length in tokens) rides along as ``degeneration_guard``,
which our backend applies and vLLM ignores; the strict judge (screenplay/judge.py) still
checks the result, so a server that ignores both is caught there.

Why Lark: it is the grammar syntax of llguidance, which our backend uses, and of vLLM's
"guidance" structured-output backend (vLLM also turns simple Lark into EBNF for xgrammar),
so the same request is constrained on both servers. Every line is one terminal: llguidance
lexes greedily, and a separator split into its own terminal ("PLACE" then " - ") would
be eaten by the terminal before it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from screenplay.prompting import DialogueRequest

# Times a heading may end in when the grammar writes it (the situation's own time is
# used when the heading is derived, screenplay.form.time_of_day).
HEADING_TIMES = ("DAY", "NIGHT", "MORNING", "EVENING", "DAWN", "DUSK", "LATER", "CONTINUOUS")
MIN_BLOCKS = 4  # speeches before the scene may end: the judge's lower bound
MAX_BLOCKS = 12  # speeches after which it must: a 135M model rarely ends a scene by itself
MAX_SPEAKER_RUN = 2  # the judge fails four in a row; two already reads oddly
# A line's length is the guard's (in tokens), not the grammar's: a counted repeat inside a
# terminal that is also intersected ("&") blows up llguidance's lexer ("LexerTooComplex").
MAX_LINE_TOKENS = 48  # about 200 characters in SmolLM2's tokens: a line longer than that is cut to an end


# Starts like speech, holds a lower-case letter within its first words (a whole line in
# capitals is shouting, and a line of capitals and dots could never end), ends like a sentence.
_LINE = "[A-Z\"'…¿¡][^\\n]{0,11}[a-z][^\\n]*[.!?…\"'-]"
# An action line opens on a capitalised word ("She", "Rain"), on "A"/"An"/"The" and a character
# introduced in capitals ("A BARMAN"), or on a requested character's name ("MAYA turns"): a made-up
# name in capitals opening a line is how SmolLM2 smuggles in speakers nobody asked for.
_ACTION_WORD_OPENING = "[A-Z][a-z'’]+ |(A|An|The) [A-Z][A-Z'’]+ "


_SMALL_PLACE_WORDS = ("A", "AN", "THE", "OF", "AND", "OR", "TO", "IN", "ON", "AT", "BY", "FOR", "WITH", "FROM")


def _literal(text: str) -> str:
    """A Lark string literal (JSON's escapes are Lark's)."""
    return json.dumps(text)


_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$#&~-])")


def _regex_escape(text: str) -> str:
    """Escape for llguidance's (Rust) regex syntax; Python's re.escape also escapes spaces,
    which Rust's regex refuses."""
    return _REGEX_SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True)
class SceneShape:
    """What the grammar allows for one request."""

    requested: tuple[str, ...]  # upper-case names, in the writer's order
    write_heading: bool  # False: the heading is prefilled and the grammar starts after it
    not_name_words: frozenset[str] = frozenset()  # words no invented cue may hold
    sentence_words: frozenset[str] = frozenset()  # words that make a heading's place a sentence
    min_blocks: int = MIN_BLOCKS
    max_blocks: int = MAX_BLOCKS

    @classmethod
    def for_request(cls, request: DialogueRequest, *, heading: str | None,
                    not_name_words: frozenset[str] = frozenset(), sentence_words: frozenset[str] = frozenset(),
                    min_blocks: int = MIN_BLOCKS, max_blocks: int = MAX_BLOCKS) -> SceneShape:
        return cls(tuple(name.upper() for name in request.characters), heading is None, not_name_words,
                   sentence_words, min_blocks, max(max_blocks, min_blocks))

    @property
    def invents_speakers(self) -> bool:
        """Fewer than two requested voices: the model names the others (a scene is a conversation)."""
        return len(self.requested) < 2

    def lark(self) -> str:
        rules = [f"start: {'heading ' if self.write_heading else ''}action? {self._blocks()}"]
        if self.write_heading:
            rules += self._heading_rules()
        for index, name in enumerate(self.requested):
            rules.append(f'block_{index}: {_literal(name)} "\\n" body')
        rules += ["block_any: CUE \"\\n\" body", f"CUE: {self._cue_terminal()}",
                  # Action opens the scene and nowhere else: between speeches SmolLM2 used it as a
                  # third voice ("Marao said, what will you do?", "DELIA iz. *laugh*").
                  'body: paren? LINE "\\n\\n"',
                  'paren: PAREN "\\n"',
                  r"PAREN: /\([a-z][a-z ,'’-]{1,30}\)/",
                  f"LINE: /{_LINE}/",
                  'action: ACTION "\\n\\n"',
                  # A sentence about what happens, opening on a word or a NAME and a verb: not
                  # "NAME: speech", "NAME (to X) speech", quoted speech or a list of names in capitals.
                  f"ACTION: /({self._action_opening()})[a-z][^\\n:\"“”()]*[.!?]/"]
        return "\n".join(rules) + "\n"

    def _blocks(self) -> str:
        """The first round in the writer's order (everyone asked for speaks), then free speeches
        until ``min_blocks``, then as many more as the model wants."""
        first_round = [f"block_{index}" for index in range(len(self.requested))]
        if self.invents_speakers:
            first_round += ["block_any"] * (2 - len(first_round))
        more = max(self.min_blocks - len(first_round), 0)
        optional = max(self.max_blocks - len(first_round) - more, 0)
        return " ".join([*first_round, *["block_any"] * more, f"block_any{{0,{optional}}}"])

    def _action_opening(self) -> str:
        names = "|".join(f"{_regex_escape(name)} " for name in self._name_words())  # "MARSH" for DEPUTY MARSH
        return f"{_ACTION_WORD_OPENING}|{names}" if names else _ACTION_WORD_OPENING

    def _heading_rules(self) -> list[str]:
        """A heading word by word, each word its own terminal carrying the space before it (so no
        terminal ever has to give a space back to the next: llguidance lexes without
        backtracking), each ruling out words a place never holds. One terminal for the whole
        heading with these exclusions intersected in is too much for llguidance's lexer
        ("LexerTooComplex" at "EXT. DAYL")."""
        times = "|".join(HEADING_TIMES)
        # Never in a place: a time of day ("EXT. NIGHT - DAY"), a word that makes it a sentence
        # ("CHURTLAND IS DEAD"), a requested character's name ("INT. RHEA - DAY").
        never = sorted({*HEADING_TIMES, *(word.upper() for word in self.sentence_words), *self._name_words()}
                       - set(_SMALL_PLACE_WORDS))
        word = "[A-Z][A-Z'’]{1,14}"  # no hyphen chains ("LAST-FAMILY-ESTIMATED-THE-...")
        excluded = "|".join(map(_regex_escape, never))
        small = "|".join(_SMALL_PLACE_WORDS)
        joining = "|".join(_SMALL_PLACE_WORDS[3:])  # "THE PIER" is a place; "OF THE PIER" is not
        return [
            'heading: SETTING place " - " TIME "\\n\\n"',
            'SETTING: "INT." | "EXT."',
            # First word, middle words (small ones allowed: "HOUSE OF COMMONS"), last word.
            "place: PLACE_ONLY | PLACE_FIRST PLACE_MIDDLE~0..2 PLACE_LAST",
            f"PLACE_ONLY: / {word}/ & ~/ ({excluded}|{small})/",
            f"PLACE_FIRST: / {word}/ & ~/ ({excluded}|{joining})/",
            f"PLACE_MIDDLE: / {word}/ & ~/ ({excluded})/",
            f"PLACE_LAST: / {word}/ & ~/ ({excluded}|{small})/",
            f"TIME: {' | '.join(_literal(time) for time in HEADING_TIMES)}",
        ]

    def _name_words(self) -> list[str]:
        """Each requested name, and each of its words ("DEPUTY MARSH" and "MARSH")."""
        words = {*self.requested, *(word for name in self.requested for word in name.split() if len(word) > 2)}
        return sorted(words, key=lambda word: (-len(word), word))

    def _cue_terminal(self) -> str:
        names = [_literal(name) for name in self.requested]
        if not self.invents_speakers:
            return " | ".join(names)
        word = "[A-Z][A-Z'’.-]+"
        invented = f"/{word}( {word})?/"
        if self.not_name_words:  # a cue is a name, never a sentence in capitals
            banned = "|".join(map(_regex_escape, sorted({word.upper() for word in self.not_name_words})))
            invented = f"({invented} & ~/(.* )?({banned})( .*)?/)"
        return " | ".join([*names, invented])

    def request_fields(self, guard: dict | None = None) -> dict:
        """The chat-completions fields that ask for this shape: vLLM's structured_outputs
        grammar, and our backend's degeneration guard."""
        fields: dict = {"structured_outputs": {"grammar": self.lark()}}
        if guard is not None:
            fields["degeneration_guard"] = guard
        return fields

    def guard(self, *, max_speaker_run: int = MAX_SPEAKER_RUN, max_line_tokens: int = MAX_LINE_TOKENS) -> dict:
        """No line twice (cues excepted), no stutter within a line, no speaker's run past
        ``max_speaker_run``, no line past ``max_line_tokens``."""
        return {"speakers": list(self.requested), "max_speaker_run": max_speaker_run,
                "no_repeated_lines": True, "no_phrase_loops": True, "max_line_tokens": max_line_tokens}


# -- naming the characters a request leaves to the model -----------------------------------

CAST_PREFILL = "Characters:"


def cast_grammar(count: int, *, taken: Sequence[str] = (), not_name_words: frozenset[str] = frozenset()) -> str:
    """Lark for `` Name`` or `` Name, Name``: the characters a scene with fewer than two requested
    ones will have, chosen by the model before the scene (so the scene's grammar can name its
    cues, and the judge can hold it to them). A name is one capitalised word that is no common
    English word and none of ``taken``."""
    banned = {word.capitalize() for word in not_name_words} | {name.capitalize() for name in taken}
    name = "/[A-Z][a-z]{2,11}/"
    if banned:
        name = f"({name} & ~/({'|'.join(map(_regex_escape, sorted(banned)))})/)"
    names = ' ", " '.join(["NAME"] * count)
    return f'start: " " {names}\nNAME: {name}\n'


def names_from_cast(text: str) -> tuple[str, ...]:
    """' Leo, Marta' -> ('LEO', 'MARTA')."""
    return tuple(dict.fromkeys(name.strip().upper() for name in text.split(",") if name.strip().isalpha()))


# -- the scene as structure ---------------------------------------------------------------


@dataclass(frozen=True)
class Speech:
    character: str
    line: str
    parenthetical: str | None = None
    action_after: str | None = None


@dataclass(frozen=True)
class Scene:
    heading: str | None
    opening_action: str | None = None
    speeches: tuple[Speech, ...] = field(default_factory=tuple)


_PAREN = re.compile(r"^\([^)]*\)$")


def parse_scene(text: str) -> Scene | None:
    """Text in the grammar's shape -> its structure; None when it is not in that shape (a server
    that ignored the grammar), for the caller to fall back on normalizing prose."""
    paragraphs = [paragraph.split("\n") for paragraph in re.split(r"\n{2,}", text.strip()) if paragraph.strip()]
    if not paragraphs:
        return None
    heading = None
    if re.match(r"^(INT|EXT)\. ", paragraphs[0][0]) and len(paragraphs[0]) == 1:
        heading = paragraphs.pop(0)[0]
    opening = None
    if paragraphs and len(paragraphs[0]) == 1 and not _is_cue_paragraph(paragraphs[0]):
        opening = paragraphs.pop(0)[0]
    speeches: list[Speech] = []
    for lines in paragraphs:
        if _is_cue_paragraph(lines):
            paren = lines[1] if len(lines) == 3 else None
            speeches.append(Speech(lines[0], lines[-1], paren))
        elif len(lines) == 1 and speeches and speeches[-1].action_after is None:
            speeches[-1] = Speech(speeches[-1].character, speeches[-1].line, speeches[-1].parenthetical, lines[0])
        else:
            return None
    return Scene(heading, opening, tuple(speeches))


def _is_cue_paragraph(lines: Sequence[str]) -> bool:
    if len(lines) not in (2, 3) or lines[0] != lines[0].upper() or not any(c.isalpha() for c in lines[0]):
        return False
    return len(lines) == 2 or bool(_PAREN.match(lines[1]))


def render_fountain(scene: Scene) -> str:
    """The structure as Fountain: heading, action, and CUE / (parenthetical) / line blocks."""
    paragraphs = [scene.heading] if scene.heading else []
    if scene.opening_action:
        paragraphs.append(scene.opening_action)
    for speech in scene.speeches:
        paragraphs.append("\n".join([speech.character, *([speech.parenthetical] if speech.parenthetical else []),
                                     speech.line]))
        if speech.action_after:
            paragraphs.append(speech.action_after)
    return "\n\n".join(paragraphs)

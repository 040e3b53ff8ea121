"""Where a play scene plays: its stage set read as a Fountain scene heading.

    place = scene_place("ACT I, Scene 2", "A room in the Pendleton house. Evening.", cast)
    place.heading("EVENING", "ACT I, Scene 2")  # -> "INT. PENDLETON HOUSE - EVENING"
    place.phrase                                # -> "in a room in the Pendleton house"

A play scene's opening stage direction nearly always starts with its set, in a few set
forms ("A room in X", "The garden of X", "Bianca's castle", "Boston"); the rest of it is
business. screenplay.form.derive_heading reads places from chat requests and is used
where it fits, but it guesses from roles too ("the King" -> a throne room), which in a
cast list ("King, Arsaces, Vardanes.") is wrong, so its guesses are only taken when the
direction names the place itself. A screenplay scene keeps its own heading.

Also here: the sentence splitting that cutting directions and speeches needs as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from screenplay.form import HEADING_LINE, derive_heading
from screenplay.vocabulary import screenplay_words

__all__ = ["Place", "scene_place", "title_place", "cast_words", "strip_scene_word", "clip", "sentences"]


@dataclass(frozen=True)
class Place:
    name: str  # upper case, as in the heading: "PENDLETON HOUSE"
    phrase: str  # where, as a writer would say it: "in the Pendleton house"
    prefix: str  # "INT." or "EXT."

    def heading(self, time: str, scene_heading: str = "") -> str:
        if HEADING_LINE.match(scene_heading):  # a screenplay scene keeps its own heading
            return " ".join(re.sub(r"#[^#]*#\s*$", "", scene_heading).upper().split())
        return f"{self.prefix} {self.name} - {time}"


# The stage words are data: config/screenplay_words.toml, [stage], says where they come from.
_STAGE_WORDS = screenplay_words().stage
_STAGE_OUTDOOR = _STAGE_WORDS.outdoor  # set words derive_heading does not know as places, outdoors
_STAGE_PLACES = _STAGE_WORDS.places  # all of them, the outdoor ones included
# A set's first words may name a spot within a bigger place: "A room in the Pendleton
# house" plays in the house.
_GENERIC_SPOTS = _STAGE_WORDS.generic_spots
# Syntax the code indexes into ("of" first: _CONNECTORS[1:] are the prepositions), not vocabulary.
_CONNECTORS = ("of", "in", "at", "on", "near", "before", "outside", "inside", "within", "behind")
# Words that end the name of a set: what follows describes it ("A garden set with statuary").
_SET_ENDS = _STAGE_WORDS.set_ends
# Not a set: stage machinery, "The same", times and dates.
_NOT_SETS = _STAGE_WORDS.not_sets
_ARTICLES = ("a", "an", "the")


def scene_place(scene_heading: str, opening: str, cast: frozenset[str]) -> Place | None:
    """Where a scene plays, from its heading or opening stage direction (None when
    nothing says; the caller then keeps the last scene's place).

    The set is the direction's first sentence, or the second when the first is only a
    town ("Rimini. A Hall in the Castle.") or "The Same". ``cast``: words of the
    speakers' names (``cast_words``), so that a list of who is on stage is no set.
    """
    if HEADING_LINE.match(scene_heading):
        # "EXT. PARK - DAY", "EXT. PARK--DAY": the place is before the time
        name = re.split(r"\s*--+\s*|\s+[-–—]\s+", re.sub(r"^\S+\s+", "", scene_heading))[0].strip(" .-")
        return Place(name.upper(), _heading_phrase(name), scene_heading.split()[0].upper())
    found = sentences(strip_scene_word(opening), 2) if opening else []
    first = _set_place(found[0], cast, proper=True) if found else None
    if len(found) > 1 and (first is None or not first[1]):
        second = _set_place(found[1], cast, proper=False)
        if second:
            return second[0]
    if first:
        return first[0]
    for sentence in found:
        derived = derive_heading(sentence)
        name = derived.split(" ", 1)[1].rsplit(" - ", 1)[0] if derived else ""
        words = set(name.lower().split())
        if name and re.search(rf"\b{re.escape(name)}\b", sentence, re.IGNORECASE) and not words & (_NOT_SETS | cast):
            return Place(name, f"in the {name.lower()}", derived.split()[0])
    return None


def title_place(title: str) -> Place:
    """The last resort, for a play whose directions never name a set: the title as a
    neutral place ("The Patriot Chief" -> INT. PATRIOT CHIEF)."""
    bare = re.sub(r"^(?:the|a|an)\s+", "", title, flags=re.IGNORECASE)
    name = " ".join(re.sub(r"[^\w'’ -]", " ", bare).upper().split()[:5]).strip(" -'’") or "ROOM"
    return Place(name, f"in a scene from {title}", "INT.")


def cast_words(speakers: Iterable[str]) -> frozenset[str]:
    """Words of the speakers' names: a direction made of them lists who is on stage.
    Titles, articles and place words are left out ("HOST OF THE INN" keeps the inn a place)."""
    words = {re.sub(r"['’]s?$", "", w.lower()) for speaker in speakers for w in speaker.split()}
    return frozenset(w for w in words if len(w) > 2 and w not in _ARTICLES + _CONNECTORS and not _is_place_word(w)
                     and w.rstrip(".") not in _ABBREVIATIONS)


def strip_scene_word(text: str) -> str:
    """'SCENE. — The Temple.' / 'Scene: a wood' / '(Enter Tom.)' -> the direction itself."""
    text = re.sub(r"^(?:the\s+)?scene(?:\s+(?:is|shows|changes\s+to|represents))?\b[\s.:,—–-]*", "", text.strip(),
                  flags=re.IGNORECASE)
    # A scene's number before its set ("I. The PALACE.") is no word of the place: the strict
    # judge found 11 headings "INT. I THE PALACE - DAY" in the training data.
    text = re.sub(r"^[IVXL]{1,6}\.\s+(?=[A-Z])", "", text)
    return text.lstrip(" .,;:—–-([\"").rstrip(" ,;:—–-([])\"")


# --- reading a set -------------------------------------------------------------------------


def _heading_phrase(name: str) -> str:
    """A screenplay heading's place as a writer says it: 'in the park', 'in Gettysburg',
    "in Margaret's house"."""
    words = name.split()
    if not words:
        return ""
    if re.search(r"['’]S?$", words[0], re.IGNORECASE) or not _is_place_word(words[-1]):
        return "in " + " ".join(
            w.capitalize() if i == 0 or not (_is_place_word(w) or w.lower() in _ARTICLES + _CONNECTORS) else w.lower()
            for i, w in enumerate(words))
    return f"in the {name.lower()}"


def _set_place(sentence: str, cast: frozenset[str], *, proper: bool) -> tuple[Place, bool] | None:
    """The set a stage direction opens with, and whether a word for a place names it (not
    only a proper name, "Boston"); None when it opens with something else: who is on
    stage, a time, business. ``proper``: accept a set named by a proper name alone."""
    words = _set_words(sentence)
    prep = "in"
    if words and words[0].lower() in _CONNECTORS[1:]:
        prep, words = words[0].lower(), words[1:]
        if words[:1] and (words[0].lower() == "of" or prep == "in" and words[0].lower() == "front"):
            words = words[2:] if words[0].lower() == "front" else words[1:]  # "in front of", "outside of"
            prep = "outside" if prep == "outside" else "before"
    name = _set_name(words) if words else ""
    if not name or len(name.split()) > 7:
        return None
    spot = name.rsplit(" - ", 1)[-1]
    placey = _is_place_word(re.split(r"\s+OF\s+", spot)[0].split()[-1])
    named = {re.sub(r"['’]s?$", "", w.lower()) for w in words}
    if named & _NOT_SETS or not placey and (named & cast or not proper):
        return None
    outdoor = set(re.split(r"[ -]", spot.lower())) & _STAGE_OUTDOOR or _prefix(spot) == "EXT."
    return Place(name, f"{prep} {_phrase_case(words)}", "EXT." if outdoor else "INT."), placey


def _set_words(sentence: str) -> list[str]:
    """The words that name the set: up to the first clause that describes it."""
    sentence = re.split(r"[;:(]| [—–-]+ ", re.sub(r"[\"“”]", " ", sentence), maxsplit=1)[0]
    words: list[str] = []
    for raw in sentence.split()[:12]:
        word = raw.strip(".,!?")
        lowered = word.lower()
        if not word or lowered in _SET_ENDS or any(c.isdigit() for c in word) or (
                len(word) > 4 and word.islower() and lowered.endswith("ed") and lowered not in _STAGE_PLACES):
            break  # "dedicated to", "crowded with": a description begins
        words.append(word)
        if raw.endswith(",") and (_is_place_word(word) or word[:1].isupper() and lowered not in _ARTICLES):
            break  # "A drawing-room at the Hunters', handsomely furnished"; "Werocomoco, the royal village"
    return words


def _set_name(words: list[str]) -> str:
    """'Room in the castle of Bianca' -> 'CASTLE OF BIANCA'; 'A cave in the forest' ->
    'FOREST - CAVE' (the screenplay way: the place, then the spot within it)."""
    lowered = [w.lower() for w in words]
    while lowered and lowered[0] in _ARTICLES:
        words, lowered = words[1:], lowered[1:]
    if not words:
        return ""
    cut = next((i for i, w in enumerate(lowered) if w in _CONNECTORS and i > 0), None)
    if cut is None:
        return _accepted(words)
    spot, rest = words[:cut], words[cut + 1:]
    whole = _set_name(rest)
    if lowered[cut] == "of":
        if spot[-1].lower() in _GENERIC_SPOTS:
            return whole
        inner = rest[:next((i for i, w in enumerate(rest) if w.lower() in _CONNECTORS[1:]), len(rest))]
        compound = spot + ["of"] + inner  # "The Temple of the Sun", "the house of Isis"
        if _is_place_word(spot[-1]) and len(compound) <= 6:
            return " ".join(w.upper() for w in compound)
        return _accepted(compound) or whole
    if not whole:
        return _accepted(spot) if len(spot) <= 4 else ""
    if spot[-1].lower() in _GENERIC_SPOTS or len(spot) > 2:
        return whole
    return f"{whole} - {' '.join(spot).upper()}" if _accepted(spot) else whole


def _accepted(words: list[str]) -> str:
    """Words that can be a place: ending in a word for a place, or a proper name ("Boston")."""
    core = [w for w in words if w.lower() not in _ARTICLES]
    if not core or len(core) > 5:
        return ""
    proper = all(w[:1].isupper() for w in core if w.lower() not in _CONNECTORS)
    return " ".join(w.upper() for w in words) if _is_place_word(core[-1]) or proper else ""


def _is_place_word(word: str) -> bool:
    word = re.sub(r"['’]s?$", "", word.lower())
    if word in _STAGE_PLACES or word.split("-")[-1] in _STAGE_PLACES:
        return True
    # derive_heading knows the word as a place when it heads with the word itself (for
    # "queen" it would head THRONE ROOM: a role, not a place)
    derived = derive_heading(f"in the {word}") or ""
    return derived.split(" ", 1)[-1].startswith(f"{word.upper()} - ")


def _phrase_case(words: list[str]) -> str:
    """The set as a writer would type it: 'A FARM IN THE ODENWALD' -> 'a Farm in the Odenwald'."""
    shouted = all(w == w.upper() for w in words if w.lower() not in _ARTICLES)
    if words[0].lower() not in _ARTICLES + _CONNECTORS and not re.search(r"['’]s?$", words[0]) and (
            words[0].lower() in _GENERIC_SPOTS or _is_place_word(words[0])):
        words = ["the", words[0].lower(), *words[1:]]  # "Room in the castle" -> "the room in the castle"
    out = []
    for index, word in enumerate(words):
        if word.lower() in _ARTICLES + _CONNECTORS and (shouted or index == 0):
            out.append(word.lower())
        else:  # a shouted name ("MRS. GRAHAM'S") as a writer types it
            out.append(word.capitalize() if shouted or word.isupper() and len(word) > 1 else word)
    return " ".join(out)


def _prefix(name: str, default: str = "INT.") -> str:
    """derive_heading's INT./EXT. for a place, or ``default`` when it knows no such place."""
    derived = derive_heading(f"in the {name.lower()}")
    return derived.split()[0] if derived else default


# --- sentences -------------------------------------------------------------------------------

_ABBREVIATIONS = screenplay_words().abbreviations  # "Mrs." ends no sentence
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")


def _sentence_ends(text: str) -> list[int]:
    """Where sentences of ``text`` end; "Mrs." and initials ("R. C.", "Mr. C.") end none."""
    ends = []
    for match in _SENTENCE_END.finditer(text):
        word = re.findall(r"[\w.]+$", text[:match.start()])
        if word and (word[0].lower().rstrip(".") in _ABBREVIATIONS or len(word[0]) == 1) and match.group(0) == ".":
            continue
        ends.append(match.end())
    return ends


def clip(text: str, limit: int) -> str:
    """The longest run of whole sentences of ``text`` within ``limit`` characters ("" if none)."""
    if len(text) <= limit:
        return text
    fitting = [end for end in _sentence_ends(text) if end <= limit]
    return text[:fitting[-1]].rstrip() if fitting else ""


def sentences(text: str, count: int) -> list[str]:
    """The first ``count`` sentences of ``text``."""
    out, start = [], 0
    for end in [*_sentence_ends(text), len(text)]:
        sentence = text[start:end].strip(" —–-")
        if sentence:
            out.append(sentence)
        start = end
        if len(out) == count:
            break
    return out

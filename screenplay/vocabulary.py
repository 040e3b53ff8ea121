"""The word lists the screenplay heuristics read, from config/screenplay_words.toml.

    words = screenplay_words()           # read once, then cached
    words.heading.role_places["nurse"]   # -> "HOSPITAL ROOM"

Data, not code: which words name places, times of day, speech and stage sets. The file
says where each list comes from, and that none may be tuned on the held-out evaluation
prompts (training.eval_prompts.HELDOUT_PROMPTS).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

__all__ = ["WORDS_FILE", "HeadingWords", "JudgeWords", "ScreenplayWords", "SpeechWords", "StageWords",
           "judge_words", "parse_judge_words", "parse_words", "screenplay_words"]

WORDS_FILE = "screenplay_words.toml"  # in the config package, beside default.toml


@dataclass(frozen=True)
class HeadingWords:
    """For a scene heading derived from a /dialogue request."""

    phrase_stop: frozenset[str]
    not_places: frozenset[str]  # the time words included
    not_modifiers: frozenset[str]
    outdoor: frozenset[str]
    places: frozenset[str]  # the outdoor words included
    time_words: Mapping[str, str]
    role_places: Mapping[str, str]


@dataclass(frozen=True)
class SpeechWords:
    """For model output turned into Fountain."""

    cue_extensions: frozenset[str]
    speech_verbs: tuple[str, ...]
    speech_verbs_with_object: tuple[str, ...]
    not_names: frozenset[str]


@dataclass(frozen=True)
class StageWords:
    """For a play's stage set read as a scene heading."""

    outdoor: frozenset[str]
    places: frozenset[str]  # the outdoor words included
    generic_spots: frozenset[str]
    set_ends: frozenset[str]
    not_sets: frozenset[str]


@dataclass(frozen=True)
class ScreenplayWords:
    heading: HeadingWords
    speech: SpeechWords
    stage: StageWords
    abbreviations: frozenset[str]


@cache
def screenplay_words() -> ScreenplayWords:
    """The lists from the config package's screenplay_words.toml (read on first use)."""
    text = resources.files("config").joinpath(WORDS_FILE).read_text(encoding="utf-8")
    return parse_words(tomllib.loads(text))


def parse_words(data: Mapping[str, Any]) -> ScreenplayWords:
    """The file's tables -> the lists. TypeError names a table or list that is missing or of the wrong
    type, ValueError one holding a word that could never match."""
    heading, speech, stage = _table(data, "heading"), _table(data, "speech"), _table(data, "stage")
    time_words = _mapping(heading, "time_words")
    role_places = _mapping(heading, "role_places")
    stripped = [role for role in role_places if role != role.rstrip("s") or "'" in role or "’" in role]
    if stripped:  # looked up as token.lower().rstrip("s"): such a key is dead
        raise ValueError(f"heading.role_places: keys ending in s or holding an apostrophe never match: {stripped}")
    outdoor = _words(heading, "outdoor")
    stage_outdoor = _words(stage, "outdoor")
    return ScreenplayWords(
        heading=HeadingWords(
            phrase_stop=_words(heading, "phrase_stop"),
            not_places=_words(heading, "not_places") | frozenset(time_words),
            not_modifiers=_words(heading, "not_modifiers"),
            outdoor=outdoor,
            places=outdoor | _words(heading, "places"),
            time_words=time_words,
            role_places=role_places,
        ),
        speech=SpeechWords(
            cue_extensions=_words(speech, "cue_extensions", case="upper"),
            speech_verbs=tuple(_word_list(speech, "speech_verbs")),
            speech_verbs_with_object=tuple(_word_list(speech, "speech_verbs_with_object")),
            not_names=_words(speech, "not_names"),
        ),
        stage=StageWords(
            outdoor=stage_outdoor,
            places=stage_outdoor | _words(stage, "places"),
            generic_spots=_words(stage, "generic_spots"),
            set_ends=_words(stage, "set_ends"),
            not_sets=_words(stage, "not_sets"),
        ),
        abbreviations=_words(_table(data, "sentences"), "abbreviations"),
    )


@dataclass(frozen=True)
class JudgeWords:
    """For the strict judge of a generated scene (screenplay.judge)."""

    not_name_words: frozenset[str]  # a cue holding one is a sentence in capitals, not a name
    place_words: frozenset[str]  # may stand in a heading's place; the other not-name words may not

    @property
    def sentence_words(self) -> frozenset[str]:
        """Words that make a heading's place read as a sentence ("CHURTLAND IS DEAD")."""
        return self.not_name_words - self.place_words


@cache
def judge_words() -> JudgeWords:
    """The [judge] table of the config package's screenplay_words.toml (read on first use)."""
    text = resources.files("config").joinpath(WORDS_FILE).read_text(encoding="utf-8")
    return parse_judge_words(tomllib.loads(text))


def parse_judge_words(data: Mapping[str, Any]) -> JudgeWords:
    """The file's [judge] table -> its lists; TypeError and ValueError as parse_words raises them."""
    judge = _table(data, "judge")
    return JudgeWords(not_name_words=_words(judge, "not_name_words"), place_words=_words(judge, "place_words"))


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name)
    if not isinstance(table, Mapping):
        raise TypeError(f"{WORDS_FILE}: no [{name}] table")
    return table


def _word_list(table: Mapping[str, Any], key: str, *, case: str = "lower") -> list[str]:
    value = table.get(key)
    if not isinstance(value, str):
        raise TypeError(f"{WORDS_FILE}: {key} must be a string of whitespace-separated words")
    words = value.split()
    wrong = [word for word in words if word != (word.lower() if case == "lower" else word.upper())]
    if wrong:  # the code compares with lower-cased (or upper-cased) text: such a word never matches
        raise ValueError(f"{WORDS_FILE}: {key} must be in {case} case: {wrong}")
    return words


def _words(table: Mapping[str, Any], key: str, *, case: str = "lower") -> frozenset[str]:
    return frozenset(_word_list(table, key, case=case))


def _mapping(table: Mapping[str, Any], key: str) -> Mapping[str, str]:
    value = table.get(key)
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError(f"{WORDS_FILE}: [heading.{key}] must map words to places")
    wrong = [word for word, place in value.items() if word != word.lower() or place != place.upper()]
    if wrong:
        raise ValueError(f"{WORDS_FILE}: [heading.{key}] keys are lower case and places upper case: {wrong}")
    return MappingProxyType(dict(value))

"""The screenplay word lists: data in config/screenplay_words.toml, read once, checked as read."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib import resources

import pytest

from config.settings import REPO_ROOT
from screenplay.vocabulary import WORDS_FILE, parse_words, screenplay_words


def shipped() -> dict:
    return tomllib.loads(resources.files("config").joinpath(WORDS_FILE).read_text(encoding="utf-8"))


def test_the_lists_are_read_once_and_shipped_with_the_config_package():
    assert screenplay_words() is screenplay_words()
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(WORDS_FILE, pattern) for pattern in package_data["config"])


def test_the_lists_say_what_the_heuristics_need():
    words = screenplay_words()
    assert words.heading.role_places["nurse"] == "HOSPITAL ROOM"
    assert words.heading.time_words["midnight"] == "NIGHT"
    assert words.heading.outdoor <= words.heading.places and "kitchen" in words.heading.places
    assert set(words.heading.time_words) <= words.heading.not_places
    assert words.stage.outdoor <= words.stage.places
    assert "V.O." in words.speech.cue_extensions and "said" in words.speech.speech_verbs
    assert "mrs" in words.abbreviations


def test_a_role_that_could_never_match_is_refused():
    data = shipped()
    data["heading"]["role_places"]["boss"] = "OFFICE"  # looked up as "bo"
    with pytest.raises(ValueError, match="boss"):
        parse_words(data)


def test_a_capitalised_word_is_refused_where_text_is_lower_cased_before_lookup():
    data = shipped()
    data["heading"]["places"] += " Greenhouse"
    with pytest.raises(ValueError, match="Greenhouse"):
        parse_words(data)


def test_a_missing_list_is_named():
    data = shipped()
    del data["stage"]["set_ends"]
    with pytest.raises(TypeError, match="set_ends"):
        parse_words(data)

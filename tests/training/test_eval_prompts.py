"""The evaluation prompt sets: a tuning set and a held-out set that no word list was tuned on.

The held-out set's overlap with config/screenplay_words.toml is pinned here, as the
training.eval_prompts docstring states it: a word added to the lists that a held-out
prompt holds (tuning on the held-out set, knowingly or not) fails these tests.
"""

from __future__ import annotations

import re

import pytest

from screenplay.form import derive_heading
from screenplay.prompting import parse_dialogue_request
from screenplay.vocabulary import screenplay_words
from training import eval_prompts
from training.eval_prompts import HELDOUT_PROMPTS, SPLITS, TUNING_PROMPTS

# The lists a /dialogue request is read with (the speech and stage lists read model output and plays).
LISTS = {
    "role_places": frozenset(screenplay_words().heading.role_places),
    "places": screenplay_words().heading.places,
    "time_words": frozenset(screenplay_words().heading.time_words),
}
# What the eval_prompts docstring says: held-out prompts holding a word of each list.
HELDOUT_OVERLAP = {"role_places": 0, "places": 0, "time_words": 0}
TUNING_OVERLAP = {"role_places": 66, "places": 54, "time_words": 5}


def prompt_words(prompt: str) -> set[str]:
    """A prompt's lower-cased words (names and tone too), each also without a possessive 's and
    trailing s's: the lists are looked up that way ("nurses" -> "nurse")."""
    words = set()
    for word in re.findall(r"[a-z'’-]+", prompt.lower()):
        bare = re.sub(r"['’]s?$", "", word)
        words |= {word, bare, bare.rstrip("s")}
    return words


def holding(prompts: list[str], words: frozenset[str]) -> list[str]:
    return [prompt for prompt in prompts if prompt_words(prompt) & words]


def test_the_sets_are_disjoint_and_hold_no_duplicates():
    assert not set(TUNING_PROMPTS) & set(HELDOUT_PROMPTS)
    assert len(set(TUNING_PROMPTS)) == len(TUNING_PROMPTS) == 100
    assert len(set(HELDOUT_PROMPTS)) == len(HELDOUT_PROMPTS) == 50
    assert SPLITS == {"heldout": HELDOUT_PROMPTS, "tuning": TUNING_PROMPTS}


def test_no_situation_is_asked_twice_across_the_sets():
    tuning = {parse_dialogue_request(prompt).situation.lower() for prompt in TUNING_PROMPTS}
    assert not tuning & {parse_dialogue_request(prompt).situation.lower() for prompt in HELDOUT_PROMPTS}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_heldout_overlap_with_the_word_lists_is_what_the_docstring_says(name):
    found = holding(HELDOUT_PROMPTS, LISTS[name])
    assert len(found) == HELDOUT_OVERLAP[name], (
        f"held-out prompts holding a word of {name}: {found}. Tuning the lists on the held-out set "
        "makes its numbers in-sample; if the overlap is honest, say so in training/eval_prompts.py"
    )
    stated = f"{HELDOUT_OVERLAP[name]} of {len(HELDOUT_PROMPTS)} held-out prompts contain a word of {name}"
    assert stated in " ".join(eval_prompts.__doc__.split())


@pytest.mark.parametrize("name", sorted(LISTS))
def test_the_tuning_overlap_the_docstring_states_is_measured_the_same_way(name):
    assert len(holding(TUNING_PROMPTS, LISTS[name])) == TUNING_OVERLAP[name]
    stated = f"{TUNING_OVERLAP[name]} of {len(TUNING_PROMPTS)}"
    assert stated in " ".join(eval_prompts.__doc__.split())


def test_the_lists_give_no_heldout_prompt_a_heading():
    """The docstring's consequence: on the held-out set the model names every place itself."""
    derived = [prompt for prompt in HELDOUT_PROMPTS if derive_heading(parse_dialogue_request(prompt).situation)]
    assert derived == []
    assert sum(1 for prompt in TUNING_PROMPTS if derive_heading(parse_dialogue_request(prompt).situation)) == 94


def test_the_counting_finds_role_words_in_plurals_and_possessives():
    roles = LISTS["role_places"]
    assert holding(["two nurses quarrel", "a boxer's trainer begs", "a Nurse's shift"], roles) == [
        "two nurses quarrel", "a boxer's trainer begs", "a Nurse's shift"]
    assert holding(["a lifeguard and a swimmer argue"], roles) == []


def test_the_training_gate_samples_the_heldout_prompts():
    import inspect

    from training import gate, house, run

    source = inspect.getsource(gate.run_gate)  # the one gate room runs and the house adapter go through
    assert "HELDOUT_PROMPTS[: t.eval_generations]" in source and "TUNING_PROMPTS" not in source
    assert "run_gate(" in inspect.getsource(run._evaluate) and "run_gate(" in inspect.getsource(house._judge)

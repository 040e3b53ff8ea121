"""Model output -> Fountain: normalizing, validating with our parser, repairing names.

Crafted cases pin each rule; tests/screenplay/fixtures/smollm2_outputs.json holds real
SmolLM2-135M-Instruct answers (collected once during development) as honest data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.parse.fountain import parse_fountain
from screenplay.form import (
    derive_heading,
    edit_distance,
    normalize_fountain,
    repair_names,
    validate_fountain,
)

FIXTURES = Path(__file__).parent / "fixtures"


def kinds(text: str) -> list[tuple[str, str]]:
    return [(el.kind, el.text) for scene in parse_fountain(text).scenes for el in scene.elements]


# -- normalize -------------------------------------------------------------------------


def test_name_colon_lines_become_cue_and_dialogue_with_parentheticals():
    text = normalize_fountain("INT. BAR - NIGHT\n\nMaya: You lied to me.\nCOLE (whispering): I had to.\nMaya (V.O.): Fine.")
    assert text == ("INT. BAR - NIGHT\n\nMAYA\nYou lied to me.\n\nCOLE\n(whispering)\nI had to.\n\n"
                    "MAYA (V.O.)\nFine.")


def test_quoted_prose_speech_is_attributed_when_the_speaker_is_named():
    text = normalize_fountain('INT. BAR - NIGHT\n\n"You lied," Maya said.\n"I had to," said Cole.\n'
                              'Maya whispered, "Then go."', characters=("MAYA", "COLE"))
    assert kinds(text)[1:] == [("character", "MAYA"), ("dialogue", "You lied."), ("character", "COLE"),
                               ("dialogue", "I had to."), ("character", "MAYA"), ("dialogue", "Then go.")]


def test_ambiguous_prose_speech_stays_action():
    source = 'INT. BAR - NIGHT\n\nShe looked at him and said, "Not now," then left.\n"Why?" he asked.'
    assert normalize_fountain(source) == source


def test_mixed_case_cue_of_a_requested_character_is_capitalised_and_dialogue_pulled_under_it():
    text = normalize_fountain("INT. LAB - DAY\n\nMaya\n(quietly) It moved.\n\nCole\n( sighing )\nNo it didn't.",
                              characters=("MAYA", "COLE"))
    assert text == "INT. LAB - DAY\n\nMAYA\n(quietly)\nIt moved.\n\nCOLE\n(sighing)\nNo it didn't."


def test_markdown_is_stripped():
    text = normalize_fountain("```\n## **INT. LAB - DAY**\n\n**MAYA**\n*It moved.*\n\n- COLE: No.\n```")
    assert text == "INT. LAB - DAY\n\nMAYA\nIt moved.\n\nCOLE\nNo."


def test_prompt_echo_lines_are_dropped():
    text = normalize_fountain("Scene: a lab\nCharacters: MAYA, COLE\nINT. LAB - DAY\n\nMAYA\nHi.")
    assert text == "INT. LAB - DAY\n\nMAYA\nHi."


def test_a_shouted_sentence_is_kept_as_action_not_read_as_a_cue():
    text = normalize_fountain("INT. LAB - DAY\n\nTHE MACHINE ROARS TO LIFE AGAIN\nSparks fly.\n\nMAYA\nRun.")
    assert kinds(text)[1] == ("action", "THE MACHINE ROARS TO LIFE AGAIN\nSparks fly.")
    assert validate_fountain(text).cues == ("MAYA",)


def test_model_heading_is_kept_and_capitalised():
    text = normalize_fountain("int. kitchen - night\n\nMAYA\nHi.", situation="a fight in a rainy alley")
    assert text.startswith("INT. KITCHEN - NIGHT\n")


def test_missing_heading_is_derived_from_the_situation():
    text = normalize_fountain("MAYA\nYou sold us out.\n\nCOLE\nI kept you alive.",
                              situation="a detective corners her partner in a rainy alley at night")
    assert text.startswith("EXT. RAINY ALLEY - NIGHT\n\nMAYA\n")


@pytest.mark.parametrize("situation, heading", [
    ("a heist goes wrong in a bakery", "INT. BAKERY - DAY"),
    ("two sisters argue about selling the family farm", "EXT. FAMILY FARM - DAY"),
    ("lovers quarrel on a night train", "INT. NIGHT TRAIN - NIGHT"),
    ("a nurse and a patient play chess at midnight", "INT. HOSPITAL ROOM - NIGHT"),
    ("two thieves realise they robbed the same bank", "INT. BANK - DAY"),
    ("two people disagree about everything", None),
])
def test_heading_from_situation(situation, heading):
    assert derive_heading(situation) == heading


def test_cut_off_last_line_and_its_dangling_cue_are_dropped():
    text = normalize_fountain("INT. BAR - NIGHT\n\nMAYA\nYou lied to me.\n\nCOLE\nI had to because the",
                              truncated=True)
    assert text == "INT. BAR - NIGHT\n\nMAYA\nYou lied to me."


def test_a_finished_answer_keeps_its_last_line():
    text = normalize_fountain("INT. BAR - NIGHT\n\nMAYA\nYou lied to me.\n\nCOLE\nWhatever you say", truncated=False)
    assert text.endswith("COLE\nWhatever you say")


def test_normalizing_valid_fountain_changes_nothing():
    scene = "EXT. ALLEY - NIGHT\n\nRain hammers down.\n\nMAYA\nYou sold us out, Cole.\n\nCOLE\n(backing away)\nI kept you alive."
    assert normalize_fountain(scene) == scene
    assert normalize_fountain(normalize_fountain(scene)) == scene


# -- validate --------------------------------------------------------------------------


def test_valid_scene_has_heading_two_speeches_and_every_requested_voice():
    report = validate_fountain("INT. BAR - NIGHT\n\nMAYA\nYou lied.\n\nCOLE\n(shrugs)\nI had to.", ("MAYA", "COLE"))
    assert report.valid and report.problems == ()
    assert (report.headings, report.dialogue_blocks, report.cues) == (1, 2, ("MAYA", "COLE"))


def test_problems_are_listed_in_words():
    report = validate_fountain("She walks in.\n\nMAYA\nHello.", ("MAYA", "COLE"))
    assert not report.valid
    assert report.problems == (
        "no scene heading (INT./EXT. PLACE - TIME)",
        "1 line(s) of dialogue under a character cue; at least 2 needed",
        "requested character(s) never speak: COLE",
    )
    assert report.missing_characters == ("COLE",)


def test_forced_lowercase_cue_is_a_problem():
    report = validate_fountain("INT. BAR - NIGHT\n\n@Maya\nHi.\n\nCOLE\nHey.")
    assert "cue(s) not in capitals: Maya" in report.problems


def test_better_attempts_score_higher():
    good = validate_fountain("INT. BAR - NIGHT\n\nMAYA\nHi.\n\nCOLE\nHey.", ("MAYA", "COLE"))
    half = validate_fountain("INT. BAR - NIGHT\n\nMAYA\nHi.\n\nMAYA\nHey.", ("MAYA", "COLE"))
    none = validate_fountain("Nothing here.", ("MAYA", "COLE"))
    assert good.score > half.score > none.score


# -- repair ----------------------------------------------------------------------------


def test_near_miss_names_map_to_the_requested_ones():
    text, changes = repair_names("INT. BAR - NIGHT\n\nMAYAH\nYou lied.\n\nDETECTIVE COLE\nI had to.\n\nMAYA\nGo.",
                                 ("MAYA", "COLE"))
    assert text == "INT. BAR - NIGHT\n\nMAYA\nYou lied.\n\nCOLE\nI had to.\n\nMAYA\nGo."
    assert changes == ["cue MAYAH -> MAYA", "cue DETECTIVE COLE -> COLE"]
    assert validate_fountain(text, ("MAYA", "COLE")).valid


def test_titles_map_both_ways_and_distant_names_are_left_alone():
    text, changes = repair_names("INT. FLAT - DAY\n\nIVES\nOut.\n\nPIPPA\nNo.\n\nRABBI\nWhat?", ("MR. IVES", "PIP"))
    assert changes == ["cue IVES -> MR. IVES"]
    assert "PIPPA" in text and "RABBI" in text  # too far from PIP: a different person, not a typo


def test_a_name_equally_close_to_two_requested_names_is_not_guessed():
    _, changes = repair_names("INT. FLAT - DAY\n\nJAN\nOut.\n\nDAN\nNo.", ("JON", "JAY"))
    assert changes == []


def test_repair_never_touches_dialogue_or_action():
    text, _ = repair_names("INT. BAR - NIGHT\n\nMAYAH walks in.\n\nCOLE\nMayah, MAYAH!\n\nMAYAH\nHi.", ("MAYA", "COLE"))
    assert text == "INT. BAR - NIGHT\n\nMAYAH walks in.\n\nCOLE\nMayah, MAYAH!\n\nMAYA\nHi."


def test_edit_distance():
    assert (edit_distance("MAYA", "MAYAH"), edit_distance("LUIS", "LOUIS"), edit_distance("ROSE", "RISE")) == (1, 1, 1)


# -- real SmolLM2 answers ----------------------------------------------------------------


def real_outputs() -> list[dict]:
    return json.loads((FIXTURES / "smollm2_outputs.json").read_text(encoding="utf-8"))["outputs"]


def through_the_layer(case: dict):
    from screenplay.prompting import join_prefill, parse_dialogue_request

    request = parse_dialogue_request(case["prompt"])
    raw = join_prefill(case["prefill"], case["output"])
    text = normalize_fountain(raw, characters=request.characters, situation=request.situation,
                              truncated=case["finish_reason"] == "length")
    before = validate_fountain(text, request.characters)
    repaired, changes = repair_names(text, request.characters)
    return request, text, before, repaired, changes, validate_fountain(repaired, request.characters)


@pytest.mark.parametrize("case", real_outputs(), ids=lambda case: case["prompt"][:40])
def test_real_answers_normalize_to_stable_parseable_fountain(case):
    request, text, before, repaired, changes, after = through_the_layer(case)
    assert text and parse_fountain(text).scenes
    assert normalize_fountain(text, characters=request.characters, situation=request.situation, truncated=False) == text
    assert "**" not in text and "```" not in text
    assert (before.valid, after.valid, changes) == (case["expected"]["valid_before_repair"],
                                                   case["expected"]["valid_after_repair"], case["expected"]["repairs"])
    # repair changes cue lines only, as its change list says: every other line is kept as it was
    old_lines, new_lines = text.split("\n"), repaired.split("\n")
    assert len(old_lines) == len(new_lines)
    renamed = {(change.split(" -> ")[0][4:], change.split(" -> ")[1]) for change in changes}
    assert {(old, new) for old, new in zip(old_lines, new_lines) if old != new} <= renamed


def test_real_answers_in_name_colon_form_become_valid():
    case = next(c for c in real_outputs() if c["prompt"].startswith("a landlord") and not c["prefill"])
    assert case["output"].startswith("GRETA: ")
    _, text, before, *_ = through_the_layer(case)
    assert before.valid and before.cues[:3] == ("GRETA", "MR. IVES", "PIP")
    assert text.startswith("INT. APARTMENT - DAY\n\nGRETA\nI'll be happy to show you my magic tricks.")


def test_real_prose_answer_stays_invalid_and_says_why():
    case = next(c for c in real_outputs() if c["prompt"].startswith("a detective") and not c["prefill"])
    *_, after = through_the_layer(case)
    assert not after.valid and "requested character(s) never speak: MAYA, COLE" in after.problems


# -- retries through /dialogue -------------------------------------------------------------


def test_an_invalid_first_answer_is_retried_and_the_valid_second_returned(tmp_path):
    import asyncio

    from bot.core.commands import dispatch
    from bot.core.replies import Invocation
    from emulators.core_services import make_core_services
    from emulators.openai_backend import FakeBackend
    from store import generations
    from store.db import session_scope

    prose = "She looked at him. He said nothing, and the rain kept falling on the alley."
    valid = ("EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out.\n\nCOLE\nI kept you alive.\n\n"
             "MAYA\nAlive is not free.\n\nCOLE\nThen walk away.")
    with FakeBackend(scenes=[prose, valid]) as backend:
        services = make_core_services(tmp_path, backend.url)
        invocation = Invocation(platform="slack", room_id="T1:C1", user_id="U1",
                                text="a detective corners her partner in an alley characters: Maya, Cole")
        reply = asyncio.run(dispatch(services, "dialogue", invocation))
    assert len(backend.requests) == 2 and backend.requests[0]["seed"] + 1 == backend.requests[1]["seed"]
    assert reply.sections[0].body == valid and len(reply.sections) == 1
    with session_scope(services.sessions) as session:
        parameters = generations.get_generation(session, generation_id=reply.generation_id).parameters
    assert parameters["attempts"] == 2 and parameters["validation"]["valid"]
    assert parameters["validation"]["judge"] == "strict-v2" and parameters["constrained"] is True
    assert parameters["attempt_log"][0]["valid"] is False
    # Each request asked for the scene grammar (as vLLM takes it) and our degeneration guard.
    for request in backend.requests:
        assert request["structured_outputs"]["grammar"].startswith("start:")
        assert request["degeneration_guard"]["speakers"] == ["MAYA", "COLE"]


def test_never_valid_answers_stop_after_max_attempts_with_a_visible_warning(tmp_path):
    import asyncio

    from bot.core.commands import dispatch
    from bot.core.replies import Invocation, SectionKind
    from emulators.core_services import make_core_services
    from emulators.openai_backend import FakeBackend
    from screenplay.scene_loop import MAX_ATTEMPTS

    only_maya = "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out.\n\nCOLE\nSay something.\n\nMAYA\nNo."
    worse = "Nothing but prose, all the way down."
    # Under the grammar every requested voice speaks, so nothing is continued: three whole scenes.
    with FakeBackend(scenes=[worse, only_maya, ""]) as backend:
        services = make_core_services(tmp_path, backend.url)
        invocation = Invocation(platform="slack", room_id="T1:C1", user_id="U1",
                                text="a detective corners her partner in an alley characters: Maya, Cole")
        reply = asyncio.run(dispatch(services, "dialogue", invocation))
    assert len(backend.requests) == MAX_ATTEMPTS == 3
    assert reply.sections[0].body == only_maya  # the best of the three
    assert reply.sections[1].kind is SectionKind.TEXT
    assert "not fully in screenplay form after 3 attempt(s)" in reply.sections[1].body
    assert "3 speeches; a scene needs at least 4" in reply.sections[1].body


def test_unconstrained_a_silent_voice_is_continued_before_the_scene_is_redone(tmp_path):
    import asyncio

    from bot.core.commands import dispatch
    from bot.core.replies import Invocation, SectionKind
    from emulators.core_services import make_core_services
    from emulators.openai_backend import FakeBackend
    from screenplay.scene_loop import MAX_ATTEMPTS

    only_maya = ("EXT. ALLEY - NIGHT\n\nA BARMAN leans in a doorway.\n\nMAYA\nYou sold us out.\n\nBARMAN\nNot in here.\n\n"
                 "MAYA\nSay something.\n\nBARMAN\nOut.")
    worse = "Nothing but prose, all the way down."
    # Without the grammar (a server that has no structured outputs): requests 3 and 4 continue
    # only_maya with COLE's cue written (two tries); empty answers leave COLE silent; request 5 is
    # the third and last whole scene (empty again).
    with FakeBackend(scenes=[worse, only_maya, ""]) as backend:
        services = make_core_services(tmp_path, backend.url, generation={"constrained": False})
        invocation = Invocation(platform="slack", room_id="T1:C1", user_id="U1",
                                text="a detective corners her partner in an alley characters: Maya, Cole")
        reply = asyncio.run(dispatch(services, "dialogue", invocation))
    whole_scenes = [r for r in backend.requests if not r["messages"][-1]["content"].endswith("COLE\n")]
    assert len(whole_scenes) == MAX_ATTEMPTS == 3 and len(backend.requests) == 5
    assert reply.sections[0].body == only_maya  # the best of the five
    assert reply.sections[1].kind is SectionKind.TEXT
    assert "not fully in screenplay form after 5 attempt(s)" in reply.sections[1].body
    assert "COLE never speaks" in reply.sections[1].body
    assert all("structured_outputs" not in request for request in backend.requests)


def test_the_attempt_limit_and_copy_guard_length_come_from_settings(tmp_path):
    import asyncio

    from bot.core.commands import dispatch
    from bot.core.replies import Invocation
    from emulators.core_services import make_core_services
    from emulators.openai_backend import FakeBackend

    with FakeBackend(scene="Only prose here, no scene at all.") as backend:
        services = make_core_services(tmp_path, backend.url, generation={"max_attempts": 2, "copy_guard_words": 20})
        invocation = Invocation(platform="slack", room_id="T1:C1", user_id="U1", text="two friends argue in a bar")
        reply = asyncio.run(dispatch(services, "dialogue", invocation))
    assert len(backend.requests) == 2
    assert "after 2 attempt(s)" in reply.text

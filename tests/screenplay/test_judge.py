"""The strict judge of screenplay form: real model failures fail for the reason a writer would
give, and real scenes from the bundled screenplays and plays pass."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest

from retrieval.bundled import bundled_corpus_dir
from retrieval.document import CHARACTER, DIALOGUE, PARENTHETICAL
from retrieval.parse.fountain import group_scenes, parse_elements
from screenplay.form import normalize_fountain, repair_names, validate_fountain
from screenplay.judge import SceneBounds, Verdict, judge_scene
from screenplay.prompting import join_prefill, parse_dialogue_request
from screenplay.vocabulary import judge_words, parse_judge_words

FIXTURES = Path(__file__).parent / "fixtures"
BAD_SCENES = FIXTURES / "bad_scenes"
REPO = Path(__file__).resolve().parents[2]

GOOD_SCENE = """\
INT. HARBOUR MASTER'S OFFICE - NIGHT

Rain hammers the window. MAYA (40s, soaked) shoulders the door open. COLE looks up from a chart.

MAYA
You told them the boat was yours.

COLE
(not looking up)
It was, for a while.

MAYA
Long enough to sink it?

Cole folds the chart into quarters, slowly, like it owes him money.

COLE
I never asked you to follow me here.

MAYA (O.S.)
Nobody ever has to ask.

Officer Reyes leans in from the corridor, radio crackling.

OFFICER REYES
Coast guard found the wreck. Empty.

COLE
Then we are done talking.

MAYA
No. Now we start.
"""


def judge(text: str, *names: str, **kwargs) -> Verdict:
    return judge_scene(text, requested=names, **kwargs)


# -- the failures it was built for ----------------------------------------------------------


def test_the_lighthouse_output_fails_for_its_loop_and_its_shouted_cues():
    """Reconstructed from an issue's quote of a real SmolLM2-135M output: the quoted lines in their
    order (the quote's elided "..." left out), "The fire" fifteen times, put through
    normalize_fountain as the pipeline does, which reads three of the shouted lines as cues."""
    text = (BAD_SCENES / "lighthouse_the_fire.fountain").read_text(encoding="utf-8")
    verdict = judge(text, "AGNES", "DEPUTY MARSH")
    assert not verdict.valid and verdict.looping
    assert "The fire" in verdict.loops and "the line “The fire” repeats 15 times" in verdict.problems
    assert set(verdict.unknown_speakers) == {"YOU'RE THE SAME", "AFTER THIS", "LAMBURGES"}
    assert verdict.missing_characters == ("DEPUTY MARSH",)
    assert any("“YOURS ARE NOT HERE”" in problem and "shouting" in problem for problem in verdict.problems)
    # the lax validator counts the shouted sentences as speakers; Deputy Marsh's silence is its only objection
    assert validate_fountain(text, ("AGNES", "DEPUTY MARSH")).cues[1:] == ("YOU'RE THE SAME", "AFTER THIS",
                                                                          "LAMBURGES")


def bad_scenes() -> list[dict]:
    return json.loads((BAD_SCENES / "index.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", bad_scenes(), ids=lambda case: case["file"])
def test_each_collected_bad_output_fails_for_its_reason(case):
    text = (BAD_SCENES / case["file"]).read_text(encoding="utf-8")
    verdict = judge(text, *parse_dialogue_request(case["prompt"]).characters)
    assert not verdict.valid
    assert any(case["problem"] in problem for problem in verdict.problems), verdict.problems


def test_the_held_out_smollm2_answers_the_old_validator_passed_nearly_all_fail():
    records = json.loads((REPO / "benchmarks" / "samples" / "fountain_validity_heldout.json").read_text())
    verdicts = [judge(record["text"], *parse_dialogue_request(record["prompt"]).characters) for record in records]
    assert len(records) == 50 and all(record["valid_final"] for record in records)
    assert sum(verdict.valid for verdict in verdicts) <= 3  # measured: 3 (see screenplay/judge.py)
    assert sum(verdict.looping for verdict in verdicts) >= 25


def test_no_raw_smollm2_answer_in_the_fixtures_passes_even_after_normalizing_and_repair():
    outputs = json.loads((FIXTURES / "smollm2_outputs.json").read_text(encoding="utf-8"))["outputs"]
    for case in outputs:
        request = parse_dialogue_request(case["prompt"])
        text = normalize_fountain(join_prefill(case["prefill"], case["output"]), characters=request.characters,
                                  situation=request.situation, truncated=case["finish_reason"] == "length")
        repaired, _ = repair_names(text, request.characters)
        assert not judge(repaired, *request.characters).valid, repaired


# -- rules, one at a time --------------------------------------------------------------------


def test_a_well_formed_scene_passes():
    verdict = judge(GOOD_SCENE, "MAYA", "COLE")
    assert verdict.valid, verdict.problems
    assert verdict.heading == "INT. HARBOUR MASTER'S OFFICE - NIGHT" and verdict.headings == 1
    assert verdict.cues == ("MAYA", "COLE", "OFFICER REYES") and verdict.dialogue_blocks == 8
    assert (verdict.unknown_speakers, verdict.loops, verdict.looping) == ((), (), False)


def test_a_heading_named_after_a_character_fails_for_the_heading():
    verdict = judge(GOOD_SCENE.replace("HARBOUR MASTER'S OFFICE", "RHEA"), "MAYA", "COLE", cast=["Rhea"])
    assert verdict.problems == ("the heading's place “RHEA” is a character's name (RHEA), not a place",)
    speaking = judge(GOOD_SCENE.replace("HARBOUR MASTER'S OFFICE", "MAYA"), "MAYA", "COLE")
    assert not speaking.valid and "is a character's name (MAYA)" in speaking.problems[0]


def test_a_possessive_place_is_a_place():
    assert judge(GOOD_SCENE.replace("HARBOUR MASTER'S OFFICE", "MAYA'S KITCHEN"), "MAYA", "COLE").valid


def test_a_missing_or_second_heading_fails():
    assert judge(GOOD_SCENE.split("\n", 2)[2], "MAYA", "COLE").problems[0].startswith("there is no scene heading")
    twice = GOOD_SCENE.replace("Officer Reyes leans", "EXT. PIER - NIGHT\n\nOfficer Reyes leans")
    assert "2 scene headings: one scene has one" in judge(twice, "MAYA", "COLE").problems


def test_a_requested_character_who_never_speaks_is_named():
    verdict = judge(GOOD_SCENE, "MAYA", "COLE", "Tobias")
    assert verdict.missing_characters == ("TOBIAS",) and "TOBIAS never speaks" in verdict.problems


def test_an_unrequested_speaker_passes_only_when_introduced_in_the_action():
    assert judge(GOOD_SCENE, "MAYA", "COLE").valid  # "Officer Reyes leans in ..." comes before REYES speaks
    unintroduced = judge(GOOD_SCENE.replace("Officer Reyes leans in", "Someone leans in"), "MAYA", "COLE")
    assert not unintroduced.valid and unintroduced.unknown_speakers == ("OFFICER REYES",)
    assert "OFFICER REYES speaks without being asked for or introduced in the action" in unintroduced.problems
    assert judge(GOOD_SCENE.replace("Officer Reyes leans in", "Someone leans in"), "MAYA", "COLE",
                 cast=["Officer Reyes"]).valid  # a character the room knows needs no introduction


def test_more_new_speakers_than_the_bound_fail():
    verdict = judge(GOOD_SCENE, "MAYA", "COLE", bounds=SceneBounds(max_speakers_unrequested=0))
    assert "1 speakers nobody asked for (OFFICER REYES); at most 0" in verdict.problems


def test_with_nothing_requested_any_name_may_speak_but_a_sentence_may_not():
    assert judge(GOOD_SCENE).valid
    shouted = GOOD_SCENE.replace("OFFICER REYES\n", "THERE IS NO ONE\n")
    verdict = judge(shouted)
    assert verdict.unknown_speakers == ("THERE IS NO ONE",) and not verdict.valid


def test_a_cue_with_nothing_to_say_fails():
    verdict = judge(GOOD_SCENE.replace("COLE\nThen we are done talking.", "COLE\n(shrugs)"), "MAYA", "COLE")
    assert "“COLE” stands alone with no line to say" in verdict.problems


def test_a_line_said_again_and_again_is_a_loop():
    echoed = GOOD_SCENE.replace("No. Now we start.", "Then we are done talking.")  # COLE said it first
    verdict = judge(echoed, "MAYA", "COLE")
    assert verdict.looping and verdict.loops == ("Then we are done talking.",)
    assert "the line “Then we are done talking.” repeats 2 times" in verdict.problems
    # a short line twice, or three times, is how people talk; the fourth time it is a loop
    short = GOOD_SCENE.replace("Long enough to sink it?", "No.").replace("No. Now we start.", "No.")
    assert judge(short, "MAYA", "COLE").valid
    assert judge(short.replace("Coast guard found the wreck. Empty.", "No.\nNo."), "MAYA", "COLE").loops == ("No.",)


def test_a_phrase_that_stutters_inside_one_line_is_a_loop():
    verdict = judge(GOOD_SCENE.replace("Empty.", "Empty and gone, empty and gone, empty and gone."),
                    "MAYA", "COLE")
    assert verdict.looping and "“Empty and gone, empty and gone, empty and gone” repeats itself inside one line" \
        in verdict.problems


def test_one_speaker_back_to_back_is_a_loop_but_a_speech_broken_by_action_is_not():
    back_to_back = GOOD_SCENE.replace("MAYA\nNo. Now we start.",
                                      "MAYA\nNo.\n\nMAYA\nNow we start.\n\nMAYA\nTonight.")
    verdict = judge(back_to_back, "MAYA", "COLE")
    assert "MAYA speaks 3 times in a row" in verdict.problems and "MAYA ×3" in verdict.loops
    broken = GOOD_SCENE.replace("MAYA\nNo. Now we start.",
                                "MAYA\nNo.\n\nShe pockets the key.\n\nMAYA\nNow we start.\n\nCole stands.\n\nMAYA\nTonight.")
    assert judge(broken, "MAYA", "COLE").valid


def test_shouting_and_overlong_lines_fail_but_a_sign_in_capitals_does_not():
    shouted = judge(GOOD_SCENE.replace("It was, for a while.", "YOURS ARE NOT HERE"), "MAYA", "COLE")
    assert shouted.problems == ("1 line in capitals read as shouting, not writing: “YOURS ARE NOT HERE”",)
    sign = GOOD_SCENE.replace("Rain hammers the window.", 'A sign on the door reads\n\n"NO ENTRY AFTER DARK"\n\nRain.')
    assert judge(sign, "MAYA", "COLE").valid
    long_line = judge(GOOD_SCENE.replace("Empty.", "Empty. " * 70), "MAYA", "COLE")
    assert "1 line over 400 characters" in long_line.problems


def test_a_scene_cut_off_mid_word_fails():
    verdict = judge(GOOD_SCENE.replace("No. Now we start.", "No. Now we start. I’"), "MAYA", "COLE")
    assert verdict.problems == ("the last line stops mid-sentence: “No. Now we start. I’”",)


def test_length_outside_the_bounds_fails():
    assert "only 8 speeches; a scene needs at least 10" in judge(
        GOOD_SCENE, "MAYA", "COLE", bounds=SceneBounds(min_dialogue_blocks=10)).problems
    too_long = judge(GOOD_SCENE, "MAYA", "COLE", bounds=SceneBounds(max_dialogue_blocks=5, max_words=50))
    assert "8 speeches; at most 5 in one scene" in too_long.problems
    assert any(problem.endswith("words; at most 50 in one scene") for problem in too_long.problems)


def test_the_verdict_round_trips_through_json_and_scores_for_picking_the_best():
    verdict = judge((BAD_SCENES / "lighthouse_the_fire.fountain").read_text(encoding="utf-8"), "AGNES", "DEPUTY MARSH")
    data = json.loads(json.dumps(verdict.as_json()))
    assert data["judge"] == "strict-v2" and set(data) == {f.name for f in fields(Verdict)} | {"judge"}
    assert Verdict.from_json(data) == verdict
    good = judge(GOOD_SCENE, "MAYA", "COLE")
    assert max([verdict, good], key=lambda v: v.score) is good
    assert judge(GOOD_SCENE, "MAYA", "COLE", "TOBIAS").score > verdict.score  # one fault beats five


def test_the_word_lists_are_data_checked_as_read():
    assert {"you're", "the", "there", "since", "after"} <= judge_words().not_name_words
    with pytest.raises(TypeError, match="judge"):
        parse_judge_words({})
    with pytest.raises(ValueError, match="THE"):
        parse_judge_words({"judge": {"not_name_words": "THE", "place_words": "of"}})


# -- real scenes pass -----------------------------------------------------------------------


def speakers(text: str) -> Counter:
    """Speeches per speaker (a cue with dialogue under it, parentheticals allowed between)."""
    elements = parse_elements(text)
    counts: Counter = Counter()
    for index, element in enumerate(elements):
        if element.kind == CHARACTER:
            following = next((el for el in elements[index + 1:] if el.kind != PARENTHETICAL), None)
            counts[" ".join(element.text.upper().split())] += bool(following and following.kind == DIALOGUE)
    return +counts


def judge_real(text: str) -> Verdict | None:
    """The calibration: the two most frequent speakers requested, everyone else the cast."""
    counts = speakers(text)
    if sum(counts.values()) < 4:
        return None
    requested = [name for name, _ in counts.most_common(2)]
    return judge_scene(text, requested=requested, cast=[name for name in counts if name not in requested])


def real_screenplay_scenes() -> list[str]:
    """Each scene of the bundled public-domain screenplays, split at its heading, and the excerpts the
    training corpus cuts from them (training.corpus_scenes)."""
    from training.corpus_scenes import corpus_scenes

    screenplays = bundled_corpus_dir() / "screenplays"
    scenes = []
    for path in sorted(screenplays.rglob("*.fountain")):
        scenes += [scene.text() for scene in group_scenes(parse_elements(path.read_text(encoding="utf-8")))
                   if scene.heading]
    return scenes + [scene.text for scene in corpus_scenes(screenplays)]


def test_real_screenplay_scenes_pass():
    verdicts = [verdict for text in real_screenplay_scenes() if (verdict := judge_real(text))]
    passed = sum(verdict.valid for verdict in verdicts)
    assert len(verdicts) > 20
    assert passed / len(verdicts) >= 0.85, [verdict.problems for verdict in verdicts if not verdict.valid]
    # measured: 21 of 23 (91%); the 65-speech Gettysburg debate is over the length bound, as it should be


def test_real_play_dialogue_passes(tmp_path):
    """Every fourth bundled American play, cut into headed excerpts as the training corpus cuts them."""
    from training.corpus_scenes import corpus_scenes

    for play in sorted((bundled_corpus_dir() / "plays" / "amdracor").glob("*.xml"))[::4]:
        shutil.copy(play, tmp_path)
    verdicts = [verdict for scene in corpus_scenes(tmp_path) if (verdict := judge_real(scene.text))]
    assert len(verdicts) > 400
    assert sum(verdict.valid for verdict in verdicts) / len(verdicts) >= 0.85  # measured: 440 of 498 (88%)
    # most of the rest are prose speeches longer than a screenplay line (SceneBounds.max_line_chars)
    within_line_bound = [v for v in verdicts if not any("characters" in problem for problem in v.problems)]
    assert sum(verdict.valid for verdict in within_line_bound) / len(within_line_bound) >= 0.95  # measured: 98%


def test_a_line_bent_and_said_again_and_sentences_on_one_opening_are_loops():
    """What Qwen2.5-Coder-0.5B wrote under the scene grammar: the guards forbid exact repeats,
    so a stuck model bends them, or opens every sentence the same way."""
    bent = ("INT. CELLAR - NIGHT\n\nLUCIEN\nWe must find a way to stop him.\n\nMRS. HARROW\nWe must find a way "
            "to stop him now.\n\nLUCIEN\nWe must find a way to stop them.\n\nMRS. HARROW\nThen let us go.")
    verdict = judge_scene(bent, requested=("LUCIEN", "MRS. HARROW"))
    assert not verdict.valid and verdict.looping
    assert any("a third time" in problem for problem in verdict.problems)
    must = ("INT. CELLAR - NIGHT\n\nLUCIEN\nHe must pay. He must confess. He must leave.\n\nMRS. HARROW\n"
            "He must not. He must stay here.\n\nLUCIEN\nHe must go to hell.\n\nMRS. HARROW\nHe must be forgiven.")
    verdict = judge_scene(must, requested=("LUCIEN", "MRS. HARROW"))
    assert not verdict.valid and any("open on “he must …”" in problem for problem in verdict.problems)
    gag_twice = ("INT. STUDIO - DAY\n\nBOB\nApplause and his score goes up.\n\nMARGARET\nWhat was that?\n\n"
                 "BOB\nApplause and her score goes up.\n\nMARGARET\nStop that.")
    assert judge_scene(gag_twice, requested=("BOB", "MARGARET")).valid  # a gag comes back once

from __future__ import annotations

from dataclasses import replace

from emulators.core_services import LIBRARY
from screenplay.prompting import (
    build_messages,
    normalize_fountain,
    parse_dialogue_request,
)


def test_characters_and_tone_are_pulled_out_of_the_situation():
    request = parse_dialogue_request("a heist goes wrong in a bakery characters: Ann, Bo and Cy tone: farce")
    assert request.situation == "a heist goes wrong in a bakery"
    assert request.characters == ("ANN", "BO", "CY")
    assert request.tone == "farce"


def test_tone_before_characters_also_works():
    request = parse_dialogue_request("two astronauts argue tone: quiet dread Characters: Lee, Ola")
    assert (request.situation, request.characters, request.tone) == ("two astronauts argue", ("LEE", "OLA"), "quiet dread")


def test_plain_situation_has_no_characters_or_tone():
    request = parse_dialogue_request("a detective corners her former partner in a rainy alley")
    assert request.characters == () and request.tone == ""


def test_messages_show_the_format_by_example_and_cite_exemplars():
    request = parse_dialogue_request("a robot learns to lie characters: Bob")
    messages = build_messages(request, LIBRARY[:1], exemplar_chars=600)
    assert [message["role"] for message in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"].startswith("EXT. FARMHOUSE PORCH - DAY")
    assert "From Cyber Bob: Episode 1" in messages[3]["content"] and "BOB boots up" in messages[3]["content"]
    assert "Characters: BOB" in messages[3]["content"]


def test_exemplars_are_cut_to_the_limit_at_a_line_break():
    long_scene = "\n".join(f"LINE {number} of a very long scene" for number in range(40))
    hit = replace(LIBRARY[0], scene=replace(LIBRARY[0].scene, text=long_scene))
    content = build_messages(parse_dialogue_request("x"), [hit], exemplar_chars=100)[3]["content"]
    assert "LINE 2 of a very long scene" in content and "LINE 3 " not in content


def test_name_colon_lines_become_cues_and_dialogue():
    text = normalize_fountain("INT. BAR - NIGHT\n\nMaya: You lied to me.\nCole: I had to.")
    assert text == "INT. BAR - NIGHT\n\nMAYA\nYou lied to me.\n\nCOLE\nI had to."


def test_a_line_cut_off_by_the_token_limit_is_dropped():
    text = normalize_fountain("INT. BAR - NIGHT\n\nMAYA\nYou lied to me about the money.\n\nCOLE\nI had to because the")
    assert text.endswith("You lied to me about the money.")


def test_prefill_opens_the_answer_with_a_derived_heading_and_the_first_cue():
    from screenplay.prompting import build_prefill

    request = parse_dialogue_request("a detective corners her partner in a rainy alley at night characters: Maya, Cole")
    assert build_prefill(request) == "EXT. RAINY ALLEY - NIGHT\n\nMAYA\n"
    assert build_prefill(parse_dialogue_request("a heist goes wrong in a bakery")) == "INT. BAKERY - DAY\n\n"
    assert build_prefill(request, "INT. VAN - DAY") == "INT. VAN - DAY\n\nMAYA\n"


def test_without_a_place_only_the_heading_form_is_prefilled():
    from screenplay.prompting import HEADING_PREFILL, build_prefill

    assert build_prefill(parse_dialogue_request("two people disagree about everything characters: Al, Bo")) == HEADING_PREFILL


def test_the_model_heading_is_cleaned_or_refused():
    from screenplay.prompting import heading_from_completion

    assert heading_from_completion(" KITCHEN - NIGHT\n\nMAYA\nHi.", "x") == "INT. KITCHEN - NIGHT"
    assert heading_from_completion(" LOCKER ROOM, HALFTIME", "at midnight") == "INT. LOCKER ROOM - NIGHT"
    assert heading_from_completion(" The bank had been attacked by thieves", "x") is None
    assert heading_from_completion(" --", "x") is None


def test_prefill_and_continuation_are_joined_once():
    from screenplay.prompting import join_prefill, with_prefill

    prefill = "INT. BAR - DAY\n\nMAYA\n"
    assert join_prefill(prefill, "You lied.\n\nCOLE\nI had to.") == "INT. BAR - DAY\n\nMAYA\nYou lied.\n\nCOLE\nI had to."
    assert join_prefill("INT.", " KITCHEN - NIGHT") == "INT. KITCHEN - NIGHT"
    # a server that ignored continue_final_message answered afresh with its own heading
    assert join_prefill(prefill, "EXT. ALLEY - NIGHT\n\nCOLE\nHi.") == "EXT. ALLEY - NIGHT\n\nCOLE\nHi."
    messages = build_messages(parse_dialogue_request("x"), [], exemplar_chars=100)
    assert with_prefill(messages, prefill)[-1] == {"role": "assistant", "content": prefill}
    assert with_prefill(messages, "") == messages


def test_training_prompts_can_leave_out_the_worked_example():
    from screenplay.prompting import (
        build_messages,
        load_template,
        parse_dialogue_request,
    )

    request = parse_dialogue_request("two sisters argue in a kitchen characters: June, Rose")
    example = load_template()["example_scene"]
    with_example = build_messages(request, [], exemplar_chars=600)
    without = build_messages(request, [], exemplar_chars=600, worked_example=False)
    assert any(m["content"] == example for m in with_example)
    assert [m["role"] for m in without] == ["system", "user"] and "JUNE" in without[-1]["content"].upper()

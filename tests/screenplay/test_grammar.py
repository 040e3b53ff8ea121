"""The scene grammar: what decoding under it can and cannot write, checked byte by byte with
llguidance (the library the backend decodes with) over a real BPE tokenizer."""

from __future__ import annotations

import pytest

from screenplay.grammar import SceneShape, cast_grammar, names_from_cast, parse_scene, render_fountain
from screenplay.prompting import parse_dialogue_request

GOOD = """INT. LIGHTHOUSE - NIGHT

AGNES sits by the lamp, counting the seconds between flashes.

AGNES
I won't leave.

DEPUTY MARSH
(pleading)
You have to. The water is rising.

AGNES
This light has kept ships safe for forty years.

DEPUTY MARSH
Then I'll stay too.

"""
LIGHTHOUSE = parse_dialogue_request(
    "a lighthouse keeper refuses to leave as the storm surge rises characters: Agnes, Deputy Marsh tone: stubborn")
NOT_NAMES = frozenset({"THE", "IS", "YOU'RE", "THIS", "AFTER"})


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    import llguidance.hf
    from transformers import AutoTokenizer

    from tests.support.tiny_lm import build_tiny_chat_model

    hf = AutoTokenizer.from_pretrained(build_tiny_chat_model(tmp_path_factory.mktemp("tiny-lm")))
    return hf, llguidance.hf.from_tokenizer(hf)


def decode_under(tokenizer, shape: SceneShape, text: str) -> tuple[bool, bool]:
    """(every token of ``text`` allowed, the grammar may end here)."""
    import llguidance

    hf, ll = tokenizer
    grammar = llguidance.LLMatcher.grammar_from_lark(shape.lark())
    assert llguidance.LLMatcher.validate_grammar(grammar, ll) == ""
    matcher = llguidance.LLMatcher(ll, grammar, log_level=0)
    for token in hf.encode(text, add_special_tokens=False):
        if not matcher.consume_token(token):
            return False, False
    return True, matcher.is_accepting()


def lighthouse(heading: str | None = None) -> SceneShape:
    return SceneShape.for_request(LIGHTHOUSE, heading=heading, not_name_words=NOT_NAMES)


def test_a_scene_in_form_is_allowed_whole(tokenizer):
    assert decode_under(tokenizer, lighthouse(), GOOD) == (True, True)


def test_the_heading_place_cannot_be_a_character(tokenizer):
    allowed, _ = decode_under(tokenizer, lighthouse(), "INT. AGNES - NIGHT\n\n")
    assert not allowed
    allowed, _ = decode_under(tokenizer, lighthouse(), "INT. MARSH - DAY\n\n")
    assert not allowed
    assert decode_under(tokenizer, lighthouse(), "INT. AGNES'S KITCHEN - DAY\n\n")[0]


def test_shouted_lines_are_neither_cues_nor_dialogue(tokenizer):
    """The first wave's lighthouse scene: shouted sentences as speakers and as lines."""
    opening = "INT. LIGHTHOUSE - DAY\n\nAGNES\nI'm a man who has been turned upside down.\n\n"
    assert decode_under(tokenizer, lighthouse(), opening)[0]
    assert not decode_under(tokenizer, lighthouse(), opening + "YOU'RE THE SAME\n")[0]
    assert not decode_under(tokenizer, lighthouse(), opening + "DEPUTY MARSH\nYOURS ARE NOT HERE\n")[0]


def test_a_heading_names_a_place_not_a_time_or_half_a_phrase(tokenizer):
    for heading in ("EXT. NIGHT - DAY", "EXT. DAY OF THE LAST - DAY", "INT. THE - NIGHT"):
        assert not decode_under(tokenizer, lighthouse(), f"{heading}\n\n")[0], heading
    for heading in ("EXT. HOUSE OF COMMONS - DAY", "INT. THE LANTERN ROOM - NIGHT", "EXT. SEA WALL - DUSK"):
        assert decode_under(tokenizer, lighthouse(), f"{heading}\n\n")[0], heading
    sentences_out = SceneShape.for_request(LIGHTHOUSE, heading=None, sentence_words=frozenset({"is", "give"}))
    assert not decode_under(tokenizer, sentences_out, "EXT. CHURTLAND IS DEAD - DAY\n\n")[0]
    assert decode_under(tokenizer, sentences_out, "EXT. ISLAND PIER - DAY\n\n")[0]


def test_every_requested_character_speaks_before_the_scene_may_end(tokenizer):
    only_agnes = "INT. LIGHTHOUSE - DAY\n\nAGNES\nI won't leave.\n\n"
    assert decode_under(tokenizer, lighthouse(), only_agnes) == (True, False)
    # Agnes twice before Marsh has spoken breaks the first round.
    assert not decode_under(tokenizer, lighthouse(), only_agnes + "AGNES\nNever.\n\n")[0]


def test_a_scene_ends_only_after_four_speeches(tokenizer):
    three = GOOD.split("DEPUTY MARSH\nThen")[0]
    assert decode_under(tokenizer, lighthouse(), three) == (True, False)


def test_a_prefilled_heading_is_not_written_again(tokenizer):
    shape = lighthouse(heading="INT. LIGHTHOUSE - NIGHT")
    body = GOOD.split("\n\n", 1)[1]
    assert decode_under(tokenizer, shape, body) == (True, True)
    assert not decode_under(tokenizer, shape, GOOD)[0]


def test_without_requested_characters_invented_names_may_speak_but_no_sentence(tokenizer):
    shape = SceneShape.for_request(parse_dialogue_request("two strangers share an umbrella"), heading=None,
                                   not_name_words=NOT_NAMES)
    scene = ("EXT. BUS STOP - NIGHT\n\nNORA\nIs this seat taken?\n\nOLD MAN\nOnly by the rain.\n\n"
             "NORA\nThen I'll share it.\n\nOLD MAN\nSuit yourself.\n\n")
    assert decode_under(tokenizer, shape, scene) == (True, True)
    assert not decode_under(tokenizer, shape, "EXT. BUS STOP - NIGHT\n\nTHE FIRE\n")[0]
    assert not decode_under(tokenizer, shape, "EXT. BUS STOP - NIGHT\n\nSECTION 10\n")[0]


def test_names_with_punctuation_are_literal_in_the_grammar(tokenizer):
    request = parse_dialogue_request("a locksmith opens a door characters: Petra, Mr. Okafor")
    shape = SceneShape.for_request(request, heading=None, not_name_words=NOT_NAMES)
    scene = ("INT. HALLWAY - NIGHT\n\nPETRA\nStand back.\n\nMR. OKAFOR\nIs it safe?\n\n"
             "PETRA\nNothing behind a door is safe.\n\nMR. OKAFOR\n(whispering)\nOpen it anyway.\n\n")
    assert decode_under(tokenizer, shape, scene) == (True, True)
    assert not decode_under(tokenizer, shape, "INT. MR. OKAFOR - NIGHT")[0]


def test_action_is_a_sentence_not_speech_in_disguise(tokenizer):
    """What SmolLM2 wrote as "action" to slip out of the form: speech after a colon, a cue with
    its direction inline, a roll call in capitals, quoted speech."""
    opening = "INT. LIGHTHOUSE - DAY\n\n"
    for action in ("DEPUTY MARSH: You have to go.", "LISA (to RHEA) He was her brother.",
                   "REVERENDAL, KINDAJANDA, and DANIEL, ALL SHIPS.", "ALIBAIRABY ire, you are in trouble.",
                   'She says, "Go home."'):
        assert not decode_under(tokenizer, lighthouse(), f"{opening}{action}\n\n")[0], action
    for action in ("She turns to the window.", "MARSH shakes his head.", "A WAVE hits the glass.",
                   "The lamp turns... and turns."):
        assert decode_under(tokenizer, lighthouse(), f"{opening}{action}\n\n")[0], action


def test_long_lines_do_not_overwhelm_the_grammar(tokenizer):
    """Line length is the guard's to limit: a long line stays within what llguidance can lex."""
    line = "This light has kept ships off the rocks, " * 12 + "and it will not go dark tonight."
    scene = f"INT. LIGHTHOUSE - DAY\n\nThe storm is loud and the glass shakes in its frame, {'again ' * 40}now.\n\n" \
            f"AGNES\n{line}\n\n"
    assert decode_under(tokenizer, lighthouse(), scene)[0]


def test_action_opens_the_scene_and_nowhere_else(tokenizer):
    """Between speeches SmolLM2 used action as a third voice ("Marao said, what will you do?")."""
    first = "INT. LIGHTHOUSE - DAY\n\nAGNES\nI won't leave.\n\n"
    assert not decode_under(tokenizer, lighthouse(), first + "She turns to the window.\n\n")[0]


def test_a_scene_must_end_after_twelve_speeches(tokenizer):
    speeches = "".join(f"{name}\nLine number {n}.\n\n" for n, name in
                       zip(range(13), ["AGNES", "DEPUTY MARSH"] * 7))
    scene = "INT. LIGHTHOUSE - DAY\n\n" + speeches
    twelve = scene[:scene.index("AGNES\nLine number 12.")]
    assert decode_under(tokenizer, lighthouse(), twelve) == (True, True)
    assert not decode_under(tokenizer, lighthouse(), scene)[0]


def test_the_request_fields_are_vllms_structured_outputs_and_our_guard():
    fields = lighthouse().request_fields(lighthouse().guard(max_speaker_run=2, max_line_tokens=40))
    assert fields["structured_outputs"]["grammar"].startswith("start:")
    assert fields["degeneration_guard"] == {"speakers": ["AGNES", "DEPUTY MARSH"], "max_speaker_run": 2,
                                            "no_repeated_lines": True, "no_phrase_loops": True,
                                            "max_line_tokens": 40}


def test_a_scene_in_the_grammars_shape_reads_back_as_structure_and_renders_unchanged():
    scene = parse_scene(GOOD)
    assert scene is not None
    assert scene.heading == "INT. LIGHTHOUSE - NIGHT"
    assert scene.opening_action.startswith("AGNES sits")
    assert [s.character for s in scene.speeches] == ["AGNES", "DEPUTY MARSH", "AGNES", "DEPUTY MARSH"]
    assert scene.speeches[1].parenthetical == "(pleading)"
    assert render_fountain(scene) == GOOD.strip()


def test_prose_is_not_read_as_the_grammars_shape():
    assert parse_scene("Agnes looked at the sea.\nShe said nothing.\n\nThen the storm came.\n\nIt was loud.") is None
    assert parse_scene("") is None


def cast_decodes(tokenizer, grammar: str, text: str) -> tuple[bool, bool]:
    import llguidance

    hf, ll = tokenizer
    matcher = llguidance.LLMatcher(ll, llguidance.LLMatcher.grammar_from_lark(grammar), log_level=0)
    for token in hf.encode(text, add_special_tokens=False):
        if not matcher.consume_token(token):
            return False, False
    return True, matcher.is_accepting()


def test_the_model_names_the_characters_a_request_leaves_open(tokenizer):
    two = cast_grammar(2, not_name_words=NOT_NAMES)
    assert cast_decodes(tokenizer, two, " Nora, Leo") == (True, True)
    assert cast_decodes(tokenizer, two, " Nora") == (True, False)  # two names asked for
    assert not cast_decodes(tokenizer, two, " The, Leo")[0]  # a word, not a name
    assert not cast_decodes(tokenizer, two, " NORA")[0]
    one = cast_grammar(1, taken=("AGNES",), not_name_words=NOT_NAMES)
    assert cast_decodes(tokenizer, one, " Hollis") == (True, True)
    assert cast_decodes(tokenizer, one, " Agnes") == (True, False)  # already in the scene: no name yet
    assert names_from_cast(" Nora, Leo") == ("NORA", "LEO")
    assert names_from_cast("EXT. ALLEY - NIGHT\n\nMAYA, you sold us out.") == ()


def test_a_line_in_capitals_cannot_be_dialogue_but_a_short_cry_with_words_can(tokenizer):
    first = "INT. LIGHTHOUSE - DAY\n\nAGNES\n"
    assert not decode_under(tokenizer, lighthouse(), first + "AMES TO THE LORD - DAY - STORY.\n")[0]
    assert decode_under(tokenizer, lighthouse(), first + "NO! Not the lamp.\n\n")[0]
    assert decode_under(tokenizer, lighthouse(), first + "I won't.\n\n")[0]


def test_a_room_can_hold_scenes_to_fewer_speeches(tokenizer):
    # generation.max_speeches: SmolLM2 writes as many speeches as it may, so this sets length and time.
    speeches = "".join(f"{name}\nLine number {n}.\n\n" for n, name in zip(range(9), ["AGNES", "DEPUTY MARSH"] * 5))
    scene = "INT. LIGHTHOUSE - DAY\n\n" + speeches
    eight = scene[:scene.index("AGNES\nLine number 8.")]
    shorter = SceneShape.for_request(parse_dialogue_request("a keeper refuses to leave characters: Agnes, Deputy Marsh"),
                                     heading=None, max_blocks=8)
    assert decode_under(tokenizer, shorter, eight) == (True, True)
    assert not decode_under(tokenizer, shorter, scene)[0]
    assert SceneShape.for_request(parse_dialogue_request("x characters: A, B"), heading=None, max_blocks=2).max_blocks \
        == 4  # never below the judge's four speeches

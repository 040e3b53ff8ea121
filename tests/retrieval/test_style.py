"""Style analysis on a hand-counted fixture and on real bundled scripts of every kind."""

from __future__ import annotations

import json

import pytest

from retrieval.bundled import bundled_corpus_dir
from retrieval.document import (
    ACTION,
    CHARACTER,
    DIALOGUE,
    HEADING,
    PARENTHETICAL,
    Element,
    Scene,
)
from retrieval.parse.fountain import parse_fountain
from retrieval.parse.tei import parse_tei
from retrieval.style import (
    LINES_PER_PAGE,
    analyze,
    analyze_file,
    analyze_fountain,
    element_lines,
    interior_exterior,
    scene_lines,
    time_of_day,
)

CORPUS = bundled_corpus_dir()

# Counted by hand: MAYA speaks 3 times (3 + 4 + 1 words), COLE twice (6 + 2 words);
# action words 4 + 8 + 3; headings INT, EXT, EXT, INT/EXT; NIGHT, DAY, NIGHT, CONTINUOUS.
KITCHEN = """\
Title: Count Me
Author: Test

INT. KITCHEN - NIGHT

Maya stirs a pot.

MAYA
Dinner is late.

COLE (O.S.)
(shouting)
I heard you the first time.

MAYA
Then come and help.

EXT. GARDEN - DAY

Cole digs a hole under the apple tree.

COLE
Nearly done.

EXT. STREET - NIGHT

A car passes.

INT./EXT. CAR - CONTINUOUS

MAYA
Drive.
"""

TINY_TEI = b"""<?xml version="1.0" encoding="UTF-8"?>
<TEI xmlns="http://www.tei-c.org/ns/1.0">
<teiHeader><fileDesc><titleStmt><title>Tiny Play</title></titleStmt></fileDesc></teiHeader>
<text><body>
<div type="act"><head>Act I</head>
<div type="scene"><head>Scene 1</head>
<stage>A hall in the castle.</stage>
<sp who="#ann"><speaker>Ann.</speaker><p>Good morrow, sir.</p></sp>
<sp who="#ben"><speaker>Ben.</speaker><p>And to you.</p><stage>(bows)</stage><p>Fair lady.</p></sp>
<sp who="#ann"><speaker>Ann.</speaker><l>One line here</l><l>and one more</l></sp>
</div></div>
</body></text></TEI>
"""


def test_cast_line_and_word_counts_match_a_hand_count():
    report = analyze(parse_fountain(KITCHEN, path="count_me.fountain"))
    assert [(m.name, m.lines, m.words) for m in report.cast] == [("MAYA", 3, 8), ("COLE", 2, 8)]
    assert report.scenes == 4
    assert report.dialogue_words == 16 and report.action_words == 15 and report.dialogue_blocks == 5
    assert report.mean_dialogue_words == pytest.approx(3.2)
    assert report.dialogue_action_ratio == pytest.approx(16 / 15)


def test_int_ext_and_day_night_splits_come_from_headings():
    report = analyze(parse_fountain(KITCHEN))
    assert report.int_ext == {"INT": 1, "EXT": 2, "INT/EXT": 1, "other": 0}
    assert report.day_night == {"day": 1, "night": 2, "other": 1}
    assert interior_exterior("EST. CITY SKYLINE - DAWN") == "EXT" and time_of_day("EST. CITY SKYLINE - DAWN") == "day"
    assert interior_exterior("I/E. VAN - DUSK") == "INT/EXT" and time_of_day("I/E. VAN - DUSK") == "night"
    assert interior_exterior("Act 1, Scene 2") == ""


def test_page_estimate_follows_the_documented_rule():
    report = analyze(parse_fountain(KITCHEN))
    # scene 1: heading, blank, action, blank, cue+dialogue, blank, cue+paren+dialogue, blank, cue+dialogue
    assert [length.lines for length in report.scene_lengths] == [13, 6, 3, 4]
    assert report.lines == 26 and report.pages == round(26 / LINES_PER_PAGE, 1)
    assert report.longest_scene.heading == "INT. KITCHEN - NIGHT" and report.longest_scene.eighths == 2
    # wrapping: 120 characters of action are 2 lines, of dialogue 4 (35 wide)
    words = " ".join(["abcdefghi"] * 12)  # 119 characters
    assert element_lines(Element(ACTION, words)) == 2 and element_lines(Element(DIALOGUE, words)) == 4
    scene = Scene(0, "INT. X - DAY", [Element(HEADING, "INT. X - DAY"), Element(CHARACTER, "A"),
                                       Element(PARENTHETICAL, "beat"), Element(DIALOGUE, "Hi.")])
    assert scene_lines(scene) == 5


def test_tei_play_reports_na_splits_and_counts_speeches():
    report = analyze(parse_tei(TINY_TEI, path="tiny.xml"))
    assert [(m.name, m.lines, m.words) for m in report.cast] == [("ANN", 2, 9), ("BEN", 1, 5)]
    assert report.int_ext is None and report.day_night is None
    data = report.as_json()
    assert data["int_ext"] == "n/a" and data["day_night"] == "n/a"
    assert "INT/EXT: n/a" in report.as_text()


def test_real_fountain_script_splits_and_page_range():
    report = analyze_file(CORPUS / "screenplays/cyber_bob/Cyber_Bob_ep00001.fountain")
    assert report.format == "fountain"
    assert report.int_ext["INT"] == 1 and report.int_ext["EXT"] == 2
    assert report.day_night["day"] == 2 and report.day_night["night"] == 1
    assert report.cast[0].name == "BOB" and report.cast[0].lines >= report.cast[1].lines
    assert 3 <= report.pages <= 9  # 299 source lines of short Fountain lines
    guru = analyze_file(CORPUS / "screenplays/various/ASCENT_TO_GURU_PEAK.fountain")
    assert guru.cast[0].name == "YORBLEF" and 3 <= guru.pages <= 12


def test_real_tei_plays_have_cast_and_pages_but_no_headings_split():
    bianca = analyze_file(CORPUS / "plays/amdracor/alcott-bianca.xml")
    assert bianca.format == "tei" and bianca.scenes == 6
    assert bianca.int_ext is None and bianca.day_night is None
    assert {m.name for m in bianca.cast[:2]} == {"BIANCA", "HUON"}
    assert sum(m.lines for m in bianca.cast) == bianca.dialogue_blocks
    contrast = analyze_file(CORPUS / "plays/amdracor/tyler-the-contrast.xml")
    assert 40 <= contrast.pages <= 160  # a five-act comedy of ~19k words
    assert contrast.dialogue_share > 0.9


def test_formats_agree_on_the_same_scene(fixtures_dir):
    base = fixtures_dir / "screenplain-tests" / "dialogue-with-blank-line"
    reports = [analyze_file(base.with_suffix(suffix)) for suffix in (".fountain", ".fdx", ".pdf")]
    assert len({tuple(r.cast) for r in reports}) == 1
    assert len({(r.dialogue_words, r.action_words, r.lines) for r in reports}) == 1


def test_json_shape_is_stable_and_serialisable():
    data = analyze(parse_fountain(KITCHEN)).as_json()
    assert set(data) == {
        "script_id", "title", "format", "scenes", "pages", "lines", "page_rule", "cast", "dialogue_words",
        "action_words", "dialogue_action_ratio", "dialogue_share", "dialogue_blocks", "mean_dialogue_words",
        "int_ext", "day_night", "longest_scene",
    }
    assert data["title"] == "Count Me"
    assert data["cast"][0] == {"name": "MAYA", "lines": 3, "words": 8}
    assert set(data["longest_scene"]) == {"index", "heading", "lines", "words", "pages", "eighths"}
    json.dumps(data)


def test_pasted_text_that_is_not_a_screenplay_is_refused():
    with pytest.raises(ValueError, match="empty"):
        analyze_fountain("   \n")
    with pytest.raises(ValueError, match="does not read as a screenplay"):
        analyze_fountain("just some notes about the plot of our pilot episode.")
    assert analyze_fountain("BOB\nHi.\n\nALICE\nHello there.").cast[0].name in {"BOB", "ALICE"}

"""Screenplays laid out as plain text, and how a .txt is told apart (screenplay text,
Gutenberg play, Fountain, or not a script)."""

from __future__ import annotations

import pytest

from retrieval.document import (
    CENTERED,
    CHARACTER,
    DIALOGUE,
    PARENTHETICAL,
    TRANSITION,
)
from retrieval.parse import NotAScript, detect_format, parse_file

LAID_OUT = """\
                              THE LONG NIGHT

                                Written by

                                Ada Quill
\f
FADE IN:

INT. DINER - NIGHT

Rain on the glass. MAYA (30s) slides into a booth.

                         MAYA (V.O.)
               I never meant to stay.

                         COOK
                    (not looking up,
                     wiping a glass)
               Nobody does.
               Coffee?

                         MAYA
               Black.

               And the check.

                                                            CUT TO:
\f                                                               2.

12   EXT. ROOF - DAWN                                               12

                         MAYA
               One more thing, before the
               sun comes up.
                         (MORE)
\f                                                               3.
                         MAYA (CONT'D)
               I kept the keys.

                    BOB                         MAYA
               Hey!                        Hello!

                              THE END
"""


def test_laid_out_screenplay_text(tmp_path):
    path = tmp_path / "long-night.txt"
    path.write_text(LAID_OUT, encoding="utf-8")
    assert detect_format(path, path.read_bytes()) == "screenplay-text"
    script = parse_file(path)
    assert (script.title, script.authors, script.format) == ("THE LONG NIGHT", ["Ada Quill"], "screenplay-text")
    assert [s.heading for s in script.scenes] == ["", "INT. DINER - NIGHT", "EXT. ROOF - DAWN"]
    diner = [(e.kind, e.text, e.extension) for e in script.scenes[1].elements[1:]]
    assert diner == [
        ("action", "Rain on the glass. MAYA (30s) slides into a booth.", ""),
        (CHARACTER, "MAYA", "V.O."),
        (DIALOGUE, "I never meant to stay.", ""),
        (CHARACTER, "COOK", ""),
        (PARENTHETICAL, "not looking up, wiping a glass", ""),  # wrapped over two lines
        (DIALOGUE, "Nobody does.\nCoffee?", ""),
        (CHARACTER, "MAYA", ""),
        (DIALOGUE, "Black.\n\nAnd the check.", ""),  # a speech goes on past a blank line
        (TRANSITION, "CUT TO:", ""),
    ]
    roof = script.scenes[2]
    assert roof.elements[0].number == "12"
    assert [(e.kind, e.text, e.dual) for e in roof.elements[1:]] == [
        (CHARACTER, "MAYA", False),
        (DIALOGUE, "One more thing, before the\nsun comes up.\n\nI kept the keys.", False),  # (MORE)/CONT'D joined
        (CHARACTER, "BOB", True), (DIALOGUE, "Hey!", False),
        (CHARACTER, "MAYA", True), (DIALOGUE, "Hello!", False),
        (CENTERED, "THE END", False),
    ]
    assert "MORE" not in roof.text() and "3." not in roof.text()


def test_scene_text_of_a_laid_out_script_reads_as_a_screenplay(tmp_path):
    path = tmp_path / "long-night.txt"
    path.write_text(LAID_OUT, encoding="utf-8")
    scene = parse_file(path).scenes[1]
    assert scene.text().startswith("INT. DINER - NIGHT\n\nRain on the glass.")
    assert "COOK\n(not looking up, wiping a glass)\nNobody does.\nCoffee?" in scene.text()


FOUNTAIN_TXT = "Title: Plain\n\nINT. ROOM - DAY\n\nBOB\nHi.\n\nALICE\nHello.\n"
PROSE = "Meeting notes, 3 March.\n\nWe agreed to cut the diner scene and move the reveal to act two.\nNext: table read.\n"
PLAY = """THE MINI PLAY

by Ada Quill

ACT I.

SCENE 1. A garret.

[Enter TOM and NELL.]

TOM.
The rent is due tonight.

NELL.
Then we sing.

TOM.
Until the landlord sleeps?

NELL.
Until he wakes.

""" + "".join(f"\n{who}.\nLine {i} of the quarrel.\n" for i, who in enumerate(["TOM", "NELL"] * 4))


@pytest.mark.parametrize(
    "text, expected",
    [(LAID_OUT, "screenplay-text"), (FOUNTAIN_TXT, "fountain"), (PLAY, "gutenberg"), (PROSE, "not-a-script"),
     ("INT. KITCHEN - DAY\n\nThe kettle screams.\n", "fountain")],
)
def test_detect_format_for_txt(tmp_path, text, expected):
    path = tmp_path / "x.txt"
    path.write_text(text, encoding="utf-8")
    assert detect_format(path, path.read_bytes()) == expected


def test_fountain_markup_wins_over_indentation(tmp_path):
    # indented cues are legal Fountain; a [[note]] says the file is Fountain, not a print-out
    text = "INT. ROOM - DAY\n\n[[check this]]\n\n" + "\n\n".join(f"          BOB\n     Line {i}." for i in range(4)) + "\n"
    path = tmp_path / "indented.txt"
    path.write_text(text, encoding="utf-8")
    assert detect_format(path, path.read_bytes()) == "fountain"


def test_prose_txt_is_not_a_script(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(PROSE, encoding="utf-8")
    with pytest.raises(NotAScript, match="neither a screenplay nor a play"):
        parse_file(path)

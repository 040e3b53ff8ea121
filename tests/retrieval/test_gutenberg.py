"""Gutenberg plain-text plays: two Shakespeare texts shipped as fixtures, and the
variants other editions use (abbreviated speakers, inline speakers, licence boilerplate)."""

from __future__ import annotations

import pytest

from retrieval.document import ACTION, CHARACTER, DIALOGUE, HEADING, PARENTHETICAL
from retrieval.parse import detect_format, parse_file
from retrieval.parse.gutenberg import strip_boilerplate


@pytest.fixture(scope="module")
def comedy(fixtures_dir):
    return parse_file(fixtures_dir / "gutenberg" / "comedy_of_errors_gut.txt")


@pytest.fixture(scope="module")
def dream(fixtures_dir):
    return parse_file(fixtures_dir / "gutenberg" / "midsummer_nights_dream_gut.txt")


def test_shakespeare_texts_are_detected_as_plays(fixtures_dir):
    for path in sorted((fixtures_dir / "gutenberg").glob("*.txt")):
        assert detect_format(path, path.read_bytes()) == "gutenberg", path.name


def test_comedy_of_errors_title_scenes_and_speeches(comedy):
    assert (comedy.title, comedy.authors, comedy.format) == ("THE COMEDY OF ERRORS", ["William Shakespeare"], "gutenberg")
    assert len(comedy.scenes) == 11  # five acts, 2+2+2+4+1 scenes; the cast list is not a scene
    assert comedy.scenes[0].heading == "ACT I, SCENE 1. A hall in the DUKE'S palace."
    assert comedy.scenes[-1].heading == "ACT V, SCENE 1. The same."
    first = [(e.kind, e.text.split("\n")[0]) for e in comedy.scenes[0].elements[:6]]
    assert first == [
        (HEADING, "ACT I, SCENE 1. A hall in the DUKE'S palace."),
        (ACTION, "Enter the DUKE, AEGEON, GAOLER, OFFICERS, and other ATTENDANTS."),
        (CHARACTER, "AEGEON"),
        (DIALOGUE, "Proceed, Solinus, to procure my fall,"),
        (CHARACTER, "DUKE"),
        (DIALOGUE, "Merchant of Syracuse, plead no more;"),
    ]
    speakers = {c for s in comedy.scenes for c in s.characters}
    assert {"AEGEON", "DUKE", "ADRIANA", "LUCIANA", "DROMIO OF SYRACUSE", "ANTIPHOLUS OF EPHESUS"} <= speakers
    assert not any(c.startswith(("ACT", "SCENE")) for c in speakers)


def test_midsummer_speaker_lines_without_periods_and_indented_verse(dream):
    assert dream.title == "A MIDSUMMER NIGHT'S DREAM"
    scene = dream.scenes[0]
    assert scene.heading == "ACT I, SCENE I. Athens. A room in the Palace of THESEUS."
    assert scene.characters[:2] == ("THESEUS", "HIPPOLYTA")
    text = scene.text()
    # the half line indented under THESEUS is his verse; the speech resumes after the exit
    assert "THESEUS\nGo, Philostrate,\nStir up the Athenian youth" in text
    assert "Exit PHILOSTRATE.\n\nTHESEUS\nHippolyta, I woo'd thee with my sword," in text
    speakers = {c for s in dream.scenes for c in s.characters}
    assert {"BOTTOM", "PUCK", "OBERON", "TITANIA", "PROLOGUE"} <= speakers  # Prologue speaks in Act V


EDITION = """The Project Gutenberg EBook of The Mini Play, by Ada Quill

Title: The Mini Play
Author: Ada Quill

*** START OF THIS PROJECT GUTENBERG EBOOK THE MINI PLAY ***

THE MINI PLAY

ACT I. SCENE I. A garret.

        Enter Tom and Nell.

Tom.
The rent is due tonight.
[Aside.]
And I have nothing.

Nell.
Then we sing.

Tom.
Until the landlord sleeps?

NELL. Until he wakes, and then we sing again.

Tom.
Farewell.

Nell.
Farewell.
        Exeunt.

*** END OF THIS PROJECT GUTENBERG EBOOK THE MINI PLAY ***

This file should be named mini.txt. Lots of licence text follows.
NELL.
Not part of the play.
"""


def test_boilerplate_abbreviated_and_inline_speakers(tmp_path):
    path = tmp_path / "mini.txt"
    path.write_text(EDITION, encoding="utf-8")
    assert "licence text" not in strip_boilerplate(EDITION)
    play = parse_file(path)
    assert (play.title, play.authors) == ("The Mini Play", ["Ada Quill"])  # from the Gutenberg header
    assert [s.heading for s in play.scenes] == ["ACT I, SCENE I. A garret."]
    got = [(e.kind, e.text) for e in play.scenes[0].elements[1:]]
    assert got == [
        (ACTION, "Enter Tom and Nell."),
        (CHARACTER, "TOM"), (DIALOGUE, "The rent is due tonight."), (PARENTHETICAL, "Aside."), (DIALOGUE, "And I have nothing."),
        (CHARACTER, "NELL"), (DIALOGUE, "Then we sing."),
        (CHARACTER, "TOM"), (DIALOGUE, "Until the landlord sleeps?"),
        (CHARACTER, "NELL"), (DIALOGUE, "Until he wakes, and then we sing again."),
        (CHARACTER, "TOM"), (DIALOGUE, "Farewell."),
        (CHARACTER, "NELL"), (DIALOGUE, "Farewell."),
        (ACTION, "Exeunt."),
    ]

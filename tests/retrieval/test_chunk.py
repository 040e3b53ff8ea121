"""Chunking: short scenes stay whole, long ones become overlapping windows that fit the model."""

from __future__ import annotations

import pytest

from retrieval.bundled import bundled_corpus_dir
from retrieval.chunk import chunk_script, parse_heading, split_words
from retrieval.document import ACTION, CHARACTER, DIALOGUE, Element, Scene, Script
from retrieval.parse import parse_file


def script_with(words: int) -> Script:
    line = " ".join(f"w{i}" for i in range(words))
    scene = Scene(
        index=3,
        heading="INT. LIGHTHOUSE - NIGHT",
        elements=[Element(ACTION, line), Element(CHARACTER, "KEEPER"), Element(DIALOGUE, "Lights out.")],
        characters=("KEEPER",),
    )
    return Script(script_id="lh", title="Lighthouse", scenes=[scene])


def test_short_scene_is_one_chunk_with_heading_facts():
    chunks = chunk_script(script_with(50))
    assert len(chunks) == 1
    c = chunks[0]
    assert (c.chunk_id, c.scene_id, c.location, c.time_of_day, c.title) == ("lh#3.0", "lh#3", "LIGHTHOUSE", "NIGHT", "Lighthouse")
    assert c.characters == ("KEEPER",)
    assert c.text == c.scene_text and c.text.startswith("INT. LIGHTHOUSE - NIGHT\n\nw0 w1")


def test_long_scene_windows_overlap_and_cover_every_word():
    chunks = chunk_script(script_with(500), max_words=200, overlap=40)
    assert [c.chunk_id for c in chunks] == ["lh#3.0", "lh#3.1", "lh#3.2"]
    bodies = [c.text.split("\n\n", 1)[1] if i else c.text for i, c in enumerate(chunks)]
    assert all(len(b.split()) <= 200 for b in bodies)
    assert all(c.text.startswith("INT. LIGHTHOUSE - NIGHT") for c in chunks)  # each window says where it is
    words = [w for b in bodies for w in b.split()]
    assert {"w0", "w250", "w499", "Lights", "out."} <= set(words)
    first, second = bodies[0].split(), bodies[1].split()
    assert first[-40:] == second[:40]  # the overlap


def test_split_words_keeps_line_breaks():
    text = "A\nB C\n\nD E F"
    assert split_words(text, max_words=4, overlap=1) == ["A\nB C\n\nD", "D E F"]
    with pytest.raises(ValueError):
        chunk_script(script_with(10), max_words=10, overlap=10)


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("INT. KITCHEN - NIGHT", ("KITCHEN", "NIGHT")),
        ("EXT. MOUNT GURU FOOTHILLS--DAY", ("MOUNT GURU FOOTHILLS", "DAY")),
        ("INT./EXT. CAR - MOVING - DUSK", ("CAR - MOVING", "DUSK")),
        ("I/E HOUSE", ("HOUSE", "")),
        ("INT - HOUSE - DAY", ("HOUSE", "DAY")),
        ("ACT I, Scene 2", ("", "")),
        ("INTERIOR DESIGN SHOW", ("", "")),
    ],
)
def test_parse_heading(heading, expected):
    assert parse_heading(heading) == expected


def test_every_bundled_chunk_fits_the_window():
    play = parse_file(bundled_corpus_dir() / "plays" / "amdracor" / "crothers-the-rector.xml")
    chunks = chunk_script(play)
    assert len(play.scenes) == 1 and len(chunks) > 20  # a one-act play is one long scene
    assert max(len(c.text.split()) for c in chunks) <= 200 + len(play.scenes[0].heading.split())
    assert len(set(c.chunk_id for c in chunks)) == len(chunks)

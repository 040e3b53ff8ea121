"""DraCor TEI plays: metadata, scene division, speeches, and refusal of hostile XML."""

from __future__ import annotations

import pytest

from retrieval.bundled import bundled_corpus_dir
from retrieval.document import ACTION, CHARACTER, DIALOGUE, PARENTHETICAL
from retrieval.parse import ParseError, parse_file

PLAYS = bundled_corpus_dir() / "plays"

MINI_TEI = """<?xml version="1.0" encoding="UTF-8"?>
<TEI xmlns="http://www.tei-c.org/ns/1.0" xml:id="mini001" xml:lang="en">
  <teiHeader><fileDesc><titleStmt>
    <title type="main">The Mini Play</title><title type="sub">A Test</title>
    <author><persName><forename>Ada</forename><surname>Quill</surname></persName><idno type="wikidata">Q1</idno></author>
  </titleStmt><publicationStmt><availability><licence target="https://creativecommons.org/publicdomain/zero/1.0/">CC0 1.0</licence></availability></publicationStmt></fileDesc>
  <profileDesc><particDesc><listPerson><person xml:id="nell"><persName>Nell</persName></person></listPerson></particDesc>
  <textClass><keywords><term type="genreTitle">Farce</term></keywords></textClass></profileDesc></teiHeader>
  <text><body>
    <div type="act"><head>ACT I.</head>
      <sp who="#nell"><speaker>Nell.</speaker><p>A prologue before any scene.</p></sp>
      <div type="scene"><head>Scene</head>
        <stage>A garret. Rain on the skylight.</stage>
        <sp who="#tom"><speaker>Tom.</speaker><stage>(aside)</stage><p>The rent is due <pb n="4"/>tonight.<fw type="header">THE MINI PLAY</fw></p></sp>
        <sp who="#nell"><l>Then we sing</l><l>until the landlord sleeps.</l></sp>
      </div>
      <div type="scene"><head>II.</head><sp who="#tom"><speaker>Tom</speaker><p>Morning.</p></sp></div>
      <div type="scene"><head>Stage only</head><stage>Nobody speaks here.</stage></div>
    </div>
  </body></text>
</TEI>
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_play_metadata_and_first_scene():
    play = parse_file(PLAYS / "amdracor" / "tyler-the-contrast.xml")
    assert (play.script_id, play.title, play.authors) == ("am000716", "The Contrast", ["Royall Tyler"])
    assert (play.language, play.licence, play.format) == ("en", "CC0 1.0", "tei")
    assert play.metadata["genre"] == "Comedy"
    first = play.scenes[0]
    assert first.heading == "ACT I, Scene 1"
    assert play.scenes[1].heading == "ACT I, SCENE II"
    assert first.characters[:2] == ("LETITIA", "CHARLOTTE")
    kinds = [(e.kind, e.text[:30]) for e in first.elements[:4]]
    assert kinds == [
        (ACTION, "Scene, an Apartment at Charlot"),
        (ACTION, "Charlotte and Letitia discover"),
        (CHARACTER, "LETITIA"),
        (DIALOGUE, "And so, Charlotte, you really "),
    ]


def test_non_english_play_keeps_language_and_headings():
    play = parse_file(PLAYS / "dracor" / "gogol-revizor.xml")
    assert play.language == "ru"
    assert play.title == "Ревизор"
    assert play.scenes[0].heading == "Действие первое, Явление I"
    assert "ГОРОДНИЧИЙ" in play.scenes[0].characters


def test_innermost_divisions_become_scenes(tmp_path):
    play = parse_file(write(tmp_path, "mini.xml", MINI_TEI))
    assert (play.script_id, play.title, play.authors, play.metadata) == ("mini001", "The Mini Play", ["Ada Quill"], {"genre": "Farce"})
    # the act's own prologue, then each scene holding speeches; the stage-only division is not a scene
    assert [s.heading for s in play.scenes] == ["ACT I", "ACT I, Scene 1", "ACT I, Scene II"]
    garret = play.scenes[1]
    assert [(e.kind, e.text) for e in garret.elements] == [
        (ACTION, "A garret. Rain on the skylight."),
        (CHARACTER, "TOM"),
        (PARENTHETICAL, "aside"),
        (DIALOGUE, "The rent is due tonight."),  # page break and running head dropped
        (CHARACTER, "NELL"),  # no <speaker>: name from the cast list
        (DIALOGUE, "Then we sing\nuntil the landlord sleeps."),
    ]
    assert garret.text().startswith("ACT I, Scene 1\n\nA garret. Rain on the skylight.\n\nTOM\n(aside)\nThe rent is due tonight.")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE TEI [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><sp><p>&lol3;</p></sp></body></text></TEI>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE TEI [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><sp><speaker>X</speaker><p>&secret;</p></sp></body></text></TEI>
"""


@pytest.mark.parametrize("name, text", [("laughs.xml", BILLION_LAUGHS), ("xxe.xml", XXE)])
def test_hostile_xml_is_refused_with_a_message(tmp_path, name, text):
    with pytest.raises(ParseError) as info:
        parse_file(write(tmp_path, name, text))
    message = str(info.value)
    assert name in message and "refused" in message
    assert "root:" not in message  # nothing from /etc/passwd leaked


def test_malformed_and_non_tei_xml_are_parse_errors(tmp_path):
    with pytest.raises(ParseError, match=r"broken\.xml: malformed XML"):
        parse_file(write(tmp_path, "broken.xml", "<TEI xmlns='http://www.tei-c.org/ns/1.0'><text>"))
    with pytest.raises(ParseError, match=r"not a TEI document \(root element is 'html'"):
        parse_file(write(tmp_path, "page.xml", "<html><body/></html>"))

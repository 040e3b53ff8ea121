"""Final Draft XML: the same script as its Fountain twin, title pages, notes, hostile XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.document import (
    ACTION,
    CHARACTER,
    DIALOGUE,
    HEADING,
    LYRIC,
    NOTE,
    PARENTHETICAL,
    SYNOPSIS,
    TRANSITION,
)
from retrieval.parse import ParseError, parse_file
from retrieval.parse.fountain import parse_elements


def norm(text: str) -> str:
    return " ".join(text.split())


def fdx_elements(path: Path, skip=()) -> list[tuple]:
    script = parse_file(path)
    return [(e.kind, norm(e.text), e.extension, e.dual, e.number) for s in script.scenes for e in s.elements if e.kind not in skip]


def fountain_elements(path: Path, skip=()) -> list[tuple]:
    els = parse_elements(path.read_text(encoding="utf-8-sig"))
    return [(e.kind, norm(e.text), e.extension, e.dual, e.number) for e in els if e.kind not in skip]


@pytest.mark.parametrize(
    "pair",
    [f"screenplain-tests/{n}" for n in ("simple", "utf-8-bom", "dialogue", "dialogue-with-blank-line", "dual-dialogue",
                                         "parenthetical", "forced-action", "indentation", "extended-characters")]
    + ["screenplay-tools/tests/TestFDX-FD", "screenplay-tools/tests/TestFDX-FI",
       "afterwriting-tests/fdx/header_note", "afterwriting-tests/fdx/synopsis"],
)
def test_fdx_reads_like_its_fountain_twin(fixtures_dir, pair):
    base = fixtures_dir / pair
    assert fdx_elements(base.with_suffix(".fdx")) == fountain_elements(base.with_suffix(".fountain"))


def test_final_draft_and_fade_in_files_read_the_same(fixtures_dir):
    tests = fixtures_dir / "screenplay-tools" / "tests"
    fd, fi = parse_file(tests / "TestFDX-FD.fdx"), parse_file(tests / "TestFDX-FI.fdx")
    for script in (fd, fi):
        assert (script.title, script.authors, script.licence, script.format) == ("FDX Test Script", ["Ian"], "Copyright (c) 2026", "fdx")
        assert [s.heading for s in script.scenes] == ["INT. RADIO STUDIO", "EXT. OUTSIDE THE FOOD STORE"]
        assert script.scenes[0].characters == ("DJ", "DAVE", "JIM")
    assert [s.text() for s in fd.scenes] == [s.text() for s in fi.scenes]
    assert fd.scenes[0].text().startswith(
        "INT. RADIO STUDIO\n\nWe are in a TV station listening to the announcer on the other site of the glass.\n\n"
        "DJ\n(bored)\nHey everyone, this is some music that sounds kinda terrible."
    )
    assert "JIM (O.S.)\nBecause he helps us test this screenplay.\n\nCUT TO:" in fd.scenes[0].text()


def test_notes_in_paragraphs_become_note_elements(fixtures_dir):
    # Fountain drops an inline [[note]]; FDX keeps the ScriptNote, after its paragraph.
    base = fixtures_dir / "afterwriting-tests" / "fdx" / "note"
    assert fdx_elements(base.with_suffix(".fdx")) == [
        (ACTION, "Action. Action.", "", False, ""), (NOTE, "Note in action. Note. Note. Note.", "", False, ""),
    ]
    assert fdx_elements(base.with_suffix(".fdx"), skip=(NOTE,)) == fountain_elements(base.with_suffix(".fountain"))
    script = parse_file(base.with_suffix(".fdx"))
    assert "Note in action" not in script.scenes[0].text()  # notes are not story


MIXED = """<?xml version="1.0" encoding="UTF-8"?>
<FinalDraft DocumentType="Script" Template="No" Version="5">
  <Content>
    <Paragraph Type="Scene Heading" Number="4A"><Text>INT. </Text><Text Style="Bold">LIGHTHOUSE</Text><Text> - NIGHT</Text>
      <SceneProperties><Summary><Paragraph><Text>Mara finds the log.</Text></Paragraph></Summary></SceneProperties>
    </Paragraph>
    <Paragraph Type="Shot"><Text>ANGLE ON THE LOGBOOK</Text></Paragraph>
    <Paragraph Type="General"><Text>The lamp turns.</Text></Paragraph>
    <Paragraph Type="Cast List"><Text>MARA, a keeper</Text></Paragraph>
    <Paragraph Type="Character"><Text>Mara</Text><Text Style="Italic"> (CONT'D)</Text></Paragraph>
    <Paragraph Type="Dialogue"><Text>Who wrote </Text><Text Style="Underline">this</Text><Text>?</Text>
      <ScriptNote ID="7"><Paragraph><Text>Louder?</Text></Paragraph></ScriptNote></Paragraph>
    <Paragraph Type="Character"><Text>CHOIR (O.S.)</Text></Paragraph>
    <Paragraph Type="Lyrics"><Text>Down, down to the sea</Text></Paragraph>
    <Paragraph>
      <DualDialogue>
        <Paragraph Type="Character"><Text>OWEN</Text></Paragraph>
        <Paragraph Type="Parenthetical"><Text>(at once)</Text></Paragraph>
        <Paragraph Type="Dialogue"><Text>Me.</Text></Paragraph>
        <Paragraph Type="Character"><Text>TESS</Text></Paragraph>
        <Paragraph Type="Dialogue"><Text>Him.</Text></Paragraph>
      </DualDialogue>
    </Paragraph>
    <Paragraph Type="Transition"><Text>SMASH CUT TO:</Text></Paragraph>
    <Paragraph Type="Made Up Type"><Text>Unknown types read as action.</Text></Paragraph>
  </Content>
  <TitlePage><Content>
    <Paragraph Alignment="Center"><Text>THE KEEPER</Text></Paragraph>
    <Paragraph Alignment="Center"/>
    <Paragraph Alignment="Center"><Text>Screenplay by</Text></Paragraph>
    <Paragraph Alignment="Center"><Text>Ada Quill &amp; Bo Reyes</Text></Paragraph>
  </Content></TitlePage>
</FinalDraft>
"""


def test_every_paragraph_type_and_text_runs(tmp_path):
    path = tmp_path / "keeper.fdx"
    path.write_text(MIXED, encoding="utf-8")
    script = parse_file(path)
    assert (script.title, script.authors) == ("THE KEEPER", ["Ada Quill", "Bo Reyes"])
    got = [(e.kind, e.text, e.extension, e.dual) for s in script.scenes for e in s.elements]
    assert got == [
        (HEADING, "INT. LIGHTHOUSE - NIGHT", "", False),  # styled runs joined
        (SYNOPSIS, "Mara finds the log.", "", False),
        (ACTION, "ANGLE ON THE LOGBOOK", "", False),
        (ACTION, "The lamp turns.", "", False),
        (ACTION, "MARA, a keeper", "", False),
        (CHARACTER, "Mara", "", False),  # CONT'D dropped, as in Fountain
        (DIALOGUE, "Who wrote this?", "", False),
        (NOTE, "Louder?", "", False),
        (CHARACTER, "CHOIR", "O.S.", False),
        (LYRIC, "Down, down to the sea", "", False),
        (CHARACTER, "OWEN", "", True),
        (PARENTHETICAL, "at once", "", False),
        (DIALOGUE, "Me.", "", False),
        (CHARACTER, "TESS", "", True),
        (DIALOGUE, "Him.", "", False),
        (TRANSITION, "SMASH CUT TO:", "", False),
        (ACTION, "Unknown types read as action.", "", False),
    ]
    assert script.scenes[0].elements[0].number == "4A"
    assert script.scenes[0].characters == ("MARA", "CHOIR", "OWEN", "TESS")


def test_fdx_saved_as_xml_is_recognised(tmp_path):
    path = tmp_path / "keeper.xml"
    path.write_text(MIXED, encoding="utf-8")
    assert parse_file(path).format == "fdx"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE FinalDraft [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<FinalDraft><Content><Paragraph Type="Action"><Text>&lol3;</Text></Paragraph></Content></FinalDraft>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE FinalDraft [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<FinalDraft><Content><Paragraph Type="Action"><Text>&secret;</Text></Paragraph></Content></FinalDraft>
"""


@pytest.mark.parametrize("name, text", [("laughs.fdx", BILLION_LAUGHS), ("xxe.fdx", XXE)])
def test_entity_expansion_and_external_entities_are_refused(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParseError) as info:
        parse_file(path)
    assert name in str(info.value) and "refused" in info.value.reason
    assert "root:" not in str(info.value)


def test_malformed_and_foreign_xml_are_parse_errors(tmp_path):
    (tmp_path / "cut.fdx").write_text("<FinalDraft><Content><Paragraph Type='Action'>", encoding="utf-8")
    with pytest.raises(ParseError, match=r"cut\.fdx: malformed XML"):
        parse_file(tmp_path / "cut.fdx")
    (tmp_path / "page.fdx").write_text("<html><body/></html>", encoding="utf-8")
    with pytest.raises(ParseError, match="not a Final Draft document"):
        parse_file(tmp_path / "page.fdx")

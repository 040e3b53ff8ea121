"""Fountain parsing checked against other parsers' expected output.

screenplay-tools ships expected element lists (.txt) and screenplain expected HTML;
where we deliberately differ from one of them, the case is listed with the reason.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from retrieval.document import CHARACTER, DIALOGUE, HEADING, PARENTHETICAL
from retrieval.parse import ParseError, parse_file
from retrieval.parse.fountain import parse_elements, parse_fountain


def norm(text: str) -> str:
    return " ".join(text.split())


def ours(path: Path, *, skip=("note",)) -> list[tuple[str, str]]:
    els = parse_elements(path.read_text(encoding="utf-8-sig"))
    return [(e.kind, norm(e.text)) for e in els if e.kind not in skip]


# -- screenplay-tools expected parse output ----------------------------------------------

_ST_KINDS = {"PAGEBREAK": "page_break"}
_ST_ENTRY = re.compile(r'(?m)^(?:\[\[\d+\]\]|/\*\d+\*/)?([A-Z]+):"')


def read_screenplay_tools(path: Path) -> list[tuple[str, str, str]]:
    """(kind, text, annotation) from a screenplay-tools expected file such as
    HEADING:"INT. X" (3)  or  ACTION:"text" (centered)  or  CHARACTER:"BOB" "(V.O.)"."""
    raw = path.read_text(encoding="utf-8")
    starts = list(_ST_ENTRY.finditer(raw))
    out = []
    for i, m in enumerate(starts):
        if raw[m.start()] in "[/":  # a note or boneyard body, listed after the elements
            continue
        end = starts[i + 1].start() if i + 1 < len(starts) else len(raw)
        body = raw[m.end() : end].rstrip()
        tail = re.match(r'(?s)^(.*?)"(?: "([^"]*)")?(?: \(([^)]*)\))?$', body)
        assert tail, f"cannot read expected entry {body!r} in {path}"
        kind = _ST_KINDS.get(m.group(1), m.group(1).lower())
        text, annotation = tail.group(1), tail.group(3) or ""
        if kind == "action" and annotation == "centered":
            kind, annotation = "centered", ""
        if kind == "action" and not text.strip():
            continue  # screenplay-tools emits empty actions for blank runs; not an element
        out.append((kind, norm(text), annotation))
    return out


@pytest.mark.parametrize("name", ["SceneHeading", "Transition", "Lyrics", "PageBreak", "Sections"])
def test_matches_screenplay_tools(fixtures_dir, name):
    tests = fixtures_dir / "screenplay-tools" / "tests"
    expected = read_screenplay_tools(tests / f"{name}.txt")
    if name == "Sections":
        # Deliberate: a first line "CUT TO:" is a transition, not a title-page key.
        assert expected[0][0] == "titleentry" and "CUT TO" in expected[0][1]
        expected[0] = ("transition", "CUT TO:", "")
    assert ours(tests / f"{name}.fountain") == [(k, t) for k, t, _ in expected]


def test_scene_numbers_and_section_levels_match_screenplay_tools(fixtures_dir):
    tests = fixtures_dir / "screenplay-tools" / "tests"
    for name, kind, attr in [("SceneHeading", HEADING, "number"), ("Sections", "section", "level")]:
        expected = [a for k, _, a in read_screenplay_tools(tests / f"{name}.txt") if k == kind]
        got = [str(getattr(e, attr) or "") for e in parse_elements((tests / f"{name}.fountain").read_text("utf-8")) if e.kind == kind]
        assert got == expected


def test_character_cues_match_screenplay_tools(fixtures_dir):
    tests = fixtures_dir / "screenplay-tools" / "tests"
    expected = read_screenplay_tools(tests / "Character.txt")
    # Deliberate: the Fountain spec asks only for "at least one alphabetical
    # character" in a name, so "3CPO" is a cue (screenplay-tools wants a leading letter).
    i = expected.index(("action", "3CPO Not work.", ""))
    expected[i : i + 1] = [("character", "3CPO", ""), ("dialogue", "Not work.", "")]
    # Deliberate: an empty line ends an action paragraph (screenplain agrees); screenplay-tools merges them.
    i = expected.index(("action", "BOB This one shouldn't work, because blank line.", ""))
    expected[i : i + 1] = [("action", "BOB", ""), ("action", "This one shouldn't work, because blank line.", "")]
    els = parse_elements((tests / "Character.fountain").read_text("utf-8"))
    assert [(e.kind, norm(e.text)) for e in els] == [(k, t) for k, t, _ in expected]
    exts = {norm(e.text): e.extension for e in els if e.kind == CHARACTER}
    assert exts["MOM"] == "O. S."
    assert exts["Han"] == "O.S."  # forced with '@', lowercase kept
    assert exts["STEEL"] == "V.O."  # (CONT'D) is dropped, (V.O.) kept


def test_title_page_matches_screenplay_tools(fixtures_dir):
    path = fixtures_dir / "screenplay-tools" / "tests" / "TitlePage.fountain"
    script = parse_file(path)
    page = script.metadata["title_page"]
    assert page["title"] == "_**BRICK & STEEL**_\n_**FULL RETIRED**_"
    assert page["contact"] == "Next Level Productions\n1588 Mission Dr.\nSolvang, CA 93463"
    assert page["draft date"] == "1/20/2012"
    assert script.title == "BRICK & STEEL"  # emphasis markers are not part of a title
    assert script.authors == ["Stu Maschwitz"]
    # the first line that is neither "Key: value" nor indented ends the title page
    assert ours(path) == [("action", "Not a title entry. Still: Not a title entry.")]


def test_parentheticals_split_dialogue(fixtures_dir):
    path = fixtures_dir / "screenplay-tools" / "tests" / "Parenthetical.fountain"
    got = ours(path)
    assert got[:8] == [
        (CHARACTER, "SANBORN"),
        (DIALOGUE, "A good ‘ole boy. You know, loves the Army, blood runs green. Country boy. Seems solid."),
        (PARENTHETICAL, "damn"),
        (CHARACTER, "DAN"),
        (PARENTHETICAL, "asleep"),
        (DIALOGUE, "Then let’s retire them. _Permanently_."),
        (CHARACTER, "BOB"),
        (PARENTHETICAL, "slowly"),
    ]
    assert ("action", "(Jack) Knife.") in got  # a parenthetical cannot start a speech


# -- screenplain expected HTML ---------------------------------------------------------


class _ScreenplainHTML(HTMLParser):
    """Reads screenplain's HTML back into (kind, text) pairs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[str, str]] = []
        self.kind: str | None = None
        self.buf: list[str] = []
        self.in_dialog = False
        self.skip = False

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class", "") or ""
        if tag == "div" and cls == "dialog" or cls in ("left", "right"):
            self.in_dialog = True
        elif tag == "span" and cls.startswith("scnum"):
            self.skip = True
        elif tag == "br":
            self.buf.append("\n")
        elif tag == "h6":
            self._begin("heading")
        elif re.fullmatch(r"h[1-5]", tag):
            self._begin("section")
        elif tag == "span" and cls.endswith("synopsis"):
            self._begin("synopsis")
        elif tag == "div" and cls == "transition":
            self._begin("transition")
        elif tag == "p":
            if cls == "character":
                self._begin("character")
            elif cls == "parenthetical":
                self._begin("parenthetical")
            else:
                self._begin("dialogue" if self.in_dialog else "action")

    def _begin(self, kind):
        self.kind, self.buf = kind, []

    def handle_endtag(self, tag):
        if tag == "span" and self.skip:
            self.skip = False
            return
        if self.kind and tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "span", "div"):
            text = norm("".join(self.buf))
            if self.kind == "parenthetical":
                text = text.strip("()")
            if self.kind == "dialogue" and self.out and self.out[-1][0] == "dialogue":
                self.out[-1] = ("dialogue", norm(self.out[-1][1] + " " + text))  # one <p> per line
            else:
                self.out.append((self.kind, text))
            self.kind = None
        if tag == "div" and self.kind is None:
            self.in_dialog = self.in_dialog and tag != "div"

    def handle_data(self, data):
        if self.kind and not self.skip:
            self.buf.append(data)


def read_screenplain(path: Path) -> list[tuple[str, str]]:
    parser = _ScreenplainHTML()
    parser.feed(path.read_text(encoding="utf-8"))  # convert_charrefs decodes &nbsp; and &#...;
    return parser.out


@pytest.mark.parametrize(
    "name",
    ["simple", "utf-8-bom", "boneyard", "notes", "dialogue", "dialogue-with-blank-line", "parenthetical",
     "dialogue-character-extension", "forced-action", "extended-characters", "scene-numbers", "sections",
     "page-break", "dual-dialogue", "indentation"],
)
def test_matches_screenplain_html(fixtures_dir, name):
    tests = fixtures_dir / "screenplain-tests"
    expected = read_screenplain(tests / f"{name}.html")
    got = ours(tests / f"{name}.fountain", skip=("note", "page_break"))
    if name == "dialogue-character-extension":
        # screenplain keeps the extension in the cue text; we split it off
        expected = [("character", "HANS"), expected[1]]
    # screenplain prints transitions uppercased; the source's case is what we keep
    expected = [(k, t.upper() if k == "transition" else t) for k, t in expected]
    got = [(k, t.upper() if k == "transition" else t) for k, t in got]
    assert got == expected


def test_dual_dialogue_marks_both_speakers(fixtures_dir):
    els = parse_elements((fixtures_dir / "screenplain-tests" / "dual-dialogue.fountain").read_text("utf-8"))
    cues = [(e.text, e.dual) for e in els if e.kind == CHARACTER]
    assert cues == [("GIRL", True), ("GUY", True)]


def test_page_break_is_an_element(fixtures_dir):
    kinds = [k for k, _ in ours(fixtures_dir / "screenplain-tests" / "page-break.fountain")]
    assert kinds == ["action", "page_break", "heading"]


# -- nyousefi fixtures (no expected output: behaviour from the Fountain spec) ---------------


def test_nyousefi_scene_headers(fixtures_dir):
    text = (fixtures_dir / "nyousefi-fountain-tests" / "FountainTests" / "SceneHeaders.fountain").read_text("utf-8")
    headings = [e.text for e in parse_elements(text) if e.kind == HEADING]
    assert headings == [
        "INT. HOUSE - DAY", "EXT. HOUSE - DAY", "INT HOUSE DAY", "EXT HOUSE DAY", "INT/EXT. HOUSE - DAY",
        "INT./EXT. HOUSE - DAY", "I/E. HOUSE - DAY", "I./E. HOUSE - DAY", "I/E HOUSE DAY", "INT - HOUSE - DAY",
        "EXT - HOUSE - DAY", "EST. HOUSE - DAY", "EST HOUSE DAY", "INT. HOUSE - DAY (1979)", "KITCHEN",
        # "EXT. HOUSE - DAY" right under another heading has no blank line before it: action.
        "INT. HOUSE - DAY", "int. house - day",
    ]


def test_nyousefi_forced_elements_and_centered(fixtures_dir):
    base = fixtures_dir / "nyousefi-fountain-tests" / "FountainTests"
    assert ours(base / "ForcedElements.fountain") == [
        ("action", "BANG BANG BANG"),
        ("character", "McDUCK"),
        ("dialogue", "I'm vegan."),
        ("character", "SINGER"),
        ("lyric", "These are the songs"),
        ("lyric", "That I sing."),
    ]
    assert ours(base / "CenteredText.fountain") == [
        ("centered", "Centered"), ("transition", "Not centered"), ("centered", "No space"), ("centered", "Lots of Space"),
    ]
    assert [t for k, t in ours(base / "Synopses.fountain") if k == "synopsis"] == [
        "This is the first act.", "This is another act.", "THE FINAL ACT",
    ]


# -- whole scripts ----------------------------------------------------------------------------


def test_crlf_and_bom_parse_like_lf():
    lf = "Title: Crlf Test\nAuthor: A. Writer\n\nINT. ROOM - DAY\n\nBOB\n(quietly)\nHi.\n"
    crlf = "\ufeff" + lf.replace("\n", "\r\n")
    a, b = parse_fountain(lf, path="x.fountain"), parse_fountain(crlf, path="x.fountain")
    assert a.title == b.title == "Crlf Test"
    assert a.scenes[0].text() == b.scenes[0].text() == "INT. ROOM - DAY\n\nBOB\n(quietly)\nHi."


def test_scene_text_renders_screenplay_format():
    src = (
        "INT. DINER - NIGHT #12#\n\nRain on the glass. [[fix later]]\n\nMAYA (V.O.)\nToo late.\n\n"
        "@McCoy (O.S.) (CONT'D)\n(whispering)\nNot yet.\n\n/* cut:\nEXT. ROOF - DAY\n*/\nCUT TO:\n"
    )
    script = parse_fountain(src, path="diner.fountain")
    assert [s.heading for s in script.scenes] == ["INT. DINER - NIGHT"]
    scene = script.scenes[0]
    assert scene.characters == ("MAYA", "MCCOY")
    assert scene.text() == (
        "INT. DINER - NIGHT\n\nRain on the glass.\n\nMAYA (V.O.)\nToo late.\n\n"
        "MCCOY (O.S.)\n(whispering)\nNot yet.\n\nCUT TO:"
    )


def test_bundled_screenplay_has_scenes_title_and_licence():
    from retrieval.bundled import bundled_corpus_dir

    script = parse_file(bundled_corpus_dir() / "screenplays" / "various" / "ASCENT_TO_GURU_PEAK.fountain")
    assert script.script_id == "ascent-to-guru-peak"
    assert script.title == "ASCENT TO GURU PEAK"
    assert script.authors == ["Richard Alexander Hall"]
    assert script.licence == "Creative Commons Attribution 4.0"
    assert script.scenes[1].heading == "EXT. MOUNT GURU FOOTHILLS--DAY"
    assert "YORBLEF" in script.scenes[1].characters


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.fountain"
    bad.write_bytes(b"\x81\x8d\x8f\x90\x9d" * 10)  # undefined in cp1252 and invalid UTF-8
    with pytest.raises(ParseError, match="broken.fountain"):
        parse_file(bad)
    with pytest.raises(ParseError, match="unsupported file type"):
        (tmp_path / "notes.docx").write_bytes(b"PK")
        parse_file(tmp_path / "notes.docx")

"""Screenplay PDFs: screenplain's PDFs read like their Fountain sources; page furniture,
title pages and the refusals (encrypted, scanned, corrupt) on PDFs made here with pypdf."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from retrieval.document import CHARACTER, DIALOGUE, HEADING, PARENTHETICAL, TRANSITION
from retrieval.parse import ParseError, parse_file
from retrieval.parse.fountain import parse_elements

# Standard screenplay positions, inches from the left edge of the page.
ACTION_X, DIALOGUE_X, PAREN_X, CUE_X, TRANSITION_X, PAGE_NO_X = 1.5, 2.5, 3.1, 3.7, 6.0, 7.0


def make_pdf(pages: list[list[tuple[float, int, str]]], *, font_size: int = 12) -> bytes:
    """A PDF with text in the standard Courier font: each page is a list of
    (x in inches, line number from the top, text). Empty pages have no text at all."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Courier"),
    }))
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        if not lines:
            continue
        ops = []
        for x, line, text in lines:
            escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /F1 {font_size} Tf {x * 72:.1f} {720 - line * font_size} Td ({escaped}) Tj ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def encrypt(data: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    from pypdf import PdfReader

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# A two-page scene with the furniture a real script has: page numbers, a scene number in
# both margins, a right-aligned transition, and a speech broken over the page with
# (MORE) and a repeated CONT'D cue. Page 0 is a title page.
TITLE_PAGE = [(3.2, 20, "THE LONG NIGHT"), (3.6, 23, "Written by"), (3.6, 25, "Ada Quill"), (1.5, 50, "ada@example.com")]
PAGE_1 = [
    (0.75, 0, "12"), (ACTION_X, 0, "INT. DINER - NIGHT"), (7.2, 0, "12"),
    (ACTION_X, 2, "Rain on the glass. MAYA (30s) slides into a booth."),
    (CUE_X, 4, "MAYA (V.O.)"), (DIALOGUE_X, 5, "I never meant to stay."),
    (CUE_X, 7, "COOK"), (PAREN_X, 8, "(not looking up)"), (DIALOGUE_X, 9, "Nobody does. One more thing"),
    (DIALOGUE_X, 10, "before you go."), (CUE_X, 11, "(MORE)"),
]
PAGE_2 = [
    (PAGE_NO_X, -3, "2."),
    (CUE_X, 0, "COOK (CONT'D)"), (DIALOGUE_X, 1, "Coffee?"),
    (ACTION_X, 3, "She nods."),
    (TRANSITION_X, 5, "CUT TO:"),
    (ACTION_X, 7, "EXT. ROOF - DAWN"),
    (CUE_X, 9, "MAYA"), (DIALOGUE_X, 10, "Finally."),
]


def test_screenplay_pdf_elements_and_furniture(tmp_path):
    path = tmp_path / "long-night.pdf"
    path.write_bytes(make_pdf([TITLE_PAGE, PAGE_1, PAGE_2]))
    script = parse_file(path)
    assert (script.title, script.authors, script.format) == ("THE LONG NIGHT", ["Ada Quill"], "pdf")
    assert [(s.heading, s.characters) for s in script.scenes] == [
        ("INT. DINER - NIGHT", ("MAYA", "COOK")), ("EXT. ROOF - DAWN", ("MAYA",)),
    ]
    diner = [(e.kind, " ".join(e.text.split()), e.extension, e.number) for e in script.scenes[0].elements]
    assert diner == [
        (HEADING, "INT. DINER - NIGHT", "", "12"),
        ("action", "Rain on the glass. MAYA (30s) slides into a booth.", "", ""),
        (CHARACTER, "MAYA", "V.O.", ""),
        (DIALOGUE, "I never meant to stay.", "", ""),
        (CHARACTER, "COOK", "", ""),
        (PARENTHETICAL, "not looking up", "", ""),
        (DIALOGUE, "Nobody does. One more thing before you go. Coffee?", "", ""),  # (MORE)/(CONT'D) joined
        ("action", "She nods.", "", ""),
        (TRANSITION, "CUT TO:", "", ""),
    ]
    text = script.scenes[0].text()
    assert "2." not in text and "MORE" not in text and "CONT'D" not in text


SCREENPLAIN_PDFS = ["dialogue-with-blank-line", "dual-dialogue", "indentation", "scene-numbers", "title-page"]


@pytest.mark.parametrize("name", SCREENPLAIN_PDFS)
def test_screenplain_pdf_reads_like_its_fountain_source(fixtures_dir, name):
    base = fixtures_dir / "screenplain-tests" / name
    script = parse_file(base.with_suffix(".pdf"))
    got = [(e.kind, " ".join(e.text.split()), e.extension, e.dual, e.number) for s in script.scenes for e in s.elements]
    expected = [(e.kind, " ".join(e.text.split()), e.extension, e.dual, e.number)
                for e in parse_elements(base.with_suffix(".fountain").read_text("utf-8-sig"))]
    assert got == expected


def test_screenplain_title_page_names_the_script(fixtures_dir):
    script = parse_file(fixtures_dir / "screenplain-tests" / "title-page.pdf")
    assert (script.title, script.authors) == ("My Screenplay", ["Your Name"])


def test_glyphs_without_unicode_mapping_are_dropped_not_garbled(fixtures_dir):
    # screenplain's PDF draws the CJK, Cyrillic and Arabic lines with glyphs that have no
    # Unicode mapping, so no PDF reader can recover them; the Latin line survives.
    script = parse_file(fixtures_dir / "screenplain-tests" / "extended-characters.pdf")
    assert [(e.kind, e.text) for s in script.scenes for e in s.elements] == [("action", "Hello")]


def test_pdf_of_only_dialogue_still_finds_the_cue(tmp_path):
    path = tmp_path / "speech.pdf"
    path.write_bytes(make_pdf([[(CUE_X, 0, "DEALER"), (DIALOGUE_X, 1, "Dealer gets a seven.")]]))
    els = [(e.kind, e.text) for s in parse_file(path).scenes for e in s.elements]
    assert els == [(CHARACTER, "DEALER"), (DIALOGUE, "Dealer gets a seven.")]


def test_encrypted_pdf_is_refused(tmp_path):
    path = tmp_path / "locked.pdf"
    path.write_bytes(encrypt(make_pdf([PAGE_1]), user_password="s3cret"))
    with pytest.raises(ParseError, match=r"locked\.pdf: .*encrypted"):
        parse_file(path)


def test_permission_locked_pdf_with_empty_password_is_read(tmp_path):
    path = tmp_path / "no-print.pdf"
    path.write_bytes(encrypt(make_pdf([PAGE_1]), user_password=""))
    assert parse_file(path).scenes[0].heading == "INT. DINER - NIGHT"


def test_image_only_pdf_needs_ocr(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([[], []]))  # pages with nothing but (here: no) images on them
    with pytest.raises(ParseError, match=r"scan\.pdf: .*no extractable text.*OCR"):
        parse_file(path)


@pytest.mark.parametrize("cut", [0.5, 0.2])
def test_truncated_pdf_is_a_parse_error(tmp_path, cut):
    data = make_pdf([PAGE_1, PAGE_2])
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ParseError, match=r"cut\.pdf: corrupt or truncated PDF"):
        parse_file(path)


def test_not_a_pdf_at_all(tmp_path):
    path = tmp_path / "renamed.pdf"
    path.write_bytes(b"PK\x03\x04 a zip file, renamed")
    with pytest.raises(ParseError, match="not a PDF file"):
        parse_file(path)

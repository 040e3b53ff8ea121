"""Screenplay PDFs -> Script, through pypdf's layout-mode text and the layout rules of
``plaintext.py``.

pypdf's layout mode (``extract_text(extraction_mode="layout")``) keeps each line's
horizontal position as spaces, which is what tells a cue from dialogue from action.
It is relative, though: every page is shifted so its leftmost glyph is at column 0,
and the width of a "column" is an average glyph width that pypdf skews (newlines
count as zero-width characters), so a page of dialogue alone would look like action.
So each page is read twice: once in layout mode for the lines, and once with a text
visitor for the true x of each line start. The leftmost and rightmost line starts pin
layout columns back to points, and points become columns of the page's font (a
monospaced screenplay font is 0.6 em wide: Courier, Courier Prime, Courier Final Draft).

Refused with a ParseError that says why: encrypted PDFs (unless the user password is
empty, as for "no printing" permission locks), PDFs with no text (scans, which need
OCR first), and PDFs pypdf cannot read (truncated or corrupt).
"""

from __future__ import annotations

import io
import logging
import re
import statistics
from pathlib import Path

from retrieval.document import Script

MONO_EM = 0.6  # advance width of a Courier-family glyph, in ems
STANDARD_MARGIN_IN = 1.5  # the action margin of a screenplay page, from the left edge
_SEGMENT = re.compile(r"\S+(?: {1,2}\S+)*")


def parse_pdf(data: bytes, *, path: str | Path = "") -> Script:
    from retrieval.parse import ParseError
    from retrieval.parse.plaintext import script_from_pages

    reader = _open(data, path=path)
    pages: list[list[str]] = []
    sizes: list[float] = []
    for number, page in enumerate(reader.pages, 1):
        try:
            lines, size = _page_lines(page)
        except Exception as exc:  # pypdf raises many kinds on a damaged content stream
            raise ParseError(path, f"corrupt PDF: cannot read the text of page {number} ({type(exc).__name__}: {exc})") from exc
        pages.append(lines)
        if size:
            sizes.append(size)
    if not any(line.strip() for page in pages for line in page):
        raise ParseError(path, "the PDF has no extractable text (scanned pages?); it needs OCR before it can be indexed")
    char_width = MONO_EM * (statistics.median(sizes) if sizes else 12.0)
    margin = round(STANDARD_MARGIN_IN * 72 / char_width)
    # The document's /Title is not used: it is often "(anonymous)" or the name of the
    # word-processor file it was printed from; the title page or file name is better.
    return script_from_pages(pages, path=path, fmt="pdf", margin=margin)


def _open(data: bytes, *, path: str | Path):
    from pypdf import PdfReader

    from retrieval.parse import ParseError

    if not data.lstrip()[:1024].startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise ParseError(path, "not a PDF file (no %PDF header)")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged file is reported once, as a ParseError
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except Exception as exc:
        raise ParseError(path, f"corrupt or truncated PDF ({type(exc).__name__}: {exc})") from exc
    if encrypted:
        try:
            opened = reader.decrypt("")  # permission-only locks have an empty user password
        except Exception as exc:  # e.g. AES without the optional crypto dependency
            raise ParseError(path, f"the PDF is encrypted and cannot be opened ({exc}); save an unprotected copy") from exc
        if not opened:
            raise ParseError(path, "the PDF is encrypted with a password; save an unprotected copy")
    try:
        len(reader.pages)
    except Exception as exc:
        raise ParseError(path, f"corrupt or truncated PDF ({type(exc).__name__}: {exc})") from exc
    return reader


def _page_lines(page) -> tuple[list[str], float]:
    """The page's layout-mode lines, re-indented to columns of the page's font measured
    from the page's left edge; and the font size most of the text is set in."""
    starts: dict[int, float] = {}
    sizes: list[float] = []

    def visit(text, cm, tm, font_dict, font_size):
        if not text.strip():
            return
        a, b, c, d, e, f = _multiply(tm, cm)
        size = abs(font_size * (a * a + b * b) ** 0.5)
        x = e + (len(text) - len(text.lstrip())) * MONO_EM * size  # spaces inside the string
        y = round(f)
        starts[y] = min(x, starts.get(y, x))
        sizes.extend([size] * len(text.strip()))

    page.extract_text(visitor_text=visit)
    layout = page.extract_text(extraction_mode="layout").split("\n")
    if not starts:
        return layout, 0.0
    size = statistics.median(sizes) or 12.0
    char_width = MONO_EM * size
    x_low, x_high = min(starts.values()), max(starts.values())
    spaces = [len(line) - len(line.lstrip()) for line in layout if line.strip()]
    widest = max(spaces, default=0)
    # layout columns -> points: the leftmost start is column 0, the rightmost is `widest`
    layout_width = (x_high - x_low) / widest if widest else char_width
    return [_reindent(line, x_low, layout_width, char_width) for line in layout], size


def _reindent(line: str, x_low: float, layout_width: float, char_width: float) -> str:
    """Place each run of text (runs are split at 3+ spaces) at its true column."""
    out = ""
    for match in _SEGMENT.finditer(line):
        column = round((x_low + match.start() * layout_width) / char_width)
        out += " " * max(column - len(out), 1 if out else 0) + match.group()
    return out


def _multiply(m, n) -> tuple[float, ...]:
    """The product of two PDF matrices [a b c d e f] (text matrix times CTM)."""
    a1, b1, c1, d1, e1, f1 = (float(v) for v in m)
    a2, b2, c2, d2, e2, f2 = (float(v) for v in n)
    return (
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    )

"""Turn a script file into a :class:`retrieval.document.Script`.

``parse_file`` picks the parser from the extension and, for ambiguous ones, from the
content, so ingest can hand it any file it finds and get either a Script or a
``ParseError`` that names the file.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from retrieval.document import Script

FOUNTAIN_SUFFIXES = frozenset({".fountain", ".spmd"})
XML_SUFFIXES = frozenset({".xml", ".tei"})
FDX_SUFFIXES = frozenset({".fdx"})
PDF_SUFFIXES = frozenset({".pdf"})
TEXT_SUFFIXES = frozenset({".txt"})
SUPPORTED_SUFFIXES = FOUNTAIN_SUFFIXES | XML_SUFFIXES | FDX_SUFFIXES | PDF_SUFFIXES | TEXT_SUFFIXES

# A file above this size is almost certainly not a script, and refusing it keeps a
# stray dump from eating the ingest run's memory. Ingest passes its own limit.
MAX_FILE_BYTES = 20 * 1024 * 1024


class ParseError(Exception):
    """A file could not be read as a script. The message always names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAScript(ParseError):
    """A readable text file that is neither a screenplay nor a play (notes, a README):
    ingest skips it rather than calling it broken."""


def parse_file(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> Script:
    """Parse one file into a Script, choosing the parser by extension and content.

    Every failure is a ParseError naming the file and saying why, including a bug in a
    parser meeting an odd file: ingest reports it and goes on with the next file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ParseError(path, f"file is {size} bytes, larger than the {max_bytes} byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(path, f"cannot read file ({exc.strerror or exc})") from exc
    try:
        return _parse_bytes(path, data)
    except ParseError:
        raise
    except Exception as exc:  # a parser bug must not stop a library ingest
        raise ParseError(path, f"could not be parsed ({type(exc).__name__}: {exc})") from exc


def _parse_bytes(path: Path, data: bytes) -> Script:
    kind = detect_format(path, data)
    if kind == "tei":
        from retrieval.parse.tei import parse_tei

        return parse_tei(data, path=path)
    if kind == "fdx":
        from retrieval.parse.fdx import parse_fdx

        return parse_fdx(data, path=path)
    if kind == "pdf":
        from retrieval.parse.pdf import parse_pdf

        return parse_pdf(data, path=path)
    if kind == "fountain":
        from retrieval.parse.fountain import parse_fountain

        return parse_fountain(decode_text(data, path=path), path=path)
    if kind == "screenplay-text":
        from retrieval.parse.plaintext import parse_screenplay_text

        return parse_screenplay_text(decode_text(data, path=path), path=path)
    if kind == "gutenberg":
        from retrieval.parse.gutenberg import parse_gutenberg

        return parse_gutenberg(decode_text(data, path=path), path=path)
    if kind == "not-a-script":
        raise NotAScript(path, "text that is neither a screenplay nor a play (no scene headings, character cues or act/scene divisions)")
    raise ParseError(path, f"unsupported file type {path.suffix or '(no extension)'!r}")


def detect_format(path: Path, data: bytes) -> str:
    """The parser for a file: "fountain", "tei", "fdx", "pdf", "screenplay-text",
    "gutenberg", "not-a-script" (a .txt that is none of these) or "" (unsupported).

    .fountain/.spmd, .fdx and .pdf go by extension; .xml is FDX when its root is
    <FinalDraft>, else TEI. A .txt is decided by content, in this order:

    1. "gutenberg": act or scene headings flush left ("ACT I.", "SCENE 2.") and at least
       ten speeches opened by speaker lines ("HAMLET." / "Ham." on its own line or before
       the first line of speech), by at least two repeat speakers. Tried first because
       Fountain would read every caps speaker line as a cue and every "ACT I." as action.
    2. "screenplay-text": laid out like a printed script: at least three uppercase cues
       indented past the speech under them, or a scene heading and one such cue. Tried
       before Fountain unless the text carries Fountain markup (a "Title:" key on the
       first line, [[notes]], /* boneyard */, === page breaks), because a printed layout
       has page numbers, (MORE) and CONT'D furniture that only the layout parser drops.
    3. "fountain": a "Title:" key on the first line, a scene heading (INT./EXT. after a
       blank line), or at least three cue-and-dialogue blocks.
    4. otherwise "not-a-script".
    """
    suffix = path.suffix.lower()
    if suffix in FOUNTAIN_SUFFIXES:
        return "fountain"
    if suffix in FDX_SUFFIXES:
        return "fdx"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in TEXT_SUFFIXES:
        return _detect_text(data)
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if suffix in XML_SUFFIXES or head.startswith(b"<?xml") or head.startswith(b"<TEI"):
        return "fdx" if b"<FinalDraft" in data[:4096] else "tei"
    if head.startswith(b"%PDF"):
        return "pdf"
    return ""


_FOUNTAIN_MARKUP = re.compile(r"\A\s*Title:|\[\[.*?\]\]|/\*|^===+\s*$", re.MULTILINE | re.DOTALL)
_FOUNTAIN_HEADING = re.compile(r"(?:\A|\n[ \t]*\n)[ \t]*(?:INT|EXT|EST|INT\.?/EXT|I/E)[. ]", re.IGNORECASE)
_FOUNTAIN_CUE = re.compile(r"(?:\A|\n[ \t]*\n)[ \t]*[A-Z][A-Z0-9 .'\-]{1,30}(?:\([^)\n]*\))?[ \t]*\n[ \t]*[^\s]")


def _detect_text(data: bytes) -> str:
    from retrieval.parse.gutenberg import looks_like_play
    from retrieval.parse.plaintext import looks_like_screenplay_text

    if _looks_binary(data):
        return "fountain"  # decode_text then refuses it as binary, with that reason
    text = data[:400_000].decode("utf-8", errors="replace").replace("\r\n", "\n")
    if looks_like_play(text):
        return "gutenberg"
    markup = bool(_FOUNTAIN_MARKUP.search(text[:100_000]))
    if not markup and looks_like_screenplay_text(text):
        return "screenplay-text"
    if markup or _FOUNTAIN_HEADING.search(text) or len(_FOUNTAIN_CUE.findall(text)) >= 3:
        return "fountain"
    return "not-a-script"


_BOMS_UTF16 = (b"\xff\xfe", b"\xfe\xff")
# C0 controls other than tab, newline, form feed and carriage return never occur in a
# script; their presence after a cp1252 decode means the bytes were not text at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _looks_binary(data: bytes) -> bool:
    return not data.startswith(_BOMS_UTF16) and b"\x00" in data[:8192]


def decode_text(data: bytes, *, path: str | Path) -> str:
    """Bytes of a text script -> str.

    UTF-8 first (a BOM is dropped), UTF-16 when it starts with a UTF-16 BOM (Windows
    Notepad's "Unicode"), then Windows-1252, which old screenwriting apps wrote, but only
    when it decodes cleanly: cp1252 maps nearly every byte to some character, so any
    binary file would "decode"; it is accepted only with none of the five bytes cp1252
    leaves undefined and no control characters. Latin-1 is never tried: it accepts
    everything, so it would turn every wrong guess into silent mojibake.
    """
    if data.startswith(_BOMS_UTF16):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ParseError(path, "starts with a UTF-16 byte-order mark but is not valid UTF-16") from exc
    if _looks_binary(data):
        raise ParseError(path, "binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ParseError(path, "not valid UTF-8 or Windows-1252 text (undecodable bytes)") from exc
    if _CONTROL.search(text):
        raise ParseError(path, "not valid UTF-8, and control characters rule out Windows-1252: binary, or an unknown encoding")
    return text


def slugify(name: str) -> str:
    """A stable, URL- and filename-safe id from a file stem: "Cyber_Bob ep 1" -> "cyber-bob-ep-1"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "script"


__all__ = [
    "ParseError", "NotAScript", "parse_file", "detect_format", "decode_text", "slugify", "SUPPORTED_SUFFIXES",
    "MAX_FILE_BYTES",
]

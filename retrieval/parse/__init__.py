"""Turn a script file into a :class:`retrieval.model.Script`.

``parse_file`` picks the parser from the extension and, for ambiguous ones, from the
content, so ingest can hand it any file it finds and get either a Script or a
``ParseError`` that names the file.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from retrieval.model import Script

FOUNTAIN_SUFFIXES = frozenset({".fountain", ".spmd"})
XML_SUFFIXES = frozenset({".xml", ".tei"})
SUPPORTED_SUFFIXES = FOUNTAIN_SUFFIXES | XML_SUFFIXES | {".txt"}

# A file above this size is almost certainly not a script, and refusing it keeps a
# stray dump from eating the ingest run's memory.
MAX_FILE_BYTES = 20 * 1024 * 1024


class ParseError(Exception):
    """A file could not be read as a script. The message always names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def parse_file(path: str | Path) -> Script:
    """Parse one file into a Script, choosing Fountain or TEI by extension and content."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ParseError(path, f"file is {len(data)} bytes, larger than the {MAX_FILE_BYTES} byte limit")
    kind = detect_format(path, data)
    if kind == "tei":
        from retrieval.parse.tei import parse_tei

        return parse_tei(data, path=path)
    if kind == "fountain":
        from retrieval.parse.fountain import parse_fountain

        return parse_fountain(decode_text(data, path=path), path=path)
    raise ParseError(path, f"unsupported file type {path.suffix or '(no extension)'!r}")


def detect_format(path: Path, data: bytes) -> str:
    """"tei", "fountain" or "" (unsupported). ``.txt`` counts as Fountain, which
    is a plain-text format by design; an XML file is only accepted as TEI."""
    suffix = path.suffix.lower()
    if suffix in FOUNTAIN_SUFFIXES or suffix == ".txt":
        return "fountain"
    if suffix in XML_SUFFIXES:
        return "tei"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<?xml") or head.startswith(b"<TEI"):
        return "tei"
    return ""


def decode_text(data: bytes, *, path: str | Path) -> str:
    """UTF-8 (BOM tolerated), falling back to cp1252 which old screenwriting apps wrote."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ParseError(path, "not valid UTF-8 or Windows-1252 text") from exc


def slugify(name: str) -> str:
    """A stable, URL- and filename-safe id from a file stem: "Cyber_Bob ep 1" -> "cyber-bob-ep-1"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "script"


__all__ = ["ParseError", "parse_file", "detect_format", "decode_text", "slugify", "SUPPORTED_SUFFIXES"]

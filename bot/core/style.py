"""/style: a style report (length, cast, dialogue vs action, INT/EXT, day/night) of a
pasted Fountain scene or script.

Adapters that receive a shared file (Slack file share, Discord attachment) call
``style_of_file`` with its bytes and name, which reads every format ingest reads.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bot.core.replies import Invocation, Reply, Section, SectionKind, error_reply
from bot.core.services import CoreServices
from retrieval.style import StyleReport, analyze_file, analyze_fountain

USAGE = "/style <pasted Fountain scene or script>"
STYLE_MAX_CHARS = 500_000  # a feature script is ~150k characters of Fountain
FILE_MAX_BYTES = 20 * 1024 * 1024

EMPTY = ("Paste a scene or a script in Fountain after `/style`, e.g.\n"
         "`/style INT. KITCHEN - NIGHT` then a character cue in capitals and their line below it.")


async def style(services: CoreServices, invocation: Invocation) -> Reply:
    text = invocation.text
    if not text.strip():
        return error_reply("/style", EMPTY)
    if len(text) > STYLE_MAX_CHARS:
        return error_reply("/style", f"That text is {len(text):,} characters; the limit is {STYLE_MAX_CHARS:,}.")
    try:
        report = await asyncio.to_thread(analyze_fountain, text)
    except ValueError as exc:
        return error_reply("/style", f"Could not read that as a screenplay: {exc}. {_HINT}")
    return style_reply(report)


def readable_suffixes() -> frozenset[str]:
    """File name endings `style_of_file` reads (for adapters choosing among shared files)."""
    from retrieval.parse import SUPPORTED_SUFFIXES

    return SUPPORTED_SUFFIXES


async def style_of_file(services: CoreServices, invocation: Invocation, *, data: bytes, filename: str) -> Reply:
    """The report for an uploaded file (Fountain, FDX, PDF, TEI XML, plain-text script)."""
    from retrieval.parse import SUPPORTED_SUFFIXES, ParseError

    suffix = Path(filename).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        return error_reply("/style", f"`{filename}` is not a script file this bot reads ({kinds}).")
    if len(data) > FILE_MAX_BYTES:
        return error_reply("/style", f"`{filename}` is {len(data):,} bytes; the limit is {FILE_MAX_BYTES:,}.")

    def parse() -> StyleReport:
        with tempfile.TemporaryDirectory(prefix="writersroom-style-") as tmp:
            path = Path(tmp) / f"{Path(filename).stem or 'script'}{suffix}"
            path.write_bytes(data)
            return analyze_file(path)

    try:
        report = await asyncio.to_thread(parse)
    except ParseError as exc:
        return error_reply("/style", f"Could not read `{filename}`: {exc.reason}.")
    if not report.scenes:
        return error_reply("/style", f"`{filename}` holds no scenes to analyze.")
    return style_reply(report)


_HINT = ("Scene headings start with INT. or EXT.; a character cue is a name in capitals on its own line, "
         "with the line of dialogue under it.")


def style_reply(report: StyleReport) -> Reply:
    return Reply(
        title=f"Style: {report.title}",
        sections=(Section(SectionKind.TEXT, report.as_text()),),
        metadata={"style": report.as_json()},
    )

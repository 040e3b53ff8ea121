"""Final Draft XML (.fdx) -> Script.

An FDX file is a flat list of ``<Paragraph Type="...">`` under ``<Content>``, each holding
one or more ``<Text>`` runs (a run per change of style, so the runs are concatenated).
Final Draft, Fade In, Highland, WriterDuet and screenplain all write this shape.

Mapping onto our elements:

- Scene Heading -> heading (``Number`` attribute -> scene number), its
  ``SceneProperties/Summary`` -> synopsis after the heading.
- Action, General, Cast List -> action; Shot -> action too (a shot such as "ANGLE ON
  THE DOOR" is a camera note inside a scene, not a new scene).
- Character -> cue (extension split off as in Fountain, CONT'D dropped); Parenthetical
  (brackets stripped), Dialogue, Lyrics -> speech. Consecutive Dialogue paragraphs under
  one cue are one speech (Final Draft writes a paragraph per line), an empty one a blank line.
- Transition -> transition. Outline 1..n / New Act / End of Act -> section; Outline Body -> synopsis.
- ``<DualDialogue>`` -> the cues inside are marked ``dual``.
- ``<ScriptNote>`` inside a paragraph -> a note after that paragraph's element.
- ``<TitlePage>`` -> title (first line), authors (lines after "Written by"), licence (a
  "Copyright" line); the raw lines are kept in ``metadata["title_page_lines"]``.

The XML is untrusted: DTDs, entities and external references are refused (see tei.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element as XmlElement

from retrieval.document import (
    ACTION,
    CHARACTER,
    DIALOGUE,
    HEADING,
    LYRIC,
    NOTE,
    PARENTHETICAL,
    SECTION,
    SYNOPSIS,
    TRANSITION,
    Element,
    Script,
)

_KIND_BY_TYPE = {
    "scene heading": HEADING,
    "action": ACTION,
    "general": ACTION,
    "cast list": ACTION,
    "shot": ACTION,
    "character": CHARACTER,
    "parenthetical": PARENTHETICAL,
    "dialogue": DIALOGUE,
    "lyrics": LYRIC,
    "transition": TRANSITION,
    "new act": SECTION,
    "end of act": SECTION,
    "outline body": SYNOPSIS,
}
_OUTLINE = re.compile(r"^outline (\d+)$")
_BYLINE = re.compile(r"^(?:(?:written|screenplay|teleplay|story|script)\s+)?by:?$", re.IGNORECASE)
_COPYRIGHT = re.compile(r"^(?:copyright|\(c\)|©)", re.IGNORECASE)


def parse_fdx(data: bytes, *, path: str | Path = "") -> Script:
    """Parse the bytes of an .fdx file. Raises ParseError for hostile, malformed or non-FDX XML."""
    from retrieval.parse import ParseError, slugify
    from retrieval.parse.fountain import group_scenes
    from retrieval.parse.tei import parse_untrusted_xml

    root = parse_untrusted_xml(data, path=path)
    if root.tag != "FinalDraft":
        raise ParseError(path, f"not a Final Draft document (root element is {root.tag!r}, expected FinalDraft)")
    content = root.find("Content")
    if content is None:
        raise ParseError(path, "Final Draft document has no <Content>")
    elements = fdx_elements(content)
    lines = _title_page_lines(root.find("TitlePage/Content"))
    stem = Path(path).stem if path else ""
    title = next((text for _, text in lines if text), "") or stem.replace("_", " ") or "Untitled"
    return Script(
        script_id=slugify(stem or title),
        title=title,
        authors=_authors(lines),
        source_path=str(path),
        format="fdx",
        licence=next((text for _, text in lines if _COPYRIGHT.match(text)), ""),
        scenes=group_scenes(elements),
        metadata={"title_page_lines": [text for _, text in lines if text]} if lines else {},
    )


def fdx_elements(content: XmlElement) -> list[Element]:
    """All body elements of a ``<Content>`` element, in order (for tests and tools)."""
    out: list[Element] = []
    for para in content.findall("Paragraph"):
        dual = para.find("DualDialogue")
        if dual is not None:
            for inner in dual.findall("Paragraph"):
                _add_paragraph(inner, out, dual=True)
        else:
            _add_paragraph(para, out, dual=False)
    for el in out:
        if el.kind == DIALOGUE:
            el.text = el.text.strip("\n")
    return [el for el in out if el.text]


def _text(para: XmlElement) -> str:
    """The paragraph's own text runs, concatenated (notes and scene properties are children
    of the paragraph, not of its runs, so they are not included)."""
    return "".join(run.text or "" for run in para.findall("Text")).replace("\r\n", "\n").replace("\r", "\n")


def _add_paragraph(para: XmlElement, out: list[Element], *, dual: bool) -> None:
    from retrieval.parse.fountain import character_cue

    ptype = (para.get("Type") or "Action").strip().lower()
    outline = _OUTLINE.match(ptype)
    kind = SECTION if outline else _KIND_BY_TYPE.get(ptype, ACTION)
    text = _text(para).strip()
    if kind == HEADING:
        out.append(Element(HEADING, " ".join(text.split()), number=(para.get("Number") or "").strip()))
        summary = " ".join(_text(p).strip() for p in para.findall("SceneProperties/Summary/Paragraph"))
        if summary.strip():
            out.append(Element(SYNOPSIS, " ".join(summary.split())))
    elif kind == CHARACTER:
        cue = character_cue("@" + " ".join(text.split())) if text else None
        if cue is not None:
            cue.dual = dual
            out.append(cue)
    elif kind == PARENTHETICAL:
        out.append(Element(PARENTHETICAL, text.removeprefix("(").removesuffix(")").strip()))
    elif kind == DIALOGUE:
        _add_dialogue(text, out)
    elif kind == SECTION:
        if text:
            out.append(Element(SECTION, text, level=int(outline.group(1)) if outline else 1))
    else:
        out.append(Element(kind, text))
    for note in para.findall("ScriptNote"):
        body = " ".join(_text(p).strip() for p in note.iter("Paragraph") if _text(p).strip())
        if body:
            out.append(Element(NOTE, body))


def _add_dialogue(text: str, out: list[Element]) -> None:
    """Final Draft writes one Dialogue paragraph per line of a speech (an empty one for a
    blank line inside it); join them back into one speech."""
    if out and out[-1].kind == DIALOGUE:
        out[-1].text = f"{out[-1].text}\n{text}"
    elif text:
        out.append(Element(DIALOGUE, text))


def _title_page_lines(content: XmlElement | None) -> list[tuple[str, str]]:
    """(alignment, text) of each title-page paragraph; empty paragraphs kept as spacing."""
    if content is None:
        return []
    lines = []
    for para in content.findall("Paragraph"):
        text = " ".join(_text(para).split())
        lines.append(((para.get("Alignment") or "").lower(), text))
    return lines


def _authors(lines: list[tuple[str, str]]) -> list[str]:
    """Names after a "Written by" line: the next non-empty lines, until a gap or a change
    of alignment (Final Draft leaves an empty paragraph between the byline and the name,
    Fade In does not)."""
    for i, (align, text) in enumerate(lines):
        if not _BYLINE.match(text):
            continue
        names: list[str] = []
        for next_align, next_text in lines[i + 1 :]:
            if not next_text:
                if names:
                    break
                continue
            if next_align != align or _BYLINE.match(next_text) or _COPYRIGHT.match(next_text):
                break
            names.append(next_text)
        return [n.strip() for name in names for n in re.split(r"\s+&\s+|\s+and\s+|,\s*", name) if n.strip()]
    return []

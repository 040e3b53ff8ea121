"""DraCor TEI drama (http://www.tei-c.org/ns/1.0) -> Script.

Stage plays are the public-domain half of the bundled corpus, so they are mapped
onto screenplay elements: a speech becomes a character cue plus dialogue, a stage
direction becomes action (or a parenthetical inside a speech), and each innermost
act/scene division that holds speeches becomes a scene.

XML from users is untrusted: it is parsed with defusedxml, and any DTD, entity
declaration or external reference is refused with a ParseError rather than
expanded ("billion laughs", XXE).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as StdET
from pathlib import Path
from xml.etree.ElementTree import Element as XmlElement

import defusedxml
from defusedxml import ElementTree as SafeET

from retrieval.document import (
    ACTION,
    CHARACTER,
    DIALOGUE,
    PARENTHETICAL,
    Element,
    Scene,
    Script,
    characters_of,
)

TEI = "{http://www.tei-c.org/ns/1.0}"
XML_NS = "{http://www.w3.org/XML/1998/namespace}"
# Page breaks, running heads and editorial notes are print artefacts, not the play.
_SKIP_TAGS = frozenset({f"{TEI}pb", f"{TEI}fw", f"{TEI}note", f"{TEI}gap", f"{TEI}anchor"})
_NUMERAL = re.compile(r"^(?:[IVXLCDM]+|\d+[A-Za-z]?)$", re.IGNORECASE)
_MAX_HEADING = 80


def parse_tei(data: bytes, *, path: str | Path = "") -> Script:
    from retrieval.parse import ParseError, slugify

    root = parse_untrusted_xml(data, path=path)
    if root.tag != f"{TEI}TEI":
        raise ParseError(path, f"not a TEI document (root element is {_local(root.tag)!r}, expected TEI)")
    header = root.find(f"{TEI}teiHeader")
    body = root.find(f"{TEI}text/{TEI}body")
    if body is None:
        raise ParseError(path, "TEI document has no <text><body>")
    names = _cast_names(header)
    scenes = [
        Scene(index=i, heading=heading, elements=els, characters=characters_of(els))
        for i, (heading, els) in enumerate(_scenes(body, names))
    ]
    title_stmt = header.find(f"{TEI}fileDesc/{TEI}titleStmt") if header is not None else None
    stem = Path(path).stem if path else ""
    title = _title(title_stmt) or stem or "Untitled"
    script_id = root.get(f"{XML_NS}id") or slugify(stem or title)
    return Script(
        script_id=script_id,
        title=title,
        authors=_authors(title_stmt),
        source_path=str(path),
        format="tei",
        language=root.get(f"{XML_NS}lang", ""),
        licence=_licence(header),
        scenes=scenes,
        metadata={k: v for k, v in {"genre": _genre(header)}.items() if v},
    )


def parse_untrusted_xml(data: bytes, *, path: str | Path) -> XmlElement:
    """Parse XML from a user's library, refusing DTDs, entities and external references
    (shared with the FDX parser)."""
    from retrieval.parse import ParseError

    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden as exc:
        raise ParseError(path, "refused: the XML declares a DTD (<!DOCTYPE ...>), which could expand entities or fetch external files") from exc
    except defusedxml.EntitiesForbidden as exc:
        raise ParseError(path, f"refused: the XML declares an entity ({exc.name!r}); entity expansion is not allowed") from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise ParseError(path, "refused: the XML references an external resource") from exc
    except defusedxml.DefusedXmlException as exc:
        raise ParseError(path, f"refused: unsafe XML ({exc})") from exc
    except StdET.ParseError as exc:
        raise ParseError(path, f"malformed XML: {exc}") from exc


# -- header ------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _text(el: XmlElement | None) -> str:
    return _norm("".join(el.itertext())) if el is not None else ""


def _title(title_stmt: XmlElement | None) -> str:
    if title_stmt is None:
        return ""
    titles = title_stmt.findall(f"{TEI}title")
    main = [t for t in titles if t.get("type") in (None, "main")] or titles
    return _text(main[0]) if main else ""


def _authors(title_stmt: XmlElement | None) -> list[str]:
    if title_stmt is None:
        return []
    out = []
    for author in title_stmt.findall(f"{TEI}author"):
        pers = author.find(f"{TEI}persName")
        if pers is not None:
            parts = [_text(pers.find(f"{TEI}{p}")) for p in ("forename", "surname")]
            name = " ".join(p for p in parts if p) or _text(pers)
        else:
            name = _norm(" ".join(t for c in [author] for t in _texts_without(c, {f"{TEI}idno"})))
        if name:
            out.append(name)
    return out


def _licence(header: XmlElement | None) -> str:
    if header is None:
        return ""
    lic = header.find(f".//{TEI}availability/{TEI}licence")
    if lic is None:
        return ""
    return _text(lic) or lic.get("target", "")


def _genre(header: XmlElement | None) -> str:
    if header is None:
        return ""
    for term in header.iter(f"{TEI}term"):
        if term.get("type") == "genreTitle":
            return _text(term)
    return ""


def _cast_names(header: XmlElement | None) -> dict[str, str]:
    """xml:id -> display name from the cast list, for speeches without <speaker>."""
    names: dict[str, str] = {}
    if header is None:
        return names
    for person in list(header.iter(f"{TEI}person")) + list(header.iter(f"{TEI}personGrp")):
        pid = person.get(f"{XML_NS}id")
        name = _text(person.find(f"{TEI}persName")) or _text(person.find(f"{TEI}name"))
        if pid and name:
            names[pid] = name
    return names


# -- body --------------------------------------------------------------------------


def _texts_without(el: XmlElement, skip: set[str] | frozenset[str]) -> list[str]:
    """itertext() that leaves out the subtrees of ``skip`` tags (keeping their tails)."""
    out = [el.text or ""]
    for child in el:
        if child.tag not in skip:
            out.extend(_texts_without(child, skip))
        out.append(child.tail or "")
    return out


def _has_sp(div: XmlElement) -> bool:
    return next(div.iter(f"{TEI}sp"), None) is not None


def _scenes(body: XmlElement, names: dict[str, str]) -> list[tuple[str, list[Element]]]:
    """(heading, elements) for each innermost division holding speeches, in order.

    A division with both its own speeches and sub-divisions (a prologue spoken
    before scene 1) yields its own material as a scene before its children.
    """
    out: list[tuple[str, list[Element]]] = []

    def walk(div: XmlElement, labels: list[str]) -> None:
        own: list[XmlElement] = []
        children = [c for c in div if c.tag == f"{TEI}div"]
        ordinal: dict[str, int] = {}
        for child in div:
            if child.tag == f"{TEI}div":
                continue
            own.append(child)
        if any(c.tag == f"{TEI}sp" for c in own):
            elements = _elements(own, names)
            out.append((", ".join(labels) or "Scene 1", elements))
        for child in children:
            if not _has_sp(child):
                continue
            kind = child.get("type") or "part"
            ordinal[kind] = ordinal.get(kind, 0) + 1
            walk(child, labels + [_label(child, kind, ordinal[kind])])

    walk(body, [])
    return out


def _label(div: XmlElement, kind: str, number: int) -> str:
    """"Act I" / "Scene 2" / the division's own head ("Erster Aufzug")."""
    head = _norm(" ".join(_texts_without(div.find(f"{TEI}head"), _SKIP_TAGS))) if div.find(f"{TEI}head") is not None else ""
    head = head.strip(" .,:;—-")
    kind_name = kind.replace("_", " ").capitalize()
    if not head or head.lower().rstrip(".,: ") == kind.lower():
        return f"{kind_name} {number}"
    if _NUMERAL.match(head):
        return f"{kind_name} {head}"
    return head[:_MAX_HEADING]


def _elements(nodes: list[XmlElement], names: dict[str, str]) -> list[Element]:
    els: list[Element] = []
    for node in nodes:
        if node.tag == f"{TEI}sp":
            els.extend(_speech(node, names))
        elif node.tag == f"{TEI}stage":
            text = _norm(" ".join(_texts_without(node, _SKIP_TAGS)))
            if text:
                els.append(Element(ACTION, text))
        elif node.tag in (f"{TEI}p", f"{TEI}l", f"{TEI}lg"):
            text = _norm(" ".join(_texts_without(node, _SKIP_TAGS)))
            if text:
                els.append(Element(ACTION, text))
        # <head> is the heading; <pb>, <fw>, <note> are print artefacts
    return els


def _speaker(sp: XmlElement, names: dict[str, str]) -> str:
    speaker = sp.find(f"{TEI}speaker")
    name = _norm(" ".join(_texts_without(speaker, _SKIP_TAGS))) if speaker is not None else ""
    if not name:
        who = (sp.get("who") or "").split()
        name = " & ".join(names.get(w.lstrip("#"), w.lstrip("#")) for w in who)
    return name.strip(" .,:;").upper() or "UNKNOWN"


def _speech(sp: XmlElement, names: dict[str, str]) -> list[Element]:
    els = [Element(CHARACTER, _speaker(sp, names))]
    lines: list[str] = []

    def flush() -> None:
        if lines:
            els.append(Element(DIALOGUE, "\n".join(lines)))
            lines.clear()

    for child in sp:
        if child.tag == f"{TEI}speaker" or child.tag in _SKIP_TAGS:
            continue
        text = _norm(" ".join(_texts_without(child, _SKIP_TAGS)))
        if not text:
            continue
        if child.tag == f"{TEI}stage":
            flush()
            els.append(Element(PARENTHETICAL, text.strip(" ()[]")))
        elif child.tag == f"{TEI}lg":
            lines.extend(_norm(" ".join(_texts_without(line, _SKIP_TAGS))) for line in child.iter(f"{TEI}l"))
        else:  # <p>, <l>, <ab>: spoken text, inline <stage> kept in place
            lines.append(text)
    flush()
    return els

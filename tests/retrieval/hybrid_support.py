"""Small synthetic libraries for the hybrid-search, filter and evaluation tests.

Written per test into a temporary folder: a few short Fountain scripts whose words
are chosen so that what each retriever should find is known in advance.
"""

from __future__ import annotations

from pathlib import Path

# Each scene repeats its script's own vocabulary, so scenes of one script are close to
# each other and far from the other scripts' (for the tiny bag-of-words embedder and BM25 alike).
SCRIPTS = {
    "bakery": ("INT. BAKERY - NIGHT", "MARTHA", "Flour dust hangs over the ovens. Martha kneads dough and pulls warm bread "
               "from the oven while the baker sweeps crumbs from the counter.",
               "The bread must rise before dawn or the bakery is finished."),
    "harbour": ("EXT. HARBOUR - DAY", "CAPTAIN", "Gulls wheel over the harbour. The captain coils wet rope on the deck of "
                "the fishing boat while waves slap the pier and the nets dry in the wind.",
                "Cast off the lines, the tide turns and the boat sails at noon."),
    "courtroom": ("INT. COURTROOM - DAY", "JUDGE", "The judge bangs the gavel. The lawyer paces before the jury box while "
                  "the witness grips the rail and the clerk reads the verdict.",
                  "Order in the court, the jury will disregard the witness."),
}


def fountain(title: str, author: str, scenes: list[tuple[str, str, str, str]]) -> str:
    parts = [f"Title: {title}\nAuthor: {author}\n"]
    for heading, cue, action, line in scenes:
        parts.append(f"{heading}\n\n{action}\n\n{cue}\n{line}\n")
    return "\n".join(parts)


def write_library(root: Path, *, scenes_per_script: int = 3, extra: dict[str, str] | None = None) -> Path:
    """One Fountain file per entry of SCRIPTS (author "<Name> Writer"), plus ``extra`` files {name: text}."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (heading, cue, action, line) in SCRIPTS.items():
        scenes = [(f"{heading} {n}", cue, action, line) for n in range(1, scenes_per_script + 1)]
        (root / f"{name}.fountain").write_text(fountain(name.title(), f"{name.title()} Writer", scenes), encoding="utf-8")
    for name, text in (extra or {}).items():
        (root / name).write_text(text, encoding="utf-8")
    return root

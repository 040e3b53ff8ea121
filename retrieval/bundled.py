"""Where the corpus that ships with the package lives.

The corpus is package data (CC0 and public-domain plays and screenplays), not a
Python package, so it is found through this function rather than imported.
"""

from __future__ import annotations

from pathlib import Path


def bundled_corpus_dir() -> Path:
    """Directory holding the bundled scripts (see ATTRIBUTION.md inside it)."""
    path = Path(__file__).resolve().parent / "corpus"
    if not path.is_dir():
        raise FileNotFoundError(f"bundled corpus missing at {path}; was the package installed without its data?")
    return path

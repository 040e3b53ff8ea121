"""Indexes saved before the catalog: one ``meta.json`` (format 1) beside the FAISS files.

``SceneIndex.load`` imports such an index into the catalog once (``read_or_import``), in one transaction,
then renames the file to ``meta.json.imported`` (kept, not deleted: it is the only
copy of the old metadata should anyone need to go back).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from files.durable import fsync_dir
from retrieval.catalog import Catalog, Changes, IndexState, Snapshot

META_FILE = "meta.json"
IMPORTED_SUFFIX = ".imported"
FORMAT_VERSION = 1

log = logging.getLogger(__name__)


class LegacyMetaError(Exception):
    """A meta.json that cannot be imported; the message says what to do."""


def read_or_import(index_dir: Path, catalog: Catalog) -> Snapshot | None:
    """The catalog's snapshot of the index, importing ``index_dir``'s meta.json first
    (one transaction) when the catalog does not hold the index yet; None if neither has it."""
    meta_path = index_dir / META_FILE
    snapshot = catalog.read()
    if snapshot is None:
        if not meta_path.is_file():
            return None
        state, rows = read_meta(meta_path)
        with catalog.new_generation(state, expected=None) as writer:
            writer.apply(rows)
        log.info("scene index %s: imported %s into the catalog", index_dir, META_FILE)
        snapshot = catalog.read()
    elif meta_path.is_file():
        _check_imported(meta_path, snapshot.state, index_name=catalog.index_name)
    if meta_path.is_file():  # imported now, or by a run that stopped before renaming it
        mark_imported(meta_path)
    return snapshot


def _check_imported(meta_path: Path, state: IndexState, *, index_name: str) -> None:
    """A meta.json beside a catalog that already holds the index name: fine if it is
    this meta.json's import (a run stopped before renaming it), refused otherwise, so an
    old index is never silently paired with another index's rows in a shared catalog."""
    old, _ = read_meta(meta_path)
    if (old.generation, old.vectors_file, old.next_id, old.model_id) != (
            state.generation, state.vectors_file, state.next_id, state.model_id):
        raise LegacyMetaError(f"{meta_path} was not imported: the catalog already holds another index named "
                              f"{index_name!r}; open this one under another index name")


def read_meta(path: Path) -> tuple[IndexState, Changes]:
    """The state row and every row of an old index, as a first save would write them."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LegacyMetaError(f"{path} is corrupt ({exc}); remove {path.parent} and ingest the library again") from None
    if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise LegacyMetaError(f"{path}: index format {version!r}, expected {FORMAT_VERSION}; rebuild the index")
    try:
        return _state(meta), _rows(meta)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LegacyMetaError(f"{path} is incomplete or malformed ({exc!r}); remove {path.parent} and ingest the "
                              "library again") from None


def mark_imported(path: Path) -> None:
    os.replace(path, path.with_name(path.name + IMPORTED_SUFFIX))
    fsync_dir(path.parent)


def _state(meta: dict) -> IndexState:
    info = meta.get("index") or {"kind": "flat"}  # saved before index kinds existed: flat
    return IndexState(
        model_id=meta["model_id"], dim=int(meta["dim"]), kind=info.get("kind", "flat"), params=info.get("params") or {},
        pinned=bool(info.get("pinned", False)), deleted=[int(i) for i in info.get("deleted", ())],
        generation=int(meta["generation"]), next_id=int(meta["next_id"]), vectors_file=meta.get("vectors_file") or "",
        ann_file=info.get("ann_file") or "",
    )


def _rows(meta: dict) -> Changes:
    chunks = {int(vid): dict(record) for vid, record in meta["chunks"].items()}
    scripts = {script_id: dict(info) for script_id, info in meta["scripts"].items()}
    files = {path: {"hash": f["hash"], "script_id": f["script_id"]} for path, f in meta["files"].items()}
    scenes = {}
    for scene_id, scene in meta["scenes"].items():
        script_id, _, position = scene_id.rpartition("#")
        scenes[scene_id] = {"script_id": script_id, "scene_index": int(position), "heading": scene.get("heading", ""),
                            "text": scene.get("text", ""), "characters": list(scene.get("characters", ()))}
    # The catalog's foreign keys want every chunk's scene and every scene's script;
    # meta.json never enforced that, so fill any gap rather than refuse the import.
    for record in chunks.values():
        scene_id = f"{record['script_id']}#{record['scene_index']}"
        scenes.setdefault(scene_id, {"script_id": record["script_id"], "scene_index": int(record["scene_index"]),
                                     "heading": record.get("heading", ""), "text": "",
                                     "characters": list(record.get("characters", ()))})
    for scene in scenes.values():
        scripts.setdefault(scene["script_id"], {})
    return Changes(scripts=scripts, files=files, scenes=scenes, chunks=chunks)

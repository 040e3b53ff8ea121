"""Write an index the way SceneIndex.save did before the catalog (format 1): one
``meta.json`` holding every record, next to ``vectors-1.faiss``. Built by hand here so
the import is tested against that format, not against today's code."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from retrieval.chunk import Chunk


def write_legacy_index(index_dir: Path, *, chunks: list[Chunk], vectors: np.ndarray, model_id: str,
                       scripts: dict[str, dict] | None = None, files: dict[str, dict] | None = None,
                       with_kind: bool = True) -> None:
    """``with_kind=False``: as saved before index kinds existed (no "index" entry)."""
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    dim = vectors.shape[1]
    store = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    store.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(len(chunks), dtype=np.int64))
    faiss.write_index(store, str(index_dir / "vectors-1.faiss"))
    records, scenes, script_meta = {}, {}, {}
    for vid, chunk in enumerate(chunks):
        record = asdict(chunk)
        scene_text, title = record.pop("scene_text"), record.pop("title")
        record["characters"] = list(chunk.characters)
        records[str(vid)] = record
        scenes.setdefault(chunk.scene_id, {"heading": chunk.heading, "text": scene_text, "characters": list(chunk.characters)})
        script_meta.setdefault(chunk.script_id, {"title": title})
    for script_id, info in (scripts or {}).items():
        script_meta.setdefault(script_id, {}).update(info)
    meta = {
        "version": 1, "model_id": model_id, "dim": dim, "generation": 1, "vectors_file": "vectors-1.faiss",
        "index": {"kind": "flat", "params": {"hnsw_min_vectors": 50_000}, "pinned": False, "ann_file": "", "deleted": []},
        "next_id": len(chunks), "chunks": records, "scenes": scenes, "scripts": script_meta, "files": files or {},
    }
    if not with_kind:
        del meta["index"]
    (index_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")

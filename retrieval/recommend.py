"""Recommendations: scripts a room has not drawn on yet, close to the scenes it liked.

The room's taste is the set of library scenes its approved generations were grounded
in (the caller reads them from the store; retrieval knows nothing of rooms). Each
liked scene becomes a vector and every library chunk is scored by its best match
among them (the maximum, not a mean taste vector: a room that liked a heist scene and
a ghost story should be offered both, not something halfway between them). The
liked scene that gave a script its score is the reason shown for it.

Scene vectors: a liked scene's vector is the normalised mean of its chunks' vectors.
Where the index offers ``stored_vectors()`` (every live vector with its id) they are
read from there: ``iter_records`` walks the chunks in ascending vector id, so the
i-th record is the vector with the i-th smallest id. Otherwise (an index without that
method, or counts that disagree) the chunk texts read with ``iter_records`` are
embedded again with the searcher's embedder; embedding is deterministic, so these are
the same vectors, at the cost of embedding a few chunks per request.

Order: scripts the room has not seen (no scene of them cited by any of its
generations) first, best score first; then already-seen scripts, offered only
through scenes not cited yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from retrieval.index import SceneIndex, iter_records

DEFAULT_K = 5
MAX_LIKED = 32  # the newest liked scenes that shape the taste; bounds the work per request
_SCENE_KEY = re.compile(r"^(?P<key>.+#\d+)(?:\.\d+)?$")


def scene_key(scene_id: str) -> str:
    """A scene id without its chunk suffix: "a-script#3.1" -> "a-script#3"."""
    match = _SCENE_KEY.match(scene_id.strip())
    return match.group("key") if match else scene_id.strip()


def script_of(scene_id: str) -> str:
    return scene_key(scene_id).rsplit("#", 1)[0]


@dataclass(frozen=True)
class LikedScene:
    """A library scene an approved generation cited; the newest such generation first."""

    scene_id: str
    generation_id: int


@dataclass(frozen=True)
class Recommendation:
    script_id: str
    title: str
    score: float  # cosine similarity of the scene to the liked scene it matched
    scene_id: str  # the best-matching scene of the recommended script
    scene_index: int
    heading: str
    excerpt: str
    seen: bool  # the room already drew on this script
    because_scene_id: str
    because_heading: str
    because_title: str
    because_generation_id: int

    @property
    def reason(self) -> str:
        where = self.because_heading or f"scene {scene_key(self.because_scene_id).rsplit('#', 1)[-1]}"
        return (f"close to \u201c{where}\u201d ({self.because_title or script_of(self.because_scene_id)}), "
                f"which your room approved in generation {self.because_generation_id}")

    def as_json(self) -> dict:
        return {
            "script_id": self.script_id,
            "title": self.title,
            "score": round(float(self.score), 4),
            "seen": self.seen,
            "scene": {"scene_id": self.scene_id, "index": self.scene_index, "heading": self.heading,
                      "excerpt": self.excerpt},
            "because": {"scene_id": self.because_scene_id, "heading": self.because_heading,
                        "title": self.because_title, "generation_id": self.because_generation_id},
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Recommendations:
    items: tuple[Recommendation, ...]
    liked_used: tuple[str, ...]  # liked scene ids found in the index (the taste)
    liked_missing: tuple[str, ...]  # liked scene ids no longer in the index

    def as_json(self) -> dict:
        return {
            "recommendations": [item.as_json() for item in self.items],
            "liked_scenes": list(self.liked_used),
            "liked_missing": list(self.liked_missing),
        }


@dataclass
class _Liked:
    key: str
    generation_id: int
    texts: list[str]
    positions: list[int] = field(default_factory=list)  # of its chunks in iter_records order
    heading: str = ""
    title: str = ""


def recommend(index: SceneIndex, embedder, *, liked: Sequence[LikedScene], seen_scene_ids: Iterable[str],
              k: int = DEFAULT_K, max_liked: int = MAX_LIKED) -> Recommendations:
    """Up to ``k`` scripts for a room, unseen ones first (see the module doc)."""
    found, n_records = _liked_in_index(index, liked, max_liked=max_liked)
    missing = tuple(dict.fromkeys(scene_key(s.scene_id) for s in liked if scene_key(s.scene_id) not in found))
    if not found or k <= 0 or len(index) == 0:
        return Recommendations((), tuple(found), missing)
    vectors = _scene_vectors(index, embedder, list(found.values()), n_records=n_records)
    seen_scenes = {scene_key(s) for s in seen_scene_ids} | set(found)
    seen_scripts = {script_of(s) for s in seen_scenes}
    best = _best_per_script(index, vectors, list(found.values()), seen_scenes, seen_scripts, k=k)
    ranked = sorted(best.values(), key=lambda item: (item.seen, -item.score, item.script_id))
    return Recommendations(tuple(ranked[:k]), tuple(found), missing)


def _liked_in_index(index: SceneIndex, liked: Sequence[LikedScene], *,
                    max_liked: int) -> tuple[dict[str, _Liked], int]:
    """(liked scenes present in the index, newest first, with their chunks; number of records)."""
    wanted: dict[str, _Liked] = {}
    for item in liked:
        key = scene_key(item.scene_id)
        if key not in wanted and len(wanted) < max_liked:
            wanted[key] = _Liked(key, item.generation_id, [])
    if not wanted:
        return {}, 0
    n_records = 0
    for position, record in enumerate(iter_records(index)):
        n_records = position + 1
        entry = wanted.get(record["scene_id"])
        if entry is not None:
            entry.texts.append(record["text"])  # the chunk text is exactly what was embedded
            entry.positions.append(position)
            entry.heading, entry.title = record["heading"], record.get("title", "")
    return {key: entry for key, entry in wanted.items() if entry.texts}, n_records


def _scene_vectors(index: SceneIndex, embedder, liked: list[_Liked], *, n_records: int) -> np.ndarray:
    """One normalised vector per liked scene (rows in ``liked`` order); see the module doc."""
    chunk_vectors = _stored_rows(index, [p for entry in liked for p in entry.positions],
                                                      n_records=n_records)
    if chunk_vectors is None:
        chunk_vectors = np.asarray(embedder.encode([t for entry in liked for t in entry.texts]), dtype=np.float32)
    rows, start = [], 0
    for entry in liked:
        mean = chunk_vectors[start:start + len(entry.texts)].mean(axis=0)
        start += len(entry.texts)
        rows.append(mean / (np.linalg.norm(mean) or 1.0))
    return np.vstack(rows).astype(np.float32)


def _stored_rows(index: SceneIndex, positions: list[int], *, n_records: int) -> np.ndarray | None:
    read = getattr(index, "stored_vectors", None)
    if read is None:
        return None
    vectors, ids = read()
    if len(ids) != n_records or vectors.shape[0] != len(ids):
        return None  # not the one-vector-per-record correspondence this relies on
    by_id = np.argsort(np.asarray(ids), kind="stable")
    return np.array(vectors[by_id[positions]], dtype=np.float32)


def _best_per_script(index: SceneIndex, vectors: np.ndarray, liked: list[_Liked], seen_scenes: set[str],
                     seen_scripts: set[str], *, k: int) -> dict[str, Recommendation]:
    """Each candidate script's best uncited scene and the liked scene it is closest to.

    Fetches more neighbours until ``k`` unseen scripts turn up or the index is exhausted,
    as search does: seen scripts may crowd the nearest neighbours.
    """
    total = len(index)
    fetch = min(total, max(64, 16 * k))
    while True:
        best: dict[str, Recommendation] = {}
        for vector, entry in zip(vectors, liked):
            for record, score in index.search(vector, fetch):
                if record["scene_id"] in seen_scenes:
                    continue  # already cited: not news to this room
                current = best.get(record["script_id"])
                if current is None or score > current.score:
                    best[record["script_id"]] = _recommendation(record, score, entry, seen_scripts)
        unseen = sum(1 for item in best.values() if not item.seen)
        if unseen >= k or fetch >= total:
            return best
        fetch = min(total, fetch * 4)


def _recommendation(record: dict, score: float, entry: _Liked, seen_scripts: set[str]) -> Recommendation:
    scene_text = record.get("scene_text") or record["text"]
    return Recommendation(
        script_id=record["script_id"],
        title=record.get("title", ""),
        score=float(score),
        scene_id=record["scene_id"],
        scene_index=int(record["scene_index"]),
        heading=record["heading"],
        excerpt=" ".join(scene_text.split())[:300],
        seen=record["script_id"] in seen_scripts,
        because_scene_id=entry.key,
        because_heading=entry.heading,
        because_title=entry.title,
        because_generation_id=entry.generation_id,
    )


__all__ = ["recommend", "Recommendation", "Recommendations", "LikedScene", "scene_key", "script_of", "DEFAULT_K",
           "MAX_LIKED"]

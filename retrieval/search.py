"""/similar: the scenes in the library closest to a logline or a pasted scene."""

from __future__ import annotations

from pathlib import Path

from retrieval.chunk import SCENE_TEXT_LIMIT, truncate
from retrieval.index import SceneIndex
from retrieval.types import SceneHit, SceneRef

EXCERPT_CHARS = 300


class SceneSearcher:
    """Loads the index once; ``search`` embeds the query and ranks scenes.

    A long scene has several chunks; hits are per scene (its best chunk), because
    "three windows of the same act" is one answer to a writer, not three.
    """

    def __init__(self, index_dir: str | Path, embedder) -> None:
        self.embedder = embedder
        if SceneIndex.exists(index_dir):
            self.index = SceneIndex.load(index_dir)
            self.index.check_embedder(model_id=embedder.model_id, dim=embedder.dim)
        else:
            self.index = SceneIndex(index_dir, model_id=embedder.model_id, dim=embedder.dim)

    @property
    def is_empty(self) -> bool:
        return len(self.index) == 0

    def search(self, query: str, *, k: int = 5) -> list[SceneHit]:
        if not query.strip() or k <= 0 or self.is_empty:
            return []
        vector = self.embedder.encode([query])[0]
        total = len(self.index)
        fetch = min(total, k * 4)
        while True:
            best = _best_per_scene(self.index.search(vector, fetch))
            if len(best) >= k or fetch >= total:
                break
            fetch = min(total, fetch * 4)
        return [_hit(rec, score) for rec, score in best[:k]]


def _best_per_scene(results: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
    best: dict[str, tuple[dict, float]] = {}
    for rec, score in results:  # already best first
        best.setdefault(rec["scene_id"], (rec, score))
    return list(best.values())


def _hit(rec: dict, score: float) -> SceneHit:
    scene_text = rec.get("scene_text") or rec["text"]
    return SceneHit(
        script_id=rec["script_id"],
        title=rec.get("title", ""),
        score=score,
        scene=SceneRef(
            index=rec["scene_index"],
            heading=rec["heading"],
            # the part of the scene that matched; for a short scene, its opening
            excerpt=truncate(rec["text"], EXCERPT_CHARS),
            text=truncate(scene_text, SCENE_TEXT_LIMIT),
        ),
        scene_id=rec["scene_id"],
        characters=tuple(rec.get("characters", ())),
    )

"""What retrieval hands to the rest of the system: scenes and search hits.

Kept free of numpy/faiss/torch imports so bot.core can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SearchUnavailableError(RuntimeError):
    """A search could not run (its embedding service is down, say); the message is fit to show a writer."""


@dataclass(frozen=True)
class SceneRef:
    index: int  # position of the scene within its script, from 0
    heading: str  # "INT. KITCHEN - NIGHT", or "Act 1, Scene 2" for stage plays
    excerpt: str  # the first few hundred characters of the scene, for display
    text: str = ""  # the scene text (Fountain-like), for prompting


@dataclass(frozen=True)
class SceneHit:
    """One search result: a scene and the script it belongs to.

    ``score``: higher is closer, on the scale of the ranking that produced it (see
    ``retrieval.search``), so compare scores within one result list only:

    - mode "hybrid" (the default): the fused reciprocal-rank score, the sum over the
      dense and BM25 rankings of weight / (60 + rank), rank from 1: about 1/61 ~ 0.016
      for a scene first in one list and absent from the other (dense is weighted down
      to half for queries longer than the embedder reads); not a cosine.
    - mode "dense": the cosine similarity of the query and the scene's best chunk.
    - mode "bm25": the BM25 score of the scene's best chunk.
    - level "script": the sum of the script's two best scene scores, in the mode's units.
    - with a cross-encoder reranker: the reranker's score, for the reranked head of the list.
    """

    script_id: str
    title: str
    score: float  # see the class docstring: fused RRF score (hybrid), cosine (dense), BM25 (bm25)
    scene: SceneRef
    scene_id: str = ""  # stable id "<script_id>#<index>[.<chunk>]"
    characters: tuple[str, ...] = field(default=())

    def as_json(self) -> dict:
        return {
            "script_id": self.script_id,
            "title": self.title,
            "score": round(float(self.score), 4),
            "scene_id": self.scene_id,
            "characters": list(self.characters),
            "scene": {"index": self.scene.index, "heading": self.scene.heading, "excerpt": self.scene.excerpt},
        }

"""What retrieval hands to the rest of the system: scenes and search hits.

Kept free of numpy/faiss/torch imports so bot.core can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SceneRef:
    index: int  # position of the scene within its script, from 0
    heading: str  # "INT. KITCHEN - NIGHT", or "Act 1, Scene 2" for stage plays
    excerpt: str  # the first few hundred characters of the scene, for display
    text: str = ""  # the scene text (Fountain-like), for prompting


@dataclass(frozen=True)
class SceneHit:
    """One search result: a scene and the script it belongs to."""

    script_id: str
    title: str
    score: float  # cosine similarity, higher is closer
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

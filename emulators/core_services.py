"""A core wired to stand-ins on loopback, for chat-side tests and benchmarks: a real SQLite store,
the backend the caller names (usually emulators.openai_backend), and a searcher over a small fixed
list of scenes (retrieval is tested for real in tests/retrieval)."""

from __future__ import annotations

from pathlib import Path

from bot.cli.runtime import RegistryAdapters
from bot.core.services import CoreServices
from config.settings import load_settings
from llm.client import ChatClient
from retrieval.types import SceneHit, SceneRef
from store.db import make_engine, make_session_factory, upgrade

LIBRARY = [
    SceneHit(script_id="cyber-bob-ep00001", title="Cyber Bob: Episode 1", score=0.0,
             scene=SceneRef(index=0, heading="INT. LAB - NIGHT", excerpt="BOB boots up for the first time.",
                            text="INT. LAB - NIGHT\n\nBOB boots up for the first time.\n\nBOB\nHello, world."),
             scene_id="cyber-bob-ep00001#0.0", characters=("BOB",)),
    SceneHit(script_id="am000658", title="Bianca", score=0.0,
             scene=SceneRef(index=2, heading="Act I, Scene 3", excerpt="HILDA waits at the castle gate.",
                            text="HILDA\nHe will not come tonight."),
             scene_id="am000658#2.0", characters=("HILDA",)),
]


class ListSearch:
    """Ranks the fixed library by shared words with the query."""

    def search(self, query: str, *, k: int = 5) -> list[SceneHit]:
        words = set(query.lower().split())
        scored = []
        for hit in LIBRARY:
            overlap = len(words & set(hit.scene.text.lower().split()))
            scored.append(SceneHit(hit.script_id, hit.title, overlap / (len(words) or 1), hit.scene, hit.scene_id,
                                   hit.characters))
        return sorted(scored, key=lambda hit: -hit.score)[:k]


def make_core_services(tmp_path: Path, backend_url: str, **overrides) -> CoreServices:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    settings = load_settings(general={"home": tmp_path, "database_url": url}, **overrides)
    return CoreServices(
        settings=settings,
        sessions=make_session_factory(make_engine(url)),
        chat=ChatClient(backend_url, silence_timeout_s=30, retries=0),
        searcher_factory=ListSearch,
        adapters=RegistryAdapters(settings.adapter_dir),
    )

"""Training prompts get back the scenes retrieval showed: looked up in a real index's catalog."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from retrieval.bundled import bundled_corpus_dir


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    from retrieval.embed import Embedder
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return Embedder(build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder")), batch_size=64)


def test_retrieved_scene_ids_come_back_as_the_scenes_the_prompt_showed(tiny_embedder):
    from retrieval.index import SceneIndex
    from retrieval.ingest import ingest_paths
    from training.exemplars import catalog_exemplars

    settings = load_settings()
    assert catalog_exemplars(settings) is None  # no index yet: prompts go without exemplars
    play = next(p for p in sorted((bundled_corpus_dir() / "plays" / "amdracor").glob("*.xml")))
    ingest_paths([play], index_dir=settings.index_dir, embedder=tiny_embedder, progress=False)
    index = SceneIndex.load(settings.index_dir)
    [script_id] = index.script_ids()
    title = index.script_info(script_id)["title"]
    index.close()

    lookup = catalog_exemplars(settings)
    hits = lookup([f"{script_id}#1", "gone#7", f"{script_id}#0"])
    assert [hit.scene_id for hit in hits] == [f"{script_id}#1", f"{script_id}#0"]  # the prompt's order
    assert all(hit.title == title and len(hit.scene.text) > 100 for hit in hits)


def test_a_training_example_shows_the_exemplars_its_generation_was_shown(tiny_embedder):
    from retrieval.index import SceneIndex
    from retrieval.ingest import ingest_paths
    from screenplay.prompting import build_messages, parse_dialogue_request
    from store.db import session_scope
    from store.feedback import record_feedback
    from store.generations import record_generation
    from store.rooms import get_or_create_room, get_or_create_user
    from training.dataset import build_dataset
    from training.exemplars import catalog_exemplars
    from training.run import _sessions

    settings = load_settings()
    play = next(p for p in sorted((bundled_corpus_dir() / "plays" / "amdracor").glob("*.xml")))
    ingest_paths([play], index_dir=settings.index_dir, embedder=tiny_embedder, progress=False)
    index = SceneIndex.load(settings.index_dir)
    [script_id] = index.script_ids()
    index.close()
    sessions = _sessions(settings)
    prompt = "two sisters argue about the farm characters: June, Rose"
    with session_scope(sessions) as session:
        room = get_or_create_room(session, platform="slack", external_id="T1:C1", name="c")
        user = get_or_create_user(session, platform="slack", external_id="U1", display_name="ana")
        generation = record_generation(session, room=room, user=user, prompt=prompt, parameters={},
                                       retrieved_scene_ids=[f"{script_id}#2"], output="INT. FARM - DAY\n\nJUNE\nNo.",
                                       model="m", adapter=None, latency_ms=5)
        record_feedback(session, generation_id=generation.id, user=user, kind="approve")
    lookup = catalog_exemplars(settings)
    [example] = build_dataset(sessions, validation_share=0.1, exemplar_text=lookup).examples
    shown = lookup([f"{script_id}#2"])
    expected = build_messages(parse_dialogue_request(prompt), shown, exemplar_chars=600, worked_example=False)
    assert example.messages[:-1] == expected
    assert any(f"From {shown[0].title}:" in m["content"] for m in example.messages[:-1])

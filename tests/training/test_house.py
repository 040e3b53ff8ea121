"""The house adapter (training.house): corpus scenes recast in the grammar's form, trained,
judged against the base model, published with its scores, promoted only when it pays, and
then the starting point of a room's own training."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from registry import versions as registry
from screenplay.grammar import parse_scene, render_fountain
from screenplay.judge import judge_scene
from training.house import HOUSE_KIND, house_data, house_scene

EXCERPT = """INT. PARLOR - NIGHT

The fire is low. HELENA stands by the window.

HELENA
(quietly)
You came back.

MARCUS
I said I would.
I always do.

He sets down his hat.

HELENA
Not always.

MARCUS
This time, then.

HELENA
Then sit."""


def test_an_excerpt_is_recast_in_the_grammars_form():
    text = house_scene(EXCERPT)
    assert text == ("INT. PARLOR - NIGHT\n\nThe fire is low. HELENA stands by the window.\n\n"
                    "HELENA\nYou came back.\n\nMARCUS\nI said I would. I always do.\n\n"
                    "HELENA\nNot always.\n\nMARCUS\nThis time, then.\n\nHELENA\nThen sit.")
    assert render_fountain(parse_scene(text)) == text  # exactly what the grammar decodes
    assert judge_scene(text, requested=("HELENA", "MARCUS")).valid


def test_what_does_not_fit_the_form_is_left_out():
    assert house_scene(EXCERPT, max_speeches=4).count("\n\n") == 5  # heading, action, four speeches
    assert house_scene(EXCERPT.split("\n\n", 1)[1]) is None  # no heading
    assert house_scene("INT. PARLOR - NIGHT\n\nHELENA\nYou came back.\n\nMARCUS\nI did.") is None  # two speeches


def test_the_bundled_corpus_gives_house_examples_and_never_a_held_out_scene():
    from training.corpus_scenes import corpus_scenes, training_scenes

    data = house_data(training_scenes())
    assert len(data.chats) >= 200, data.dropped
    heldout = {scene.content_hash for scene in corpus_scenes() if scene.heldout}
    assert not heldout & set(data.hashes)
    for chat in data.chats[:: max(1, len(data.chats) // 40)]:
        scene = chat[-1]["content"]
        assert render_fountain(parse_scene(scene)) == scene
        assert chat[0]["role"] == "system" and chat[-1]["role"] == "assistant"
    train, validation = data.split(0.1)
    assert len(train) + len(validation) == len(data.chats) and validation


@pytest.mark.usefixtures("tiny_training_env")
def test_a_house_adapter_is_published_promoted_only_when_it_pays_and_rooms_start_from_it(monkeypatch):
    from tests.training.run_support import import_scenes
    from training.corpus_scenes import training_scenes
    from training.house import build_house_adapter, house_start
    from training.run import run_training

    scenes = training_scenes()[:40]
    monkeypatch.setenv("WRITERSROOM_TRAINING_PROMOTE_MARGIN", "0.99")  # no adapter halves perplexity
    settings = load_settings()
    result = build_house_adapter(settings, progress=False, scenes=scenes)

    assert result.version.startswith("house-") and not result.promoted
    assert any("perplexity" in reason for reason in result.reasons)
    manifest = registry.get_version(settings.adapter_dir, result.version).manifest
    assert manifest.training["kind"] == HOUSE_KIND and manifest.data_hash == result.data_hash
    assert manifest.example_count == result.examples > 0
    assert manifest.metrics["candidate"]["validation_ppl"] > 0 and manifest.metrics["serving"]["label"] == "base model"
    assert registry.serving(settings.adapter_dir).default is None  # not promoted: nothing serves it
    assert house_start(settings, base_name="tiny-chat") is None  # and no room starts from it

    registry.promote(settings.adapter_dir, result.version)  # as the gate does when it pays
    assert house_start(settings, base_name="tiny-chat").version == result.version
    import_scenes(12)
    room_run = run_training(load_settings(), trigger="test", progress=False)
    room_manifest = registry.get_version(settings.adapter_dir, room_run.version).manifest
    assert room_manifest.training["started_from"] == result.version
    assert room_run.metrics["serving"]["label"] == result.version  # judged against the house adapter

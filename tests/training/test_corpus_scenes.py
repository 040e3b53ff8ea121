"""Dialogue excerpts of the bundled corpus as Fountain examples, on the real corpus files:
enough of them, each a valid scene with a prompt that parses back to its speakers, a
held-out set that stays put and never meets the training set, and a store round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from retrieval.bundled import bundled_corpus_dir
from retrieval.document import CHARACTER
from retrieval.parse.fountain import parse_elements
from screenplay.form import HEADING_LINE, validate_fountain
from screenplay.prompting import parse_dialogue_request
from training.corpus_scenes import (
    AUTHOR,
    build_corpus,
    clear_cache,
    corpus_scenes,
    feedback_records,
    heldout_scenes,
    training_scenes,
)
from training.dataset import build_dataset
from training.feedback_format import BadLine, content_hash, iter_feedback
from training.feedback_import import import_lines

MAX_CHARS = 1100
PLAYS = bundled_corpus_dir() / "plays"


@pytest.fixture(scope="module")
def scenes():
    return corpus_scenes()


def test_the_corpus_gives_enough_excerpts_from_english_scripts_only(scenes) -> None:
    build = build_corpus()
    assert len(scenes) >= 650
    assert {"test000001", "test000002"} <= set(build.non_english)  # Gogol (ru) and Lessing (de)
    assert not {"test000001", "test000002"} & {scene.script_id for scene in scenes}
    assert len({scene.script_id for scene in scenes}) >= 40
    # drops are counted, and rare: the cutting is meant to produce valid scenes
    assert build.dropped_invalid + build.dropped_prompt < 0.05 * len(scenes)
    assert build.stats["excerpts"] == len(scenes)


def test_every_excerpt_is_a_valid_fountain_scene_of_several_speeches(scenes) -> None:
    for scene in scenes:
        report = validate_fountain(scene.text, scene.characters)
        assert report.valid, (scene.script_id, report.problems)
        assert len(scene.text) <= MAX_CHARS
        assert scene.text.split("\n", 1)[0] == scene.heading and HEADING_LINE.match(scene.heading)
        cues = [el.text for el in parse_elements(scene.text) if el.kind == CHARACTER]
        # every cue parses as the speaker it was written for, and nothing else reads as a cue
        assert set(cues) == set(scene.characters), scene.text
        assert len(cues) >= 4 and len(scene.characters) >= 2
        assert all(name == name.upper() and name[-1] not in ".,:;" for name in scene.characters)


def test_a_smaller_limit_is_respected() -> None:
    small = corpus_scenes(max_chars=700, min_speeches=3)
    assert len(small) >= 650
    assert all(len(scene.text) <= 700 for scene in small)


def test_prompts_parse_back_to_speakers_of_the_scene(scenes) -> None:
    for scene in scenes:
        request = parse_dialogue_request(scene.prompt)
        assert 2 <= len(request.characters) <= 3, scene.prompt
        assert set(request.characters) <= {name.upper() for name in scene.characters}, scene.prompt
        assert 6 <= len(request.situation.split()) <= 20, scene.prompt
        assert "characters:" not in request.situation.lower() and "tone:" not in request.situation.lower()
        assert scene.content_hash == content_hash(scene.prompt, scene.text)


def test_heldout_and_training_sets_are_disjoint_and_the_heldout_share_is_about_an_eighth(scenes) -> None:
    heldout = [scene for scene in scenes if scene.heldout]
    training = training_scenes()
    assert len(heldout) + len(training) == len(scenes)
    assert 0.08 <= len(heldout) / len(scenes) <= 0.20
    assert not {s.content_hash for s in heldout} & {s.content_hash for s in training}
    assert not {s.text for s in heldout} & {s.text for s in training}
    assert len({s.text for s in scenes}) == len(scenes)
    assert not any(scene.heldout for scene in training)


def test_the_evaluation_set_is_the_same_on_every_build(scenes) -> None:
    first = heldout_scenes(64)
    assert len(first) == 64 and all(scene.heldout for scene in first)
    assert {scene.content_hash for scene in first} <= {scene.content_hash for scene in scenes if scene.heldout}
    # A sample of the whole corpus, not its first few scripts: one excerpt per script first.
    held_scripts = {scene.script_id for scene in scenes if scene.heldout}
    assert len({scene.script_id for scene in first[:32]}) == min(32, len(held_scripts))
    clear_cache()  # a fresh build, as in a new process
    assert heldout_scenes(64) == first
    assert heldout_scenes(10) == first[:10]
    ids = [scene.script_id for scene in corpus_scenes()]
    assert ids == sorted(ids)  # by script, then by position within it


def test_feedback_records_import_and_come_back_as_training_examples(session_factory: sessionmaker[Session]) -> None:
    chosen = training_scenes()[::10]  # a spread over every script; the whole set imports alike
    records = feedback_records(chosen, room="bench:corpus")
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    parsed = list(iter_feedback(lines))
    assert not [line for line in parsed if isinstance(line, BadLine)]
    assert all(record["author"] == AUTHOR and record["room"] == "bench:corpus" for record in records)

    result = import_lines(session_factory, parsed, source="corpus.jsonl")
    assert result.imported == len(chosen) and result.already == 0
    data = build_dataset(session_factory, validation_share=0.1, room="bench:corpus")
    assert data.size == len(chosen)
    assert {example.text for example in data.examples} == {scene.text for scene in chosen}
    by_hash = {scene.content_hash: scene for scene in chosen}
    for example in data.examples:
        scene = by_hash[example.content_hash]
        assert example.prompt == scene.prompt
        assert example.characters == parse_dialogue_request(scene.prompt).characters
        assert example.messages[-1] == {"role": "assistant", "content": scene.text}
    # importing again adds nothing
    assert import_lines(session_factory, parsed, source="corpus.jsonl").imported == 0


def test_a_malformed_tei_file_is_skipped_and_the_others_still_produce(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "plays").mkdir(parents=True)
    shutil.copy(PLAYS / "amdracor" / "tyler-the-contrast.xml", corpus / "plays")
    shutil.copy(PLAYS / "dracor" / "lessing-emilia-galotti.xml", corpus / "plays")
    broken = corpus / "plays" / "broken.xml"
    broken.write_text('<?xml version="1.0"?>\n<TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><div>', "utf-8")

    build = build_corpus(corpus)
    assert [Path(path).name for path, _ in build.skipped_files] == ["broken.xml"]
    assert build.non_english == ("test000002",)
    assert build.scenes and {scene.script_id for scene in build.scenes} == {"am000716"}
    assert corpus_scenes(corpus) == list(build.scenes)


PLAY = """<?xml version="1.0" encoding="UTF-8"?>
<TEI xmlns="http://www.tei-c.org/ns/1.0" xml:id="zz000001" xml:lang="en">
<teiHeader><fileDesc><titleStmt><title>The Rent</title></titleStmt></fileDesc></teiHeader>
<text><body><div type="act"><head>ACT I</head>
<stage>A room in the Pendleton house. Evening.</stage>
<sp><speaker>Mrs. Jenks.</speaker><p>The rent, Tom. It was due on Monday.</p></sp>
<sp><speaker>Tom.</speaker><stage>(rising)</stage><p>I know it. I have it nearly.</p></sp>
<stage>He crosses to the window and looks down into the street for a long while,
as if someone there might lend him the rest.</stage>
<sp><speaker>Mrs. Jenks.</speaker><p>Nearly is not the rent.</p></sp>
<sp><speaker>Tom.</speaker><p>Then take the watch.</p><stage>He holds it out.</stage><p>It was my father's.</p></sp>
<sp><speaker>Mrs. Jenks.</speaker><p>Keep it. Friday, then.</p></sp>
</div></body></text></TEI>
"""


def test_a_play_scene_becomes_fountain_with_a_heading_from_its_set(tmp_path: Path) -> None:
    (tmp_path / "rent.xml").write_text(PLAY, "utf-8")
    [scene] = corpus_scenes(tmp_path)
    assert scene.heading == "INT. PENDLETON HOUSE - EVENING"
    assert scene.characters == ("MRS. JENKS", "TOM")
    assert scene.text == (
        "INT. PENDLETON HOUSE - EVENING\n\n"
        "A room in the Pendleton house. Evening.\n\n"
        "MRS. JENKS\nThe rent, Tom. It was due on Monday.\n\n"
        "TOM\n(rising)\nI know it. I have it nearly.\n\n"
        "He crosses to the window and looks down into the street for a long while, as if someone there "
        "might lend him the rest.\n\n"
        "MRS. JENKS\nNearly is not the rent.\n\n"
        "TOM\nThen take the watch.\n(He holds it out)\nIt was my father's.\n\n"
        "MRS. JENKS\nKeep it. Friday, then."
    )
    request = parse_dialogue_request(scene.prompt)
    assert request.characters == ("MRS. JENKS", "TOM")
    assert "Pendleton house" in request.situation and "in the evening" in request.situation


def test_a_scene_number_before_the_set_is_not_part_of_the_place(tmp_path: Path) -> None:
    numbered = PLAY.replace("<stage>A room in the Pendleton house. Evening.</stage>",
                            "<stage>I. The PALACE. Evening.</stage>")
    (tmp_path / "rent.xml").write_text(numbered, "utf-8")
    [scene] = corpus_scenes(tmp_path)
    assert scene.heading == "INT. PALACE - EVENING"

"""The training dataset as the room would judge it, on SQLite and PostgreSQL: who is left
out, which text is learnt, duplicates, and a train/validation split that holds still."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy.orm import Session, sessionmaker

from screenplay.prompting import FOLLOW_UP_NOTE as NOTE
from screenplay.prompting import build_messages, parse_dialogue_request
from store import feedback, generations, rooms, session_scope
from training.dataset import (
    VALIDATION,
    Example,
    assign_splits,
    bucket,
    build_dataset,
    write_jsonl,
)
from training.feedback_format import content_hash

PROMPT = "a detective corners her former partner in a rainy alley characters: Maya, Cole tone: tense"
SCENE = "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out.\n\nCOLE\nI sold you time."


class Room:
    """Writes chat activity into the store the way the bot does."""

    def __init__(self, sessions: sessionmaker[Session], room: str = "T1:C1") -> None:
        self.sessions, self.room = sessions, room

    def _user(self, session: Session, name: str):
        return rooms.get_or_create_user(session, platform="slack", external_id=name.upper(), display_name=name)

    def generate(self, prompt: str = PROMPT, output: str = SCENE, *, by: str = "ana", scene_ids=(),
                 parent_id: int | None = None, parameters: dict | None = None) -> int:
        with session_scope(self.sessions) as session:
            room = rooms.get_or_create_room(session, platform="slack", external_id=self.room, name="#pilot")
            generation = generations.record_generation(
                session, room=room, user=self._user(session, by), prompt=prompt, parameters=parameters or {},
                retrieved_scene_ids=list(scene_ids), output=output, model="smollm2", adapter=None, latency_ms=10,
                parent_id=parent_id)
            return generation.id

    def vote(self, generation_id: int, kind: str, *, by: str, text: str | None = None) -> None:
        with session_scope(self.sessions) as session:
            feedback.record_feedback(session, generation_id=generation_id, user=self._user(session, by), kind=kind,
                                     edited_text=text)

    def approved(self, prompt: str = PROMPT, output: str = SCENE, *, by: str = "ana", **kwargs) -> int:
        generation_id = self.generate(prompt, output, by=by, **kwargs)
        self.vote(generation_id, "approve", by=by)
        return generation_id

    def opt_out(self, name: str) -> None:
        with session_scope(self.sessions) as session:
            rooms.set_training_consent(session, user=self._user(session, name), consent=False)


@pytest.fixture
def room(session_factory: sessionmaker[Session]) -> Room:
    return Room(session_factory)


def build(room: Room, **kwargs):
    return build_dataset(room.sessions, validation_share=kwargs.pop("validation_share", 0.1), **kwargs)


def texts(data) -> set[str]:
    return {e.text for e in data.examples}


def test_an_approved_scene_is_an_example_with_the_serving_prompt(room: Room) -> None:
    generation_id = room.approved()
    data = build(room)
    [example] = data.examples
    assert (example.prompt, example.text, example.generation_id) == (PROMPT, SCENE, generation_id)
    assert example.characters == ("MAYA", "COLE")
    assert (example.room, example.author) == ("T1:C1", "ana")
    served = build_messages(parse_dialogue_request(PROMPT), [], exemplar_chars=600, worked_example=False)  # less the worked example
    assert example.messages == [*served, {"role": "assistant", "content": SCENE}]
    assert data.size == 1 and data.excluded == {"opted_out": 0, "contested": 0, "duplicates": 0}


def test_the_retrieved_exemplars_are_in_the_prompt_as_served(room: Room) -> None:
    room.approved(scene_ids=["casablanca#12"])
    library = {"casablanca#12": SimpleNamespace(title="Casablanca",
                                                scene=SimpleNamespace(text="INT. RICK'S CAFE - NIGHT\n\nRICK\nOf all the gin joints.",
                                                                      excerpt=""))}
    asked: list[list[str]] = []

    def lookup(ids: list[str]) -> list:
        asked.append(ids)
        return [library[i] for i in ids if i in library]

    [example] = build(room, exemplar_text=lookup, exemplar_chars=300).examples
    assert asked == [["casablanca#12"]]
    assert "From Casablanca:" in example.messages[-2]["content"]
    assert "Of all the gin joints." in example.messages[-2]["content"]
    assert example.messages[:-1] == build_messages(parse_dialogue_request(PROMPT), [library["casablanca#12"]],
                                                   exemplar_chars=300, worked_example=False)


def test_the_latest_consenting_edit_is_the_text_learnt(room: Room) -> None:
    generation_id = room.generate()
    room.vote(generation_id, "edit", by="ana", text="EXT. ALLEY - NIGHT\n\nMAYA\nFirst edit.")
    room.vote(generation_id, "edit", by="bo", text="EXT. ALLEY - NIGHT\n\nMAYA\nBetter edit.")
    room.vote(generation_id, "edit", by="cy", text="EXT. ALLEY - NIGHT\n\nMAYA\nCy's edit.")
    room.opt_out("cy")
    room.vote(generation_id, "approve", by="bo")
    [example] = build(room).examples
    assert example.text == "EXT. ALLEY - NIGHT\n\nMAYA\nBetter edit."
    assert example.edited_from == SCENE
    assert example.messages[-1] == {"role": "assistant", "content": example.text}


def test_an_opted_out_writer_contributes_nothing(room: Room) -> None:
    room.approved("a heist goes wrong", "INT. VAULT - NIGHT\n\nANN\nRun.", by="ana")
    mine = room.approved("a ghost haunts a lighthouse", "INT. LIGHTHOUSE - NIGHT\n\nKEEPER\nWho's there?", by="bo")
    voted = room.generate("two sisters argue about the farm", "EXT. FARM - DAY\n\nJUNE\nSell it.", by="ana")
    room.vote(voted, "approve", by="bo")  # only bo approved ana's scene
    room.opt_out("bo")
    data = build(room)
    assert texts(data) == {"INT. VAULT - NIGHT\n\nANN\nRun."}
    assert data.excluded["opted_out"] == 2
    assert all(e.generation_id != mine for e in data.examples)


def test_a_contested_scene_is_left_out_and_counted(room: Room) -> None:
    generation_id = room.generate()
    room.vote(generation_id, "approve", by="ana")
    room.vote(generation_id, "reject", by="bo")
    data = build(room)
    assert data.size == 0 and data.excluded["contested"] == 1


def test_duplicates_are_kept_once_the_newest(room: Room) -> None:
    room.approved(PROMPT, SCENE)
    room.approved(PROMPT.replace(" ", "  "), SCENE.replace("\n", "\r\n") + "   \n")  # same scene, other spacing
    newest = room.approved(PROMPT, SCENE)
    data = build(room)
    [example] = data.examples
    assert example.generation_id == newest
    assert data.excluded["duplicates"] == 2


def test_rejected_and_superseded_outputs_are_kept_for_preference_data(room: Room) -> None:
    first = room.generate(PROMPT, "EXT. ALLEY - NIGHT\n\nMAYA\nUm.")
    second = room.generate(PROMPT, "EXT. ALLEY - NIGHT\n\nMAYA\nWell.", parent_id=first)  # Regenerate on first
    room.vote(second, "reject", by="bo")
    third = room.approved(PROMPT, SCENE, parent_id=second)
    alone = room.generate("a heist goes wrong", "INT. VAULT - NIGHT\n\nANN\nNo.")
    room.vote(alone, "reject", by="ana")
    data = build(room)
    assert [e.generation_id for e in data.examples] == [third]
    by_id = {item["generation_id"]: item for item in data.rejected}
    assert set(by_id) == {first, second, alone}
    assert (by_id[first]["reason"], by_id[second]["reason"], by_id[alone]["reason"]) == \
        ("superseded", "rejected", "rejected")
    assert by_id[first]["approved_text"] == SCENE and by_id[second]["approved_text"] == SCENE
    assert by_id[alone]["approved_text"] is None
    assert by_id[first]["prompt"] == PROMPT and by_id[first]["text"] == "EXT. ALLEY - NIGHT\n\nMAYA\nUm."


def test_a_regeneration_by_an_opted_out_writer_supersedes_nothing(room: Room) -> None:
    first = room.generate()
    room.generate(parent_id=first, by="bo", output="EXT. ALLEY - NIGHT\n\nCOLE\nAgain.")
    room.opt_out("bo")
    assert build(room).rejected == []


def test_one_room_at_a_time(session_factory: sessionmaker[Session]) -> None:
    Room(session_factory, "T1:C1").approved("a heist goes wrong", "INT. VAULT - NIGHT\n\nANN\nRun.")
    Room(session_factory, "T1:C2").approved()
    data = build_dataset(session_factory, validation_share=0.1, room="T1:C2")
    assert [e.room for e in data.examples] == ["T1:C2"]
    assert build_dataset(session_factory, validation_share=0.1, room="T9:none").size == 0


def test_a_follow_up_is_learnt_with_the_conversation_it_was_served(room: Room) -> None:
    parent = room.generate(PROMPT, "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out.")
    room.approved("a detective corners her former partner in a rainy alley. Then: make Cole angrier "
                  "characters: MAYA, COLE tone: tense", SCENE, parent_id=parent,
                  parameters={"follow_up": "make Cole angrier"})
    [example] = build(room).examples
    assert example.messages[-3:] == [
        {"role": "assistant", "content": "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out."},
        {"role": "user", "content": NOTE.format(direction="make Cole angrier")},
        {"role": "assistant", "content": SCENE},
    ]


def _scenes(count: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"scene number {i} in the bakery", f"INT. BAKERY - DAY\n\nANN\nLoaf {i}.") for i in range(start, start + count)]


def test_the_split_holds_still_as_more_data_arrives(room: Room) -> None:
    for prompt, text in _scenes(30):
        room.approved(prompt, text)
    before = build(room, validation_share=0.2)
    assert before.validation and before.train
    for prompt, text in _scenes(40, start=30):
        room.approved(prompt, text)
    after = build(room, validation_share=0.2)
    split_after = {e.content_hash: e.split for e in after.examples}
    assert all(split_after[e.content_hash] == e.split for e in before.examples)
    assert after.size == 70 and after.data_hash != before.data_hash
    assert build(room, validation_share=0.2).data_hash == after.data_hash  # same data, same hash
    for example in after.examples:
        assert (example.split == VALIDATION) == (bucket(example.content_hash) < 200)


def test_two_examples_always_give_one_validation_example(room: Room) -> None:
    room.approved(*_scenes(1)[0])
    assert [e.split for e in build(room).examples] == ["train"]
    room.approved(*_scenes(1, start=1)[0])
    data = build(room, validation_share=0.001)
    assert len(data.validation) == 1 and len(data.train) == 1


def test_assign_splits_keeps_one_train_example_at_a_large_share() -> None:
    examples = [Example(prompt=p, text=t, messages=[], characters=(), room=None, author=None, generation_id=i,
                        content_hash=content_hash(p, t), split="train") for i, (p, t) in enumerate(_scenes(3))]
    splits = [e.split for e in assign_splits(examples, 0.999)]
    assert splits.count("train") == 1 and splits.count("validation") == 2


def test_write_jsonl_writes_the_feedback_format(room: Room, tmp_path) -> None:
    generation_id = room.generate()
    room.vote(generation_id, "edit", by="ana", text="EXT. ALLEY - NIGHT\n\nMAYA\nEdited.")
    room.vote(generation_id, "approve", by="ana")
    path = tmp_path / "out" / "train.jsonl"
    assert write_jsonl(path, build(room).examples) == 1
    [line] = [json.loads(raw) for raw in path.read_text().splitlines()]
    assert line == {"prompt": PROMPT, "text": "EXT. ALLEY - NIGHT\n\nMAYA\nEdited.", "room": "T1:C1",
                    "author": "ana", "characters": ["MAYA", "COLE"], "edited_from": SCENE}

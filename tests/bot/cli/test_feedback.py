"""`writersroom feedback import|export` as a room's admin would use them, in process
through Typer's runner, against the SQLite store in an isolated home (one test also on
PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from store import feedback, make_engine, make_session_factory, rooms, session_scope
from tests.store.conftest import db_url, postgres_url  # noqa: F401  (SQLite and PostgreSQL stores)
from training.dataset import build_dataset

runner = CliRunner()

MAYA = {"prompt": "a detective corners her partner characters: Maya, Cole", "room": "T1:C42", "author": "ana",
        "text": "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out.\n\nCOLE\nI sold you time.",
        "characters": ["MAYA", "COLE"]}
FARM = {"prompt": "two sisters argue about the farm", "room": "T1:C42", "author": "bo",
        "text": "EXT. FARM - DAY\n\nJUNE\nSell it.\n\nMAE\nNever.", "characters": ["JUNE", "MAE"],
        "edited_from": "EXT. FARM - DAY\n\nJUNE\nSell.\n\nMAE\nNo."}
VAULT = {"prompt": "a heist goes wrong", "room": "T1:C7", "author": "cy", "text": "INT. VAULT - NIGHT\n\nANN\nRun.",
         "characters": []}


def cli(*args: str):
    return runner.invoke(app, list(args))


def write(path: Path, *lines: dict | str) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def export(*args: str) -> list[dict]:
    result = cli("feedback", "export", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def imported(path: Path, *args: str) -> dict:
    result = cli("feedback", "import", str(path), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def store(home: Path):
    return make_session_factory(make_engine(f"sqlite:///{home / 'writersroom.db'}"))


def test_imported_scenes_are_exported_as_training_would_see_them(tmp_path, isolated_home) -> None:
    outcome = imported(write(tmp_path / "in.jsonl", MAYA, FARM, VAULT))
    assert (outcome["imported"], outcome["already_there"], outcome["bad"]) == (3, 0, [])
    assert outcome["rooms"] == {"T1:C42": 2, "T1:C7": 1}
    assert export() == [MAYA, FARM, VAULT]


def test_the_edited_text_is_what_is_learnt(tmp_path, isolated_home) -> None:
    imported(write(tmp_path / "in.jsonl", FARM))
    [example] = build_dataset(store(isolated_home), validation_share=0.1).examples
    assert example.text == FARM["text"] and example.edited_from == FARM["edited_from"]
    with session_scope(store(isolated_home)) as session:
        [generation] = [item.generation for item in feedback.approved_examples(session)]
        assert generation.output == FARM["edited_from"] and generation.model == "imported"
        assert generation.parameters["source"] == "in.jsonl" and generation.parameters["line"] == 1


def test_round_trip_through_a_fresh_store_keeps_every_example(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WRITERSROOM_HOME", str(tmp_path / "first"))
    imported(write(tmp_path / "in.jsonl", MAYA, FARM, VAULT))
    out = tmp_path / "export.jsonl"
    assert cli("feedback", "export", "--out", str(out)).exit_code == 0
    monkeypatch.setenv("WRITERSROOM_HOME", str(tmp_path / "second"))
    assert imported(out)["imported"] == 3
    assert export() == [json.loads(line) for line in out.read_text().splitlines()] == [MAYA, FARM, VAULT]


def test_duplicate_lines_and_reimports_are_stored_once(tmp_path, isolated_home) -> None:
    respaced = {**MAYA, "text": MAYA["text"].replace("\n", "\r\n") + "  "}
    path = write(tmp_path / "in.jsonl", MAYA, VAULT, respaced, MAYA)
    assert (imported(path)["imported"], imported(path)["already_there"]) == (2, 4)
    result = cli("feedback", "import", str(path))
    assert result.exit_code == 0 and "imported 0 of 4 lines" in result.stdout and "4 already there" in result.stdout
    assert export() == [MAYA, VAULT]


def test_the_same_scene_may_go_to_two_rooms(tmp_path, isolated_home) -> None:
    path = write(tmp_path / "in.jsonl", MAYA)
    imported(path)
    assert imported(path, "--room", "T1:C99")["rooms"] == {"T1:C99": 1}
    # Across rooms the same content is one example (the newest); each room still has its own.
    assert [line["room"] for line in export()] == ["T1:C99"]
    assert export("--room", "T1:C42") == [MAYA]
    assert export("--room", "T1:C99") == [{**MAYA, "room": "T1:C99"}]


def test_bad_lines_are_reported_by_number_and_the_good_ones_imported(tmp_path, isolated_home) -> None:
    path = write(tmp_path / "in.jsonl", MAYA, "{not json", {"prompt": "a heist"}, {"prompt": "x", "text": "  \n"},
                 {"prompt": "x", "text": "A" * 20_001}, {"prompt": "x", "text": "y", "characters": "ANN"},
                 "", {"prompt": 5, "text": "y"}, '["a list"]', VAULT)
    result = cli("feedback", "import", str(path))
    assert result.exit_code == 1
    assert "imported 2 of 9 lines" in result.stdout
    errors = result.stderr.splitlines()
    assert errors[:7] == [
        "line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 3: missing 'text'",
        "line 4: 'text' is empty",
        "line 5: text is 20,001 characters; the limit is 20,000",
        "line 6: 'characters' must be a list of strings",
        "line 8: 'prompt' must be a string, not int",
        "line 9: expected a JSON object, got list",
    ]
    assert "7 bad line(s) not imported" in errors[7]
    assert export() == [MAYA, VAULT]


def test_bad_lines_in_json_output(tmp_path, isolated_home) -> None:
    result = cli("feedback", "import", str(write(tmp_path / "in.jsonl", "nope", MAYA)), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["bad"] == [{"line": 1, "reason": "not valid JSON (Expecting value at column 1)"}]


def test_an_opted_out_writer_s_scenes_are_not_exported(tmp_path, isolated_home) -> None:
    imported(write(tmp_path / "in.jsonl", MAYA, FARM, VAULT))
    with session_scope(store(isolated_home)) as session:
        bo = rooms.get_or_create_user(session, platform="local", external_id="bo")
        rooms.set_training_consent(session, user=bo, consent=False)
    result = cli("feedback", "export")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [MAYA, VAULT]
    assert "left out: 1 opted out" in result.stderr
    # Importing bo's scene again does not bring it back: the consent rule still applies.
    imported(write(tmp_path / "again.jsonl", {**FARM, "text": FARM["text"] + "\n\nJUNE\nFine."}))
    assert export() == [MAYA, VAULT]


def test_export_of_one_room(tmp_path, isolated_home) -> None:
    imported(write(tmp_path / "in.jsonl", MAYA, FARM, VAULT))
    assert export("--room", "T1:C7") == [VAULT]
    assert export("--room", "T1:none") == []


def test_rejected_outputs_are_exported_only_when_asked_and_survive_a_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WRITERSROOM_HOME", str(tmp_path / "first"))
    rejected = {"prompt": MAYA["prompt"], "text": "EXT. ALLEY - NIGHT\n\nMAYA\nUm.", "room": "T1:C42",
                "author": "ana", "characters": ["MAYA", "COLE"], "label": "rejected", "approved_text": MAYA["text"]}
    imported(write(tmp_path / "in.jsonl", MAYA, rejected))
    assert export() == [MAYA]
    out = tmp_path / "all.jsonl"
    assert cli("feedback", "export", "--include-rejected", "--out", str(out)).exit_code == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == [MAYA, rejected]
    monkeypatch.setenv("WRITERSROOM_HOME", str(tmp_path / "second"))
    imported(out)
    assert export("--include-rejected") == [MAYA, rejected]


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, isolated_home) -> None:
    result = cli("feedback", "import", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and result.stderr.strip() == f"writersroom: no such file: {tmp_path / 'nope.jsonl'}"


def test_import_is_idempotent_on_both_stores(db_url, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("WRITERSROOM_DATABASE_URL", db_url)
    path = write(tmp_path / "in.jsonl", MAYA, FARM, MAYA)
    assert imported(path)["imported"] == 2
    assert imported(path)["imported"] == 0
    assert export() == [MAYA, FARM]


@pytest.mark.parametrize("line", [{**MAYA, "label": "maybe"}, {**MAYA, "room": ""}, {**MAYA, "author": 3}])
def test_wrong_optional_fields_are_bad_lines(tmp_path, isolated_home, line) -> None:
    result = cli("feedback", "import", str(write(tmp_path / "in.jsonl", line)))
    assert result.exit_code == 1 and result.stderr.startswith("line 1: ")


def test_import_and_export_load_no_torch(tmp_path, isolated_home) -> None:
    import subprocess
    import sys

    from config.settings import REPO_ROOT

    path = write(tmp_path / "in.jsonl", MAYA)
    script = ("import sys; from typer.testing import CliRunner; from bot.cli.main import app; "
              f"r = CliRunner().invoke(app, ['feedback', 'import', {str(path)!r}]); assert r.exit_code == 0, r.output; "
              "r = CliRunner().invoke(app, ['feedback', 'export']); assert r.exit_code == 0, r.output; "
              "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

"""/recommend and /style below the platforms: a real SQLite store, a real SceneSearcher over a
tiny index built with the tiny embedder, and the two CLI commands."""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from bot.cli.analysis import recommend_command, style_command
from bot.core.recommend import NO_HISTORY, parse_k, recommend
from bot.core.replies import Invocation
from bot.core.style import style, style_of_file
from emulators.core_services import make_core_services
from retrieval.bundled import bundled_corpus_dir
from store import feedback, generations, rooms
from store.db import session_scope
from tests.retrieval.test_recommend import build_library
from tests.retrieval.test_style import KITCHEN

ROOM = "T1:C1"


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory):
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="module")
def embedder(embedder_dir):
    from retrieval.embed import Embedder

    return Embedder(embedder_dir, batch_size=64)


@pytest.fixture
def library(tmp_path, embedder):
    """(index dir, scene ids by "script#place") of the four-script library, under HOME/index."""
    index_dir, ids = build_library(tmp_path / "lib", embedder)
    (tmp_path / "index").symlink_to(index_dir, target_is_directory=True)
    return index_dir, ids


@pytest.fixture
def services(tmp_path, library, embedder):
    from retrieval.search import SceneSearcher

    built = make_core_services(tmp_path, "http://127.0.0.1:9/v1")  # no backend: nothing here generates
    built.searcher_factory = lambda: SceneSearcher(library[0], embedder)
    return built


def ask(text: str = "", room: str = ROOM) -> Invocation:
    return Invocation(platform="slack", room_id=room, user_id="U1", user_name="maya", text=text)


def run(coroutine):
    return asyncio.run(coroutine)


def add_generation(services, scene_ids, *, vote: str | None, room: str = ROOM) -> int:
    with session_scope(services.sessions) as session:
        room_ = rooms.get_or_create_room(session, platform="slack", external_id=room)
        user = rooms.get_or_create_user(session, platform="slack", external_id="U1", display_name="maya")
        generation = generations.record_generation(
            session, room=room_, user=user, prompt="a dragon attacks", parameters={}, retrieved_scene_ids=scene_ids,
            output="INT. X - DAY\n\nMAYA\nHi.", model="fake-model", adapter=None, latency_ms=5)
        if vote:
            feedback.record_feedback(session, generation_id=generation.id, user=user, kind=vote)
        return generation.id


# --- /recommend ------------------------------------------------------------------------------


def test_no_history_explains_how_recommendations_start(services, library):
    reply = run(recommend(services, ask()))
    assert not reply.is_error and reply.text == NO_HISTORY and "Approve" in reply.text
    add_generation(services, [library[1]["alpha#tower"]], vote=None)  # generated, never approved
    add_generation(services, [library[1]["bravo#wall"]], vote="reject")
    assert run(recommend(services, ask())).text == NO_HISTORY


def test_approved_scene_makes_the_closest_unseen_script_come_first(services, library):
    ids = library[1]
    x = ids["alpha#tower"]
    approved = add_generation(services, [x + ".0"], vote="approve")  # ids as /dialogue stores them
    add_generation(services, [ids["delta#hall"]], vote=None)  # seen, not liked
    add_generation(services, [ids["charlie#office"]], vote="approve", room="T1:OTHER")  # another room's taste
    reply = run(recommend(services, ask()))
    assert not reply.is_error
    items = reply.metadata["recommendations"]
    assert items[0]["script_id"] == "bravo" and not items[0]["seen"]
    assert items[0]["because"]["scene_id"] == x and items[0]["because"]["generation_id"] == approved
    assert f"which your room approved in generation {approved}" in reply.text
    assert "INT. CASTLE TOWER - NIGHT" in reply.text.splitlines()[1]
    seen = [item["seen"] for item in items]
    assert seen == sorted(seen) and {i["script_id"] for i in items if i["seen"]} == {"alpha", "delta"}
    assert reply.citations[0].script_id == "bravo"
    assert len(run(recommend(services, ask("1"))).citations) == 1


def test_recommend_argument_and_missing_index(services, library, tmp_path):
    assert run(recommend(services, ask("lots"))).is_error
    assert parse_k("") == 5 and parse_k("20") == 20 and parse_k("0") is None and parse_k("21") is None
    add_generation(services, [library[1]["alpha#tower"]], vote="approve")
    services.searcher_factory = lambda: object()  # a searcher without an index (e.g. a remote one)
    services._searcher = None
    reply = run(recommend(services, ask()))
    assert reply.is_error and "scene index" in reply.text


def test_approvals_without_library_sources_get_their_own_message(services):
    add_generation(services, [], vote="approve")
    reply = run(recommend(services, ask()))
    assert "none of them drew on the library" in reply.text


# --- /style ---------------------------------------------------------------------------------


def test_style_on_pasted_fountain_gives_the_counts(services):
    reply = run(style(services, ask(KITCHEN)))
    assert not reply.is_error
    data = reply.metadata["style"]
    assert data["cast"] == [{"name": "MAYA", "lines": 3, "words": 8}, {"name": "COLE", "lines": 2, "words": 8}]
    assert data["int_ext"] == {"INT": 1, "EXT": 2, "INT/EXT": 1, "other": 0}
    assert "MAYA: 3 lines, 8 words" in reply.text and "Scenes: 4" in reply.text


def test_style_refuses_empty_and_unreadable_text(services):
    empty = run(style(services, ask("  ")))
    prose = run(style(services, ask("we should make the second act darker and cut the dog.")))
    assert empty.is_error and "Paste a scene" in empty.text
    assert prose.is_error and "does not read as a screenplay" in prose.text and "INT." in prose.text


def test_style_of_an_uploaded_tei_file_and_a_bad_upload(services):
    data = (bundled_corpus_dir() / "plays/amdracor/alcott-bianca.xml").read_bytes()
    reply = run(style_of_file(services, ask(), data=data, filename="bianca.xml"))
    assert not reply.is_error and reply.metadata["style"]["int_ext"] == "n/a"
    assert run(style_of_file(services, ask(), data=b"x", filename="notes.docx")).is_error
    broken = run(style_of_file(services, ask(), data=b"<TEI><unclosed", filename="broken.xml"))
    assert broken.is_error and "broken.xml" in broken.text


# --- CLI ------------------------------------------------------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("style")(style_command)
    app.command("recommend")(recommend_command)
    return app


def test_style_cli_json_and_text(tmp_path):
    script = tmp_path / "count_me.fountain"
    script.write_text(KITCHEN, encoding="utf-8")
    runner = CliRunner()
    as_json = runner.invoke(cli_app(), ["style", str(script), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["cast"][0] == {"name": "MAYA", "lines": 3, "words": 8}
    text = runner.invoke(cli_app(), ["style", str(script)])
    assert text.exit_code == 0 and "Day/night: day 1, night 2, other 1" in text.output
    missing = runner.invoke(cli_app(), ["style", str(tmp_path / "nope.fountain")])
    assert missing.exit_code == 1


def test_recommend_cli(services, library, embedder_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WRITERSROOM_HOME", str(tmp_path))
    monkeypatch.setenv("WRITERSROOM_DATABASE_URL", services.settings.database_url)
    monkeypatch.setenv("WRITERSROOM_MODEL_EMBEDDER", str(embedder_dir))
    runner = CliRunner()
    empty = runner.invoke(cli_app(), ["recommend", "--room", ROOM, "--json"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout)["message"] == NO_HISTORY
    add_generation(services, [library[1]["alpha#tower"]], vote="approve")
    add_generation(services, [library[1]["delta#hall"]], vote=None)  # else delta's copy of the scene wins
    result = runner.invoke(cli_app(), ["recommend", "--room", f"slack/{ROOM}", "--k", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [item["script_id"] for item in data["recommendations"]][0] == "bravo" and len(data["recommendations"]) == 2
    text = runner.invoke(cli_app(), ["recommend", "--room", ROOM])
    assert text.exit_code == 0 and "approved in generation" in text.output

"""`writersroom ingest --genre/--show/--writer/--language` and `writersroom similar
--mode/--filter/--level`, in process through Typer's runner, on a small library embedded
with the tiny model (the real-model contract is in test_cli.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from tests.retrieval.hybrid_support import write_library

runner = CliRunner()
QUERY = "warm bread from the oven, flour and dough in the bakery"


@pytest.fixture(scope="module")
def tiny_embedder_dir(tmp_path_factory):
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture
def library(tmp_path, tiny_embedder_dir, isolated_home, monkeypatch):
    """bakery, harbour and courtroom Fountain scripts (authors "<Name> Writer"); the tiny embedder."""
    monkeypatch.setenv("WRITERSROOM_MODEL_EMBEDDER", str(tiny_embedder_dir))
    return write_library(tmp_path / "lib")


def cli(*args: str):
    return runner.invoke(app, list(args))


def ingest(*args: str) -> str:
    result = cli("ingest", *args, "--quiet")
    assert result.exit_code == 0, result.output
    return result.stdout


def found(*args: str) -> list[dict]:
    result = cli("similar", QUERY, "--k", "20", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def scripts(*args: str) -> set[str]:
    return {hit["script_id"] for hit in found(*args)}


def test_ingest_facts_are_what_filters_find(library):
    ingest(str(library / "bakery.fountain"), str(library / "harbour.fountain"), "--genre", "Drama",
           "--show", "Kitchen Nights", "--writer", "Ana Reyes", "--writer", "Bo Lind", "--language", "en")
    ingest(str(library / "courtroom.fountain"), "--genre", "Comedy")
    assert scripts() == {"bakery", "harbour", "courtroom"}
    assert scripts("--filter", "genre=drama") == {"bakery", "harbour"}
    assert scripts("--filter", "show=kitchen nights", "--filter", "language=EN") == {"bakery", "harbour"}
    # --writer replaced the authors the files name; without it, the file's author stays
    assert scripts("--filter", "writer=Reyes") == {"bakery", "harbour"}
    assert scripts("--filter", "writer=Bakery Writer") == set()
    assert scripts("--filter", "writer=Courtroom Writer") == {"courtroom"}
    # a key given twice: either value
    assert scripts("--filter", "genre=comedy", "--filter", "genre=drama") == {"bakery", "harbour", "courtroom"}
    none = cli("similar", QUERY, "--filter", "genre=western")
    assert none.exit_code == 1 and "nothing found among the scripts matching the filters" in none.output


def test_facts_given_again_reach_unchanged_files_without_embedding(library):
    ingest(str(library))
    again = ingest(str(library), "--genre", "Noir")
    assert "0 scripts embedded (0 scenes, 0 chunks), 3 unchanged" in again
    assert scripts("--filter", "genre=noir") == {"bakery", "harbour", "courtroom"}


def test_modes_and_levels(library):
    ingest(str(library))
    for mode in ("hybrid", "dense", "bm25"):
        hits = found("--mode", mode)
        assert hits[0]["script_id"] == "bakery", mode
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # a fused rank score (at most 2/61 at weights 1, as JSON rounds it), not a cosine
    assert found("--mode", "hybrid")[0]["score"] <= round(2 / 61, 4)
    per_script = found("--level", "script", "--mode", "bm25")
    assert [h["script_id"] for h in per_script][0] == "bakery"
    assert len({h["script_id"] for h in per_script}) == len(per_script)  # one hit per script
    text = cli("similar", QUERY, "--level", "script", "--k", "1")
    assert text.exit_code == 0 and text.stdout.startswith("1. Bakery — INT. BAKERY - NIGHT")


@pytest.mark.parametrize("args, message", [
    (["--mode", "fuzzy"], "--mode must be one of hybrid, dense, bm25, not 'fuzzy'"),
    (["--level", "act"], "--level must be one of scene, script, not 'act'"),
    (["--filter", "mood=sad"], "unknown filter 'mood'; filters are genre, writer, show, format, language"),
    (["--filter", "genre"], "--filter takes KEY=VALUE, not 'genre'"),
])
def test_bad_search_options_exit_2_with_one_line(library, args, message):
    result = cli("similar", QUERY, *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"writersroom: {message}"


def test_the_catalog_url_setting_moves_the_metadata_out_of_the_index_dir(library, isolated_home, tmp_path, monkeypatch):
    catalog = tmp_path / "shared" / "catalog.db"
    catalog.parent.mkdir()
    monkeypatch.setenv("WRITERSROOM_RETRIEVAL_CATALOG_URL", f"sqlite:///{catalog}")
    ingest(str(library), "--show", "Harbour Lights")
    assert catalog.is_file() and not (isolated_home / "index" / "catalog.sqlite").exists()
    assert scripts("--filter", "show=harbour lights") == {"bakery", "harbour", "courtroom"}
    listed = cli("index", "list", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 3

"""`writersroom similar` on an empty library says so and how to fill it, without loading a model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bot.cli.main import app
from retrieval.ingest_status import LibraryLoad, write_status

runner = CliRunner()
# No embedder is configured or provisioned in these tests: loading one would fail loudly.


def test_the_human_form_says_the_library_is_empty_and_how_to_fill_it(isolated_home):
    result = runner.invoke(app, ["similar", "a ghost in the attic"])
    assert result.exit_code == 1
    assert "the library is empty" in result.stderr and str(isolated_home / "index") in result.stderr
    assert "`writersroom ingest PATH`" in result.stderr and "`writersroom start`" in result.stderr
    assert result.stdout == ""


def test_the_json_form_stays_a_list_and_says_why_beside_it():
    result = runner.invoke(app, ["similar", "a ghost in the attic", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "the library is empty" in result.stderr and "`writersroom ingest PATH`" in result.stderr


def test_a_library_still_loading_is_not_called_empty(isolated_home):
    write_status(isolated_home / "index", LibraryLoad(state="loading", files_done=0, files_total=58))
    result = runner.invoke(app, ["similar", "a ghost in the attic"])
    assert result.exit_code == 1
    assert "the library is still loading (0 of 58 scripts indexed so far)" in result.stderr
    assert "empty" not in result.stderr

"""The retrieval evaluation: first halves indexed, second-half scenes as queries."""

from __future__ import annotations

import json

from retrieval.document import Element, Scene, Script
from retrieval.identification import (
    evaluate_retrieval,
    results_section,
    sample_evenly,
    split_halves,
    truncate_words,
)
from tests.retrieval.hybrid_support import fountain, write_library


def _library(tmp_path):
    fragment = fountain("Fragment", "Nobody", [("INT. ATTIC - NIGHT", "GHOST", "Dust and cobwebs.", "Boo.")])
    return write_library(tmp_path / "lib", scenes_per_script=4,
                         extra={"fragment.fountain": fragment, "notes.txt": "just some notes, not a script\n"})


def test_an_obvious_library_is_identified_perfectly(tmp_path, tiny_embedder):
    result = evaluate_retrieval([_library(tmp_path)], embedder=tiny_embedder, work_dir=tmp_path)
    counts = result["counts"]
    assert (counts["scripts"], counts["scripts_too_short"], counts["queries"]) == (3, 1, 6)  # 3 scripts x 2 held-out scenes
    assert counts["scenes_indexed"] == 6 and counts["files_failed"] == 1  # notes.txt is not a script
    assert set(result["modes"]) == {"dense", "bm25", "hybrid"}
    for mode, numbers in result["modes"].items():
        assert numbers["top1"] == numbers["top5"] == numbers["mrr"] == 1.0, mode
        assert numbers["correct_top1"] == 6
    assert result["settings"]["level"] == "script" and result["seconds"]["total"] >= 0
    json.dumps(result)  # JSON-ready
    section = results_section(result)
    assert section.startswith("## Retrieval: script identification") and "| hybrid | 1.000 | 1.000 |" in section
    assert not list(tmp_path.glob("wr-eval-*"))  # the temporary index is gone


def test_sampling_limits_queries_per_script_deterministically(tmp_path, tiny_embedder):
    library = _library(tmp_path)
    one = evaluate_retrieval([library], embedder=tiny_embedder, queries_per_script=1, modes=("bm25",))
    again = evaluate_retrieval([library], embedder=tiny_embedder, queries_per_script=1, modes=("bm25",))
    assert one["counts"]["queries"] == 3 and one["counts"]["second_half_scenes"] == 6
    assert one["modes"]["bm25"]["top1"] == again["modes"]["bm25"]["top1"] == 1.0
    assert set(one["modes"]) == {"bm25"}


def test_halves_sampling_and_truncation():
    scenes = [Scene(index=i, heading=f"SCENE {i}", elements=[Element("action", f"text {i}")]) for i in range(5)]
    scenes.insert(2, Scene(index=99, heading="", elements=[]))  # no text: neither indexed nor queried
    first, second = split_halves(Script(script_id="s", title="S", scenes=scenes))
    assert [s.index for s in first] == [0, 1, 2] and [s.index for s in second] == [3, 4]
    assert sample_evenly(list(range(10)), 3) == [0, 3, 6]
    assert sample_evenly([1, 2], 5) == [1, 2] and sample_evenly([1, 2], None) == [1, 2]
    assert truncate_words("a  b\nc d", 3) == "a b c"


def test_cli_prints_json(tmp_path, tiny_embedder_dir):
    from typer.testing import CliRunner

    from bot.cli.eval import eval_app

    result = CliRunner().invoke(eval_app, ["retrieval", str(_library(tmp_path)), "--json", "--model-dir", str(tiny_embedder_dir),
                                           "--queries-per-script", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["counts"]["queries"] == 3 and payload["modes"]["hybrid"]["top1"] == 1.0


def test_cli_refuses_a_missing_folder(tmp_path, tiny_embedder_dir):
    from typer.testing import CliRunner

    from bot.cli.eval import eval_app

    result = CliRunner().invoke(eval_app, ["retrieval", str(tmp_path / "nope"), "--model-dir", str(tiny_embedder_dir)])
    assert result.exit_code == 1 and "no such file" in result.output

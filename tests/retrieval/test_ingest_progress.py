"""A library loaded in steps: searchable after each one, its status beside the index, and a
load cut short knows where it stopped."""

from __future__ import annotations

import subprocess

from retrieval.index import SceneIndex
from retrieval.ingest import ingest_paths
from retrieval.ingest_status import LibraryLoad, read_status, write_status
from tests.retrieval.hybrid_support import write_library


def test_each_step_is_saved_and_said(tmp_path, tiny_embedder):
    library = write_library(tmp_path / "lib")  # bakery, courtroom, harbour
    index_dir = tmp_path / "index"
    seen = []

    def checkpoint(load: LibraryLoad) -> None:
        searchable = SceneIndex.load(index_dir).stats()["scripts"] if SceneIndex.exists(index_dir) else 0
        seen.append((load.state, load.files_done, load.files_total, searchable))

    report = ingest_paths([library], index_dir=index_dir, embedder=tiny_embedder, progress=False, load_status=True,
                          on_checkpoint=checkpoint)
    assert report.scripts_added == 3 and not report.stopped
    # every status names what a searcher opening the index then finds
    assert seen == [("loading", 0, 3, 0), ("loading", 1, 3, 1), ("loading", 2, 3, 2), ("done", 3, 3, 3)]
    assert read_status(index_dir).state == "done"


def test_a_stopped_load_saves_what_it_did_and_says_so(tmp_path, tiny_embedder):
    library = write_library(tmp_path / "lib")
    index_dir = tmp_path / "index"
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1  # after the first file

    report = ingest_paths([library], index_dir=index_dir, embedder=tiny_embedder, progress=False, load_status=True,
                          stop=stop)
    assert report.stopped and report.scripts_added == 1 and "stopped before the end" in report.summary()
    load = read_status(index_dir)
    assert (load.state, load.files_done, load.files_total) == ("stopped", 1, 3)
    assert SceneIndex.load(index_dir).stats()["scripts"] == 1


def test_a_load_whose_process_is_gone_reads_as_stopped(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_status(tmp_path, LibraryLoad(state="loading", files_done=4, files_total=9, pid=gone.pid))
    assert read_status(tmp_path).state == "stopped"
    write_status(tmp_path, LibraryLoad(state="loading", files_done=4, files_total=9))  # this process: alive
    assert read_status(tmp_path).loading


def test_no_status_or_a_damaged_one_is_none(tmp_path):
    assert read_status(tmp_path) is None
    (tmp_path / "library-load.json").write_text("{not json", encoding="utf-8")
    assert read_status(tmp_path) is None

"""`writersroom start` on a fresh home, as a newcomer sees it: the room opens while the library
is still loading, /similar says how far it has got, and the terminal holds no log lines.

The backend is the loopback fake (WRITERSROOM_BACKEND_URL, so no child process), the embedder
the tiny one, the library three short scripts; the load is held on its second file until the
test lets it go on, so "while it is still loading" is a fact, not a race.
"""

from __future__ import annotations

import logging
import threading

import pytest

from bot.cli import launcher
from config.settings import load_settings
from emulators.openai_backend import FakeBackend
from retrieval import ingest
from retrieval.ingest_status import read_status
from tests.bot.cli.test_index_bootstrap import corpus_is
from tests.retrieval.hybrid_support import write_library

WAIT_S = 120  # only a broken load waits this long; the tests never measure time
BAKERY = "/similar warm bread from the oven, flour and dough in the bakery"
HARBOUR = "/similar gulls over the harbour, the captain coils rope on the boat"
STILL_LOADING = "The library is still loading: 1 of 3 scripts indexed so far; results cover those only."


@pytest.fixture(scope="module")
def tiny_embedder_dir(tmp_path_factory):
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture
def fresh_start(monkeypatch, tmp_path, tiny_embedder_dir):
    """A fresh home whose first start loads bakery, courtroom and harbour (in that order)."""
    monkeypatch.setenv("WRITERSROOM_MODEL_EMBEDDER", str(tiny_embedder_dir))  # configured: nothing to provision
    corpus_is(monkeypatch, write_library(tmp_path / "lib"))
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)  # start sets it: undone afterwards
    from transformers.utils import (
        logging as transformers_logging,  # imported by the tiny embedder already
    )

    bars = transformers_logging.is_progress_bar_enabled()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with FakeBackend() as backend:
        monkeypatch.setenv("WRITERSROOM_BACKEND_URL", backend.url)
        yield backend
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    if bars:
        transformers_logging.enable_progress_bar()


class HeldLoad:
    """Holds the library load before its second file until `go_on` is set."""

    def __init__(self, monkeypatch) -> None:
        self.at_second_file = threading.Event()
        self.go_on = threading.Event()
        self.loaders: list[launcher.LibraryLoader] = []
        self._files = 0
        real = ingest._ingest_file

        def held(path, **kwargs):
            self._files += 1
            if self._files == 2:
                self.at_second_file.set()
                assert self.go_on.wait(WAIT_S), "the test never let the load go on"
            return real(path, **kwargs)

        held_load = self

        class Recorded(launcher.LibraryLoader):
            def __init__(self, settings) -> None:
                super().__init__(settings)
                held_load.loaders.append(self)

            def request_stop(self) -> None:
                super().request_stop()
                held_load.go_on.set()  # quitting: the file in hand finishes, then the load saves and ends

        monkeypatch.setattr(ingest, "_ingest_file", held)
        monkeypatch.setattr(launcher, "LibraryLoader", Recorded)

    def one_file_in(self) -> None:
        assert self.at_second_file.wait(WAIT_S), "the library load never reached its second file"

    def finish(self) -> None:
        self.go_on.set()
        assert self.loaders[-1].join(WAIT_S), "the library load did not end"


def typing(monkeypatch, *lines) -> None:
    """The writer's lines at the room's prompt; a callable runs first (waits for the load), then its line."""
    queue = list(lines)

    def typed(prompt: str = "") -> str:
        line = queue.pop(0)
        if isinstance(line, tuple):
            line[0]()
            line = line[1]
        return line

    monkeypatch.setattr("builtins.input", typed)


def test_the_room_opens_and_works_while_the_library_loads(monkeypatch, capsys, fresh_start, isolated_home):
    load = HeldLoad(monkeypatch)
    typing(monkeypatch,
           (load.one_file_in, BAKERY),
           "/dialogue a detective corners her partner characters: Maya, Cole",
           (load.finish, HARBOUR),
           "/quit")
    launcher.start(load_settings())

    shown = capsys.readouterr()
    out = shown.out
    log_file = isolated_home / "logs" / "writersroom.log"
    assert [line for line in out.splitlines() if "logs:" in line] == [f"[writersroom] logs: {log_file}"]
    assert "loading the library in the background" in out
    # the first /similar: what is loaded so far, and said to be only that
    first, rest = out.split("== Closest to: warm bread", 1)[1].split("== Closest to: gulls", 1)
    assert STILL_LOADING in first and "1. Bakery" in first
    # the room worked meanwhile
    assert "  MAYA" in first and "/approve" in first
    # progress at each step, then the whole library, with no note
    assert "[writersroom] library: 1 of 3 scripts indexed so far (33%)" in out
    assert "[writersroom] library loaded: 3 files: 3 scripts embedded" in out
    assert "1. Harbour" in rest and "still loading" not in rest
    # no log lines in the terminal: they are in the file
    for noise in (" INFO ", "alembic", "faiss", "Loading weights"):
        assert noise not in out and noise not in shown.err
    logged = log_file.read_text(encoding="utf-8")
    assert "similar from local" in logged and "dialogue from local" in logged
    assert read_status(isolated_home / "index").state == "done"


def test_quitting_mid_load_keeps_what_is_loaded_and_the_next_start_loads_the_rest(
        monkeypatch, capsys, fresh_start, isolated_home):
    load = HeldLoad(monkeypatch)
    typing(monkeypatch, (load.one_file_in, "/quit"))
    launcher.start(load_settings())
    out = capsys.readouterr().out
    assert "saving the part of the library loaded so far; the next start loads the rest" in out
    stopped = read_status(isolated_home / "index")
    assert (stopped.state, stopped.files_done, stopped.files_total) == ("stopped", 2, 3)

    typing(monkeypatch, (lambda: load.loaders[-1].join(WAIT_S), HARBOUR), "/quit")
    launcher.start(load_settings())
    out = capsys.readouterr().out
    assert "loading the library in the background" in out
    assert "library loaded: 3 files: 1 scripts embedded" in out and "2 unchanged" in out
    assert "1. Harbour" in out and "still loading" not in out and "stopped loading" not in out


def test_a_search_before_the_load_has_begun_hears_that_it_is_loading(monkeypatch, capsys, fresh_start):
    from retrieval import embed

    begin = threading.Event()

    class SlowToLoad(embed.Embedder):
        """The load's embedder takes its time; the room's own does not."""

        def __init__(self, *args, **kwargs) -> None:
            if threading.current_thread().name == "library-load":
                assert begin.wait(WAIT_S)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(embed, "Embedder", SlowToLoad)
    typing(monkeypatch, BAKERY, (begin.set, "/quit"))
    launcher.start(load_settings())
    out = capsys.readouterr().out
    assert "Nothing found yet: the library is still loading (0 of 3 scripts indexed so far)" in out
    assert "the library is empty" not in out

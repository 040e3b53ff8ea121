"""/similar while the library is still loading says how far it has got, from the status the
load writes beside the index."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess

from bot.core.commands import dispatch
from bot.core.replies import Invocation
from bot.core.similar import NOTHING_FOUND
from emulators.core_services import make_core_services
from retrieval.ingest_status import LibraryLoad, write_status

UNREACHABLE = "http://127.0.0.1:9/v1"  # /similar never calls the backend


def ask(services, text: str = "a robot boots up in a lab"):
    invocation = Invocation(platform="local", room_id="local:terminal", user_id="ana", user_name="ana", text=text)
    return asyncio.run(dispatch(services, "similar", invocation))


class NothingYet:
    def search(self, query: str, *, k: int = 5):
        return []


def test_partial_results_say_how_much_of_the_library_they_cover(tmp_path):
    services = make_core_services(tmp_path, UNREACHABLE)
    write_status(services.settings.index_dir, LibraryLoad(state="loading", files_done=12, files_total=40))
    reply = ask(services)
    assert "The library is still loading: 12 of 40 scripts indexed so far; results cover those only." in reply.text
    assert "1. Cyber Bob: Episode 1 — INT. LAB - NIGHT" in reply.text


def test_nothing_found_while_loading_is_not_called_an_empty_library(tmp_path):
    services = dataclasses.replace(make_core_services(tmp_path, UNREACHABLE), searcher_factory=NothingYet)
    write_status(services.settings.index_dir, LibraryLoad(state="loading", files_done=0, files_total=40))
    reply = ask(services)
    assert "Nothing found yet: the library is still loading (0 of 40 scripts indexed so far)" in reply.text
    assert NOTHING_FOUND not in reply.text


def test_a_load_cut_short_is_said_until_it_is_finished(tmp_path):
    services = make_core_services(tmp_path, UNREACHABLE)
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_status(services.settings.index_dir, LibraryLoad(state="loading", files_done=7, files_total=40, pid=gone.pid))
    assert "The library stopped loading at 7 of 40 scripts; results cover those only." in ask(services).text

    write_status(services.settings.index_dir, LibraryLoad(state="done", files_done=40, files_total=40))
    reply = ask(services)
    assert "library" not in reply.text.lower() and "1. Cyber Bob: Episode 1" in reply.text


def test_a_library_loaded_another_way_gets_no_note(tmp_path):
    reply = ask(make_core_services(tmp_path, UNREACHABLE))  # no status file: `writersroom ingest` built it
    assert reply.text.startswith("1. Cyber Bob: Episode 1")

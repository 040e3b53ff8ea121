"""The copy guard: verbatim runs of COPY_MIN_WORDS words shared with the library.

The end-to-end cases copy a real scene of the bundled corpus (Cyber Bob, episode 1,
public domain) into the fake backend's answer and search a library built from it.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.core.commands import dispatch
from bot.core.replies import Invocation, SectionKind
from emulators.core_services import make_core_services
from emulators.openai_backend import FakeBackend
from retrieval.bundled import bundled_corpus_dir
from retrieval.parse.fountain import parse_fountain
from retrieval.types import SceneHit, SceneRef
from screenplay.copy_guard import (
    COPY_MIN_WORDS,
    CopySource,
    check_copy,
    find_copy,
    longest_shared_run,
    words_of,
)
from store import generations
from store.db import session_scope

COUNTING = " ".join(["one two three four five six seven eight nine ten eleven twelve thirteen"])
ORIGINAL = """INT. LAB - NIGHT

BOB stares at a blinking panel.

BOB
Something in here is humming my name.

MARGARET
Then answer it, before it answers for you.

BOB
It wants to know if you're coming.

MARGARET
Tell it I never left."""


def bundled_hits() -> list[SceneHit]:
    path = bundled_corpus_dir() / "screenplays" / "cyber_bob" / "Cyber_Bob_ep00001.fountain"
    script = parse_fountain(path.read_text(encoding="utf-8"), path=path)
    return [
        SceneHit(script.script_id, script.title, 0.0, SceneRef(scene.index, scene.heading, scene.text()[:300], scene.text()),
                 f"{script.script_id}#{scene.index}", scene.characters)
        for scene in script.scenes if scene.heading
    ]


class BundledSearch:
    """Ranks the bundled episode's scenes by shared words; records its queries."""

    def __init__(self) -> None:
        self.hits = bundled_hits()
        self.queries: list[str] = []

    def search(self, query: str, *, k: int = 5) -> list[SceneHit]:
        self.queries.append(query)
        words = set(words_of(query))
        return sorted(self.hits, key=lambda hit: -len(words & set(words_of(hit.scene.text))))[:k]


def copied_scene() -> str:
    """Our own heading and cues around a long stretch of the bundled park scene."""
    park = next(hit for hit in bundled_hits() if hit.scene.heading == "EXT. PARK--DAY")
    stolen = " ".join(park.scene.text.split("\n\n")[1].split())  # the opening action paragraph, verbatim
    return f"EXT. PARK - DAY\n\n{stolen}\n\nBOB\nHi hello.\n\nMARGARET\nHiii.\n\nBOB\nNice day.\n\nMARGARET\nIt is."


# -- units -----------------------------------------------------------------------------


def test_words_ignore_case_and_punctuation():
    assert words_of("Don't GO -- now, Bob!") == ["dont", "go", "now", "bob"]


def test_a_run_of_twelve_words_is_found_whatever_the_case_and_punctuation():
    assert COPY_MIN_WORDS == 12
    run = longest_shared_run(f"INT. LAB\n\nBOB\n{COUNTING.upper()}!", f"x, {COUNTING.replace(' ', ', ')}. y")
    assert run == COUNTING.split()


def test_eleven_shared_words_are_not_a_copy():
    eleven = " ".join(COUNTING.split()[:11])
    assert longest_shared_run(f"a {eleven} b", f"c {eleven} d") == []
    assert longest_shared_run(f"a {eleven} b", f"c {eleven} b") == COUNTING.split()[:11] + ["b"]


def test_find_copy_names_the_source_with_the_longest_run():
    sources = [CopySource("Short", " ".join(COUNTING.split()[:12]), "s1"), CopySource("Long", COUNTING, "s2"),
               CopySource("Unrelated", "nothing like it at all", "s3")]
    hit = find_copy(f"so {COUNTING} then", sources)
    assert (hit.title, hit.script_id, hit.words) == ("Long", "s2", 13)
    assert find_copy("an original line of dialogue", sources) is None


def test_check_copy_searches_the_library_with_the_generated_text():
    searcher = BundledSearch()

    async def search(query: str, *, k: int):
        return searcher.search(query, k=k)

    text = copied_scene()
    hit = asyncio.run(check_copy(text, exemplars=[], search=search))
    assert searcher.queries == [text]
    assert hit.script_id == "cyber-bob-ep00001" and hit.title.startswith("BOB THE CYBER PAWN")
    assert hit.words >= 40 and "cyber bob 40 a white man a mild goofy" in hit.excerpt
    assert asyncio.run(check_copy(ORIGINAL, exemplars=[], search=search)) is None


def test_exemplars_are_checked_even_without_a_searcher():
    exemplar = bundled_hits()[0]
    hit = asyncio.run(check_copy(copied_scene(), exemplars=bundled_hits(), search=None))
    assert hit.scene_id.startswith(exemplar.script_id)


# -- through /dialogue -----------------------------------------------------------------


def ask(text: str) -> Invocation:
    return Invocation(platform="slack", room_id="T1:C1", user_id="U1", user_name="u1", text=text)


@pytest.fixture
def copying_services(tmp_path):
    def make(backend: FakeBackend):
        services = make_core_services(tmp_path, backend.url)
        services.searcher_factory = BundledSearch
        return services
    return make


def test_a_copying_answer_is_regenerated_and_the_original_one_returned(copying_services):
    with FakeBackend(scenes=[copied_scene(), ORIGINAL]) as backend:
        services = copying_services(backend)
        reply = asyncio.run(dispatch(services, "dialogue", ask("bob meets margaret in the park characters: Bob, Margaret")))
    assert len(backend.requests) == 2 and backend.requests[0]["seed"] != backend.requests[1]["seed"]
    assert reply.sections[0].body == ORIGINAL and len(reply.sections) == 1
    with session_scope(services.sessions) as session:
        parameters = generations.get_generation(session, generation_id=reply.generation_id).parameters
    assert parameters["attempts"] == 2 and parameters["copy"] is None
    assert parameters["attempt_log"][0]["copy"]["script_id"] == "cyber-bob-ep00001"


def test_an_answer_that_copies_twice_is_shown_with_a_warning_naming_the_script(copying_services):
    with FakeBackend(scene=copied_scene()) as backend:
        services = copying_services(backend)
        reply = asyncio.run(dispatch(services, "dialogue", ask("bob meets margaret in the park characters: Bob, Margaret")))
    assert len(backend.requests) == 2  # one regeneration, no more
    warning = reply.sections[1]
    assert warning.kind is SectionKind.TEXT
    assert "verbatim from \u201cBOB THE CYBER PAWN AND HIS CYBER CLOUD BOSS THING\u201d (cyber-bob-ep00001)" in warning.body
    assert reply.metadata["warnings"] and not reply.is_error

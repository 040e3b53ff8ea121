"""Libraries' INFO lines stay out of the log unless the level is DEBUG; ours and their warnings stay in."""

from __future__ import annotations

import io
import json
import logging

import pytest

from observability.logs import configure_logging

CHATTER = {
    "alembic.runtime.migration": "Context impl SQLiteImpl.",
    "faiss.loader": "Loading faiss with AVX2 support.",
    "sentence_transformers.SentenceTransformer": "Load pretrained SentenceTransformer",
    "uvicorn.access": '127.0.0.1:5000 - "GET /health HTTP/1.1" 200',
    "uvicorn.error": "Uvicorn running on http://127.0.0.1:8088",
    "httpx": 'HTTP Request: GET http://127.0.0.1:8088/health "HTTP/1.1 200 OK"',
    "aiohttp.access": '"POST /slack/events HTTP/1.1" 200',
}


@pytest.fixture
def logged():
    """configure_logging onto a string; returns (configure, read the lines)."""
    stream = io.StringIO()
    handlers = []
    # Other tests in the process (uvicorn's default config in a test server) may have given these
    # loggers levels, handlers of their own or propagate=False; start each test from the defaults.
    saved = {}
    for name in [*CHATTER, "bm25s", "uvicorn"]:
        library = logging.getLogger(name)
        saved[name] = (library.level, library.propagate, library.disabled)
        library.setLevel(logging.NOTSET)
        library.propagate, library.disabled = True, False

    def configure(level: str, fmt: str = "text") -> None:
        handlers.append(configure_logging(level, fmt, stream=stream))

    yield configure, stream.getvalue
    for handler in handlers:
        logging.getLogger().removeHandler(handler)
    for name, (level, propagate, disabled) in saved.items():
        library = logging.getLogger(name)
        library.setLevel(level)
        library.propagate, library.disabled = propagate, disabled


def say_everything() -> None:
    for name, message in CHATTER.items():
        logging.getLogger(name).info(message)
    # bm25s sets its own logger to DEBUG when imported: the filter holds anyway
    bm25s = logging.getLogger("bm25s")
    bm25s.setLevel(logging.DEBUG)
    bm25s.debug("Building index from tokens")
    logging.getLogger("httpx").warning("the backend is slow")
    logging.getLogger("bot.core.pipeline").info("similar from local:ana answered ok")


def test_at_info_libraries_say_only_warnings(logged):
    configure, text = logged
    configure("INFO")
    say_everything()
    out = text()
    assert not [message for message in CHATTER.values() if message in out], out
    assert "Building index from tokens" not in out
    assert "WARNING httpx [-] the backend is slow" in out
    assert "INFO bot.core.pipeline [-] similar from local:ana answered ok" in out


def test_at_debug_everything_is_shown(logged):
    configure, text = logged
    configure("DEBUG")
    say_everything()
    out = text()
    assert all(message in out for message in CHATTER.values()), out
    assert "Building index from tokens" in out


def test_json_lines_are_filtered_the_same_way(logged):
    configure, text = logged
    configure("INFO", "json")
    say_everything()
    lines = [json.loads(line) for line in text().splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [("httpx", "WARNING"), ("bot.core.pipeline", "INFO")]


def test_logs_can_go_to_a_file(tmp_path):
    path = tmp_path / "logs" / "writersroom.log"
    handler = configure_logging("INFO", path=path)
    try:
        logging.getLogger("alembic.runtime.migration").info("Will assume non-transactional DDL.")
        logging.getLogger("bot.cli.launcher").info("library load: 3 files")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    written = path.read_text(encoding="utf-8")
    assert "library load: 3 files" in written and "non-transactional" not in written

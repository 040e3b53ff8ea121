"""Request ids and the log lines that carry them."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from observability.logs import configure_logging
from observability.request_id import accepted, current_request_id, request_scope

# Not a "writersroom.*" logger: Bolt names its app's logger after the app ("writersroom") and
# pins it to the root level of the moment it builds one, which would hide INFO lines here.


def test_an_outer_scope_keeps_its_id_and_an_explicit_one_replaces_it():
    assert current_request_id() is None
    with request_scope() as outer:
        with request_scope() as inner:
            assert inner == outer
        with request_scope("abc-123") as explicit:
            assert current_request_id() == explicit == "abc-123"
        assert current_request_id() == outer
    assert current_request_id() is None


def test_the_id_follows_into_worker_threads_and_tasks():
    async def main() -> tuple[str | None, str | None, str]:
        with request_scope() as rid:
            in_thread = await asyncio.to_thread(current_request_id)
            in_task = await asyncio.create_task(asyncio.sleep(0, result=current_request_id()))
            return in_thread, in_task, rid

    in_thread, in_task, rid = asyncio.run(main())
    assert in_thread == in_task == rid


def test_a_hostile_caller_id_is_replaced():
    assert accepted("req-42.a:b") == "req-42.a:b"
    forged = accepted('x\n{"level": "ERROR"}')
    assert "\n" not in forged and len(forged) == 16
    assert accepted(None) != accepted(None)


def test_json_lines_carry_the_request_id_and_the_message():
    stream = io.StringIO()
    handler = configure_logging("INFO", "json", stream=stream)
    try:
        with request_scope("rid-json"):
            logging.getLogger("tests.observability").info("scene %d approved", 7)
        logging.getLogger("tests.observability").warning("outside")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "scene 7 approved" and first["request_id"] == "rid-json"
    assert first["level"] == "INFO" and first["logger"] == "tests.observability" and "time" in first
    assert second["request_id"] == "-"


def test_configuring_twice_keeps_one_handler_and_text_shows_the_id():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=io.StringIO())
    handler = configure_logging("INFO", "text", stream=stream)
    try:
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_writersroom", False)]
        assert ours == [handler]
        with request_scope("rid-text"):
            logging.getLogger("tests.observability").info("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "[rid-text] hello" in stream.getvalue()

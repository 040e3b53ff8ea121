"""Telling a writer where their scene stands while it waits in the generation backend's queue.

The chat client hears the backend's queue reports (llm.client, one every couple of seconds
while a request waits); a writer needs far fewer: the first one, then one whenever the
scene has moved up and a while has passed, so a long wait reads as progress, not spam.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from llm.client import QueueListener

NOTICE_EVERY_S = 20.0  # the least time between two notices for one scene


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def queue_message(position: int) -> str:
    ahead = position - 1
    waiting = "it is next" if ahead == 0 else f"{ahead} {'request is' if ahead == 1 else 'requests are'} ahead of it"
    return (f"\u23f3 The model is busy: your scene is {ordinal(position)} in line ({waiting}). "
            "It will be written as soon as a place frees up.")


def queue_listener(notify: Callable[[str], Awaitable[None]] | None, *,
                   every_s: float = NOTICE_EVERY_S) -> QueueListener | None:
    """An on_queue for ChatClient.complete that passes the reports worth reading to ``notify``."""
    if notify is None:
        return None
    told: dict[str, float] = {}

    async def on_queue(position: int) -> None:
        now = time.monotonic()
        last_position, last_at = told.get("position"), told.get("at", 0.0)
        if last_position is None or (position < last_position and now - last_at >= every_s):
            told.update(position=position, at=now)
            await notify(queue_message(position))

    return on_queue

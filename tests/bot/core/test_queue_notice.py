"""What a writer reads while their scene waits in the backend's queue, and how often."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.queue_notice import ordinal, queue_listener, queue_message


@pytest.mark.parametrize(("number", "expected"), [
    (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
    (21, "21st"), (22, "22nd"), (111, "111th"),
])
def test_ordinal(number, expected):
    assert ordinal(number) == expected


def test_the_message_says_the_place_and_how_many_are_ahead():
    assert "1st in line (it is next)" in queue_message(1)
    assert "2nd in line (1 request is ahead of it)" in queue_message(2)
    assert "3rd in line (2 requests are ahead of it)" in queue_message(3)


def test_no_one_to_tell_means_no_listener():
    assert queue_listener(None) is None


def told_after(reports: list[tuple[int, float]], *, every_s: float) -> list[str]:
    """Feed (position, seconds to wait first) reports to a listener; what the writer was told."""
    told: list[str] = []

    async def notify(text: str) -> None:
        told.append(text)

    async def feed() -> None:
        listener = queue_listener(notify, every_s=every_s)
        for position, wait_s in reports:
            await asyncio.sleep(wait_s)
            await listener(position)

    asyncio.run(feed())
    return told


def test_the_first_report_is_told_and_a_second_one_soon_after_is_not():
    told = told_after([(3, 0.0), (2, 0.0), (1, 0.0)], every_s=60.0)
    assert told == [queue_message(3)]


def test_a_lower_place_is_told_once_every_s_has_passed():
    told = told_after([(3, 0.0), (2, 0.0), (2, 0.06), (1, 0.0)], every_s=0.05)
    assert told == [queue_message(3), queue_message(2)]


def test_a_place_no_better_than_the_last_told_is_not_told_again():
    told = told_after([(3, 0.0), (3, 0.0), (4, 0.0)], every_s=0.0)
    assert told == [queue_message(3)]
    assert told_after([(3, 0.0), (2, 0.0), (1, 0.0)], every_s=0.0) == [queue_message(n) for n in (3, 2, 1)]

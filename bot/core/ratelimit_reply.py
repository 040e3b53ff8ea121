"""The writer-facing side of the rate limit."""

from __future__ import annotations

from bot.core.replies import Invocation, Reply, error_reply
from bot.core.services import CoreServices


def rate_limited(services: CoreServices, invocation: Invocation) -> Reply | None:
    """An error reply when this writer asked for too many scenes this minute, else None."""
    wait = services.limiter.retry_after(f"{invocation.platform}:{invocation.user_id}")
    if not wait:
        return None
    limit = services.limiter.per_minute
    return error_reply("Slow down", f"You can ask for {limit} scenes a minute; try again in {wait:.0f} s.")

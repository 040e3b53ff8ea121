"""Files shared in a channel, for `/style` on a script someone uploaded.

    /style                      the newest script file shared in this channel
    /style F0123ABCD            that file
    /style https://….slack.com/files/U…/F0123ABCD/pilot.fdx   (its permalink)

Files are found with files.list / files.info (the files:read scope) and downloaded from
their `url_private` with the bot token, as Slack requires. Only URLs that Slack's own
API returned are fetched: a link typed by a writer is reduced to its file id first, so
the token never travels to a host the writer chose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.posting import api_error

# Files listed when looking for the newest script: a script shared a few messages
# before a screenshot is still found.
RECENT_FILES = 20
DOWNLOAD_TIMEOUT_S = 60

_FILE_ID = re.compile(r"^F[A-Z0-9]{6,}$")
_PERMALINK = re.compile(r"^<?https?://[^\s/]+/files/[^/\s]+/(F[A-Z0-9]{6,})(?:[/?#|][^\s]*)?>?$")


class FileProblem(Exception):
    """A shared file could not be had; the message is fit to show the writer."""


@dataclass(frozen=True)
class SharedFile:
    id: str
    name: str
    url: str
    size: int

    @classmethod
    def from_api(cls, info: dict) -> "SharedFile":
        return cls(id=info["id"], name=info.get("name") or info.get("title") or info["id"],
                   url=info.get("url_private_download") or info.get("url_private") or "",
                   size=int(info.get("size") or 0))


def file_reference(text: str) -> str | None:
    """The file id in a `/style` argument (an id or a Slack file permalink), else None."""
    text = text.strip()
    if _FILE_ID.match(text):
        return text
    match = _PERMALINK.match(text)
    return match.group(1) if match else None


async def find_file(client: AsyncWebClient, *, channel: str, file_id: str | None,
                    readable: frozenset[str]) -> SharedFile | None:
    """The file named by `file_id`, else the newest one in `channel` whose suffix is in
    `readable` (else simply the newest, so the writer hears why it cannot be read).
    None when the channel has no files."""
    try:
        if file_id:
            return SharedFile.from_api((await client.files_info(file=file_id))["file"])
        listed = (await client.files_list(channel=channel, count=RECENT_FILES)).get("files") or []
    except SlackApiError as exc:
        raise FileProblem(_api_problem(exc, file_id)) from None
    listed = sorted(listed, key=lambda info: info.get("created") or 0, reverse=True)  # newest first, whatever Slack did
    for info in listed:
        if PurePosixPath(info.get("name") or "").suffix.lower() in readable:
            return SharedFile.from_api(info)
    return SharedFile.from_api(listed[0]) if listed else None


def _api_problem(exc: SlackApiError, file_id: str | None) -> str:
    error = api_error(exc)
    if error == "file_not_found":
        return f"Slack has no file `{file_id}` that this bot can see."
    if error == "missing_scope":
        return "Slack would not let the bot read files here: the app needs the `files:read` scope."
    return f"Slack would not hand over the file ({error})."


async def download(client: AsyncWebClient, shared: SharedFile, *, max_bytes: int) -> bytes:
    """The file's bytes, fetched with the bot token; FileProblem when it cannot be had."""
    if not shared.url:
        raise FileProblem(f"Slack gave no download link for `{shared.name}` (an external or deleted file?).")
    if shared.size > max_bytes:
        raise FileProblem(f"`{shared.name}` is {shared.size:,} bytes; the limit is {max_bytes:,}.")
    headers = {"Authorization": f"Bearer {client.token}"}
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(shared.url, headers=headers) as response:
                if response.status != 200:
                    raise FileProblem(f"Downloading `{shared.name}` failed (HTTP {response.status}).")
                # Without a valid token Slack answers 200 with its sign-in page, not the file.
                if response.content_type == "text/html" and not shared.name.lower().endswith((".html", ".htm")):
                    raise FileProblem(f"Slack answered with a web page instead of `{shared.name}`: "
                                      "the bot may lack the `files:read` scope.")
                chunks, total = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    total += len(chunk)
                    if total > max_bytes:  # the size Slack reported can be missing or wrong
                        raise FileProblem(f"`{shared.name}` is larger than the {max_bytes:,}-byte limit.")
                    chunks.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FileProblem(f"Downloading `{shared.name}` failed ({type(exc).__name__}).") from None
    return b"".join(chunks)

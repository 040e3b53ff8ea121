"""Slack on loopback sockets, for driving the unmodified slack-bolt app.

* `SlackWebApi`: an aiohttp emulator of the Web API methods the bot calls (auth.test,
  chat.postMessage, chat.update, chat.postEphemeral, conversations.history/replies,
  views.open, files.list, files.info, files.getUploadURLExternal + the upload URL +
  files.completeUploadExternal), of files' `url_private` downloads and of
  `response_url`s. It records every call and keeps the channel's messages as Slack
  would, so a chat.update shows in what a later click carries.
* `SlackSender`: what Slack does towards the app: it signs requests (v0 HMAC-SHA256
  of `v0:{timestamp}:{body}`) and POSTs slash commands, interactivity payloads and
  Events API callbacks (and the url_verification handshake).
* `SlackRoom`: an event loop in a thread hosting both the emulator and the Bolt app's
  HTTP server, so plain (sync) tests can drive them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

import httpx
from aiohttp import web

TEAM_ID = "T0WRITERS"
BOT_USER_ID = "U0BOT"


@dataclass
class ApiCall:
    method: str
    args: dict[str, Any]
    token: str | None
    result: dict[str, Any] = field(default_factory=dict)  # what the emulator answered


@dataclass
class SharedFile:
    """A file someone shared in a channel; `url_private` serves `content` to the bot token only."""

    id: str
    name: str
    channel: str
    content: bytes
    created: int
    user: str = "U0WRITER"
    filetype: str = "text"


@dataclass
class SlackWebApi:
    """The Web API side. Mutate `not_in_channel` / `refuse_uploads` / `views_open_error` /
    `files_error` to provoke errors."""

    bot_token: str
    app_token: str = "xapp-1-writersroom-test"
    not_in_channel: set[str] = field(default_factory=set)
    refuse_uploads: bool = False
    views_open_error: str | None = None  # e.g. "expired_trigger_id": views.open answers ok:false with it
    files_error: str | None = None  # e.g. "missing_scope": files.list / files.info answer ok:false with it
    calls: list[ApiCall] = field(default_factory=list)
    channel_messages: dict[str, dict[str, dict]] = field(default_factory=dict)  # channel -> ts -> message
    shared_files: dict[str, SharedFile] = field(default_factory=dict)
    downloads: list[tuple[str, str | None]] = field(default_factory=list)  # (file id, token presented)
    uploads: dict[str, bytes] = field(default_factory=dict)
    responses: list[dict] = field(default_factory=list)  # bodies POSTed to response_urls
    sockets: list[web.WebSocketResponse] = field(default_factory=list)  # Socket Mode connections
    socket_acks: list[dict] = field(default_factory=list)  # what the app sent back over them
    base_url: str = ""
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))

    def web_app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/api/{method}", self._api),
            web.get("/api/{method}", self._api),  # slack_sdk reads history and file lists with GET
            web.post("/upload/{file_id}", self._upload),
            web.post("/response/{id}", self._response_url),
            web.get("/files-pri/{file_id}/{name}", self._download),
            web.get("/socket", self._socket),
        ])
        return app

    def share_file(self, channel: str, name: str, content: bytes | str, *, created: int | None = None) -> SharedFile:
        """A writer uploads a file to `channel`; newer files get later `created` times by default."""
        data = content.encode() if isinstance(content, str) else content
        number = len(self.shared_files) + 1
        shared = SharedFile(id=f"F0SHARED{number:03d}", name=name, channel=channel, content=data,
                            created=created if created is not None else 1_700_000_000 + number)
        self.shared_files[shared.id] = shared
        return shared

    def message(self, channel: str, ts: str) -> dict:
        """The message as Slack holds it now (after any chat.update), as a click would carry it."""
        return dict(self.channel_messages[channel][ts])

    # --- what tests read -------------------------------------------------------

    def of(self, method: str) -> list[ApiCall]:
        return [call for call in list(self.calls) if call.method == method]

    def messages(self, channel: str | None = None) -> list[ApiCall]:
        return [c for c in self.of("chat.postMessage") if channel is None or c.args.get("channel") == channel]

    def wait_for(self, method: str, count: int = 1, *, timeout: float = 10.0,
                 where: Callable[[ApiCall], bool] = lambda call: True) -> list[ApiCall]:
        """Block (the test thread) until `count` matching calls were recorded."""
        deadline = time.monotonic() + timeout
        while True:
            found = [call for call in self.of(method) if where(call)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [(c.method, c.args.get("text", "")[:80]) for c in self.calls]
                raise AssertionError(f"expected {count} {method} call(s) within {timeout}s; saw {seen}")
            time.sleep(0.02)

    # --- handlers --------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _read_args(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.get("token")
        call = ApiCall(method, args, token)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            call.result = _ok(False, error="invalid_auth")
        elif handler is None:
            call.result = _ok(False, error="unknown_method")
        else:
            call.result = handler(args)
        self.calls.append(call)  # after the result is set: tests may read it at once
        return web.json_response(call.result)

    def _auth_test(self, args: dict) -> dict:
        return _ok(url="https://writers.example/", team="Writers", user="writersroom", team_id=TEAM_ID,
                   user_id=BOT_USER_ID, bot_id="B0BOT", is_enterprise_install=False)

    def _chat_postMessage(self, args: dict) -> dict:
        channel = args.get("channel")
        if channel in self.not_in_channel:
            return _ok(False, error="not_in_channel")
        if not args.get("text") and not args.get("blocks"):
            return _ok(False, error="no_text")
        ts = self.next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "ts": ts, "text": args.get("text", ""),
                   "blocks": args.get("blocks") or []}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        self.channel_messages.setdefault(channel, {})[ts] = message
        return _ok(channel=channel, ts=ts, message=message)

    def _chat_postEphemeral(self, args: dict) -> dict:
        channel = args.get("channel")
        if channel in self.not_in_channel:
            return _ok(False, error="not_in_channel")
        if not args.get("user"):
            return _ok(False, error="user_not_in_channel")
        if not args.get("text") and not args.get("blocks"):
            return _ok(False, error="no_text")
        return _ok(message_ts=self.next_ts())

    def _conversations_history(self, args: dict) -> dict:
        channel = args.get("channel")
        top_level = [m for m in self.channel_messages.get(channel, {}).values()
                     if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
        newest_first = _window(top_level, args)[::-1]  # as Slack lists history
        return _ok(messages=newest_first[: int(args.get("limit") or 100)], has_more=False)

    def _conversations_replies(self, args: dict) -> dict:
        channel, root = args.get("channel"), args.get("ts")
        stored = self.channel_messages.get(channel, {})
        if root not in stored:
            return _ok(False, error="thread_not_found")
        replies = [m for m in stored.values() if m.get("thread_ts") == root and m["ts"] != root]
        oldest_first = _window(replies, args)[: int(args.get("limit") or 1000)]
        return _ok(messages=[stored[root], *oldest_first], has_more=False)  # the parent always first

    def _apps_connections_open(self, args: dict) -> dict:
        return _ok(url=self.base_url.replace("http://", "ws://") + "/socket")

    def _chat_update(self, args: dict) -> dict:
        channel, ts = args.get("channel"), args.get("ts")
        stored = self.channel_messages.get(channel, {}).get(ts)
        if channel in self.not_in_channel:
            return _ok(False, error="not_in_channel")
        if stored is None:
            return _ok(False, error="message_not_found")
        if "blocks" in args:
            stored["blocks"] = args["blocks"] or []
        if "text" in args:
            stored["text"] = args["text"]
        stored["edited"] = {"user": BOT_USER_ID, "ts": self.next_ts()}
        return _ok(channel=channel, ts=ts, text=stored["text"], message=dict(stored))

    def _views_open(self, args: dict) -> dict:
        if not args.get("trigger_id"):
            return _ok(False, error="invalid_trigger_id")
        if self.views_open_error:
            return _ok(False, error=self.views_open_error)
        view = dict(args.get("view") or {})
        view.update(id=f"V{self.next_ts().replace('.', '')}", hash="h1", team_id=TEAM_ID)
        return _ok(view=view)

    def _files_getUploadURLExternal(self, args: dict) -> dict:
        if self.refuse_uploads:
            return _ok(False, error="missing_scope", needed="files:write")
        file_id = f"F{len(self.uploads) + 1:04d}"
        self.uploads[file_id] = b""
        return _ok(upload_url=f"{self.base_url}/upload/{file_id}", file_id=file_id)

    def _files_completeUploadExternal(self, args: dict) -> dict:
        files = args.get("files") or []
        return _ok(files=[{"id": f["id"], "title": f.get("title"), "name": f.get("title")} for f in files])

    def _file_info(self, shared: SharedFile) -> dict:
        return {
            "id": shared.id, "created": shared.created, "timestamp": shared.created, "name": shared.name,
            "title": shared.name, "filetype": shared.filetype, "size": len(shared.content), "user": shared.user,
            "channels": [shared.channel], "is_external": False,
            "url_private": f"{self.base_url}/files-pri/{shared.id}/{shared.name}",
            "url_private_download": f"{self.base_url}/files-pri/{shared.id}/{shared.name}",
            "permalink": f"https://writers.example/files/{shared.user}/{shared.id}/{shared.name}",
        }

    def _files_list(self, args: dict) -> dict:
        if self.files_error:
            return _ok(False, error=self.files_error)
        found = [f for f in self.shared_files.values() if not args.get("channel") or f.channel == args["channel"]]
        found.sort(key=lambda f: f.created, reverse=True)  # newest first, as Slack lists them
        count = int(args.get("count") or 100)
        return _ok(files=[self._file_info(f) for f in found[:count]],
                   paging={"count": count, "total": len(found), "page": 1, "pages": 1})

    def _files_info(self, args: dict) -> dict:
        if self.files_error:
            return _ok(False, error=self.files_error)
        shared = self.shared_files.get(args.get("file") or "")
        if shared is None:
            return _ok(False, error="file_not_found")
        return _ok(file=self._file_info(shared))

    async def _download(self, request: web.Request) -> web.Response:
        shared = self.shared_files.get(request.match_info["file_id"])
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or None
        self.downloads.append((request.match_info["file_id"], token))
        if shared is None:
            return web.Response(status=404, text="file not found")
        if token != self.bot_token:
            # What Slack really does without a valid token: 200 with its sign-in page.
            return web.Response(text="<!DOCTYPE html><html><body>Sign in to Slack</body></html>",
                                content_type="text/html")
        return web.Response(body=shared.content, content_type="application/octet-stream")

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="unknown file")
        self.uploads[file_id] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1,
                                "connection_info": {"app_id": "A0APP"}, "debug_info": {"host": "emulator"}})
        async for message in socket:
            if message.type.name == "TEXT":
                self.socket_acks.append(json.loads(message.data))
        return socket

    async def push(self, envelope: dict) -> None:
        """Send a Socket Mode envelope to the newest connection (call on the emulator's loop)."""
        await self.sockets[-1].send_json(envelope)

    def next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"


async def _read_args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.method == "GET":
        pass
    elif request.content_type == "application/json":
        args.update(await request.json())
    else:
        args.update(dict(await request.post()))
    for key, value in list(args.items()):  # form-encoded blocks / views arrive as JSON strings
        if isinstance(value, str) and value[:1] in "[{":
            try:
                args[key] = json.loads(value)
            except ValueError:
                pass
    return args


def _ok(ok: bool = True, **fields: Any) -> dict[str, Any]:
    return {"ok": ok, **fields}


def _window(messages: list[dict], args: dict) -> list[dict]:
    """Messages (oldest first) within the oldest/latest/inclusive bounds Slack's history methods take."""
    oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
    inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
    inside = [m for m in messages
              if (oldest <= float(m["ts"]) <= latest if inclusive else oldest < float(m["ts"]) < latest)]
    return sorted(inside, key=lambda m: float(m["ts"]))


# --- the sender: Slack's requests towards the app ------------------------------------


def sign(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SlackSender:
    events_url: str
    signing_secret: str
    response_base: str  # where response_urls point (the emulator)
    channel: str = "C0ROOM"
    user: str = "U0WRITER"
    user_name: str = "maya"
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def post(self, body: str, *, content_type: str = "application/x-www-form-urlencoded",
             timestamp: int | None = None, signature: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or sign(self.signing_secret, ts, body),
            **(headers or {}),
        }
        return httpx.post(self.events_url, content=body, headers=all_headers, timeout=10)

    def command_body(self, command: str, text: str = "", *, channel: str | None = None) -> str:
        return urlencode(self.command_fields(command, text, channel=channel))

    def command_fields(self, command: str, text: str = "", *, channel: str | None = None) -> dict[str, str]:
        n = next(self._ids)
        return {
            "token": "legacy-verification", "team_id": TEAM_ID, "team_domain": "writers",
            "channel_id": channel or self.channel, "channel_name": "writers-room",
            "user_id": self.user, "user_name": self.user_name, "command": command, "text": text,
            "api_app_id": "A0APP", "is_enterprise_install": "false",
            "response_url": f"{self.response_base}/response/{n}", "trigger_id": f"trigger.{n}",
        }

    def command(self, command: str, text: str = "", *, channel: str | None = None, **kwargs) -> httpx.Response:
        return self.post(self.command_body(command, text, channel=channel), **kwargs)

    def block_action(self, action_id: str, value: str, *, message: dict, channel: str | None = None,
                     action_ts: str | None = None, user: str | None = None, **kwargs) -> httpx.Response:
        n = next(self._ids)
        channel = channel or self.channel
        user = user or self.user
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "writers"},
            "user": {"id": user, "username": self.user_name, "name": self.user_name, "team_id": TEAM_ID},
            "api_app_id": "A0APP",
            "token": "legacy-verification",
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                          "is_ephemeral": False},
            "trigger_id": f"trigger.{n}",
            "channel": {"id": channel, "name": "writers-room"},
            "message": message,
            "response_url": f"{self.response_base}/response/{n}",
            "actions": [{
                "type": "button", "action_id": action_id, "block_id": "wr_actions", "value": value,
                "text": {"type": "plain_text", "text": action_id}, "action_ts": action_ts or f"{time.time():.6f}",
            }],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}), **kwargs)

    def event(self, event: dict, *, event_id: str | None = None, **kwargs) -> httpx.Response:
        """An Events API callback wrapping `event`, signed like the rest."""
        envelope = {
            "token": "legacy-verification", "team_id": TEAM_ID, "api_app_id": "A0APP", "event": event,
            "type": "event_callback", "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True,
                                "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
        }
        return self.post(json.dumps(envelope), content_type="application/json", **kwargs)

    def mention(self, text: str, *, thread_ts: str | None = None, channel: str | None = None,
                user: str | None = None, event_id: str | None = None, **kwargs) -> httpx.Response:
        """A writer posts `@writersroom {text}` (in the thread `thread_ts`, if given)."""
        ts = f"{time.time():.6f}"
        event = {"type": "app_mention", "user": user or self.user, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts,
                 "channel": channel or self.channel, "event_ts": ts, "team": TEAM_ID}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.event(event, event_id=event_id, **kwargs)

    def url_verification(self, challenge: str) -> httpx.Response:
        """The handshake Slack makes when the Events API request URL is set."""
        body = {"token": "legacy-verification", "challenge": challenge, "type": "url_verification"}
        return self.post(json.dumps(body), content_type="application/json")

    def view_submission(self, view: dict, *, user: str | None = None, **kwargs) -> httpx.Response:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "writers"},
            "user": {"id": user or self.user, "username": self.user_name, "name": self.user_name,
                     "team_id": TEAM_ID},
            "api_app_id": "A0APP",
            "token": "legacy-verification",
            "trigger_id": f"trigger.{next(self._ids)}",
            "view": view,
            "response_urls": [],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}), **kwargs)


def message_of(call: ApiCall) -> dict:
    """The message Slack hands back in a block_actions payload, for a recorded chat.postMessage."""
    return dict(call.result["message"])


def submitted_view(opened: dict, text: str) -> dict:
    """The view of a views.open call as Slack submits it, with the input's value set to `text`."""
    values: dict[str, dict] = {}
    for block in opened.get("blocks", []):
        if block.get("type") == "input":
            element = block["element"]
            values[block["block_id"]] = {element["action_id"]: {"type": element["type"], "value": text}}
    return {**opened, "id": opened.get("id", "V0EDIT"), "state": {"values": values}, "hash": "h1"}


# --- the room: both servers on one loop in a thread ------------------------------------


class LoopThread:
    """An asyncio loop in a daemon thread; `run(coro)` waits for a result from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(_cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

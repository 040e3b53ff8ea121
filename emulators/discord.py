"""A small Discord on a loopback socket: the REST routes and the gateway that discord.py uses.

The unmodified discord.py client talks to it exactly as it talks to Discord:

    REST (aiohttp, under /api/v10)
      GET  /users/@me                              login
      GET  /oauth2/applications/@me                application info at login
      GET  /gateway/bot                            announces ws://127.0.0.1:<port>/gateway
      PUT  /applications/{app}/commands            global command sync
      PUT  /applications/{app}/guilds/{g}/commands guild command sync
      POST /interactions/{id}/{token}/callback     acknowledgements (defer = type 5 or 6, modal = 9),
                                                   refused as Discord does when a second one comes
                                                   (400, code 40060) or when 3 s have passed (404, 10062),
                                                   counted on `ack_clock` (see StallFreeClock)
      POST /webhooks/{app}/{token}                 followups (JSON or multipart with files)
      PATCH/GET/DELETE /webhooks/{app}/{token}/messages/{id}   ("@original": the interaction's
                                                   response: the loading message a type-5 defer
                                                   shows, a type-4 answer, else the clicked message)
      GET  /channels/{id}                          a guild text channel (404 unless in `text_channels`)
      POST /channels/{id}/messages                 plain bot messages (JSON or multipart with files)
    Gateway (websocket at /gateway)
      -> op 10 HELLO; <- op 2 IDENTIFY; -> READY, GUILD_CREATE (roles, channel, thread);
      <- op 1 heartbeat; -> op 11 ACK
      -> INTERACTION_CREATE, sent by `command()`, `click()` and `submit_modal()`, in the guild
         channel, a thread of it (`where=THREAD`) or a direct message (`where=DM`), as any
         member (`member=`, with role ids)

Everything the bot sends is kept (`callbacks`, `followups`, `channel_posts`, `commands`, `unhandled`,
`refused_callbacks`, `ack_seconds`) for the tests to inspect. Only what the writersroom bot needs is emulated.

The 3-second rule is there to catch a bot that makes Discord wait: one that awaits slow work
(the backend, the store) before it acknowledges, or keeps the event loop busy. The emulator, the
bot and the test share one event loop, so on a busy machine (a CI runner at load average 6) the
kernel also leaves that loop's thread waiting for a CPU, and wall-clock time counted that against
the bot. So the 3 s run on `ack_clock`, by default a StallFreeClock: from the moment the interaction
has been handed to the gateway socket to the moment its callback request reaches the emulator,
less the time the loop's thread sat runnable with no CPU to run on. Awaiting and computing still
count in full; a test can also set `ack_clock` to a clock of its own and move it on.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import WSMsgType, web

API_PREFIX = "/api/v10"
ACK_DEADLINE_S = 3.0  # Discord forgets an interaction not answered within 3 seconds
EPHEMERAL = 64  # message flag
LOADING = 128  # message flag: the "… is thinking" message of a deferred response
GUILD, THREAD, DM = "guild", "thread", "dm"  # where an interaction comes from
CHANNEL_ID = 700_000_000_000_000_001  # the room's text channel
HEARTBEAT_INTERVAL_MS = 41_250
PERMISSIONS_ALL = "2251799813685247"


class StallFreeClock:
    """Seconds of time.monotonic() less the time one thread spent runnable but waiting for a CPU.

    Linux counts that wait per thread (`/proc/self/task/<tid>/schedstat`, second field, in ns:
    time on a run queue). Only the waits of the thread the clock was made on are taken off, so
    read it on that thread alone (the emulator's event loop). Where the kernel does not say (not
    Linux, no schedstat), this is plain time.monotonic().
    """

    def __init__(self) -> None:
        self._schedstat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self._waited = self._read_waited()
        self.available = self._waited is not None

    def _read_waited(self) -> float | None:
        try:
            with open(self._schedstat, encoding="ascii") as stats:
                return int(stats.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def __call__(self) -> float:
        now = time.monotonic()
        if not self.available:
            return now
        self._waited = self._read_waited() or self._waited  # a failed read keeps the last count
        return now - self._waited


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


@dataclass
class Callback:
    interaction_id: int
    token: str
    type: int
    data: dict[str, Any]


@dataclass
class Followup:
    application_id: int
    token: str
    payload: dict[str, Any]  # the JSON the bot sent (payload_json for multipart)
    files: dict[str, bytes]  # filename -> content
    message: dict[str, Any]  # the message object answered (as sent; `messages` has it as edited since)


@dataclass
class ChannelPost:
    """A message the bot sent to a channel itself (not as an interaction response)."""

    channel_id: int
    payload: dict[str, Any]  # the JSON the bot sent (payload_json for multipart)
    files: dict[str, bytes]  # filename -> content
    message: dict[str, Any]  # the message object answered


@dataclass
class DiscordEmulator:
    application_id: int = 900_000_000_000_000_001
    bot_user_id: int = 900_000_000_000_000_001
    guild_id: int = 800_000_000_000_000_001
    channel_id: int = CHANNEL_ID
    user: dict[str, Any] = field(default_factory=lambda: {
        "id": "600000000000000001", "username": "maya", "global_name": "Maya", "discriminator": "0",
        "avatar": None})
    callbacks: list[Callback] = field(default_factory=list)
    followups: list[Followup] = field(default_factory=list)
    channel_posts: list[ChannelPost] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)  # each edited message, as it read after the edit
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "global" or guild id -> commands
    unhandled: list[str] = field(default_factory=list)
    refused_callbacks: list[tuple[int, int]] = field(default_factory=list)  # (interaction id, Discord error code)
    # interaction id -> seconds on `ack_clock` from delivery on the gateway to the acknowledgement
    ack_seconds: dict[int, float] = field(default_factory=dict)
    # What the 3 s are measured on; None: a StallFreeClock on the thread that runs start() (the event loop).
    ack_clock: Callable[[], float] | None = None
    identifies: int = 0
    thread_id: int = 700_000_000_000_000_101  # a public thread in `channel_id`
    roles: dict[int, str] = field(default_factory=lambda: {501: "writers", 555: "showrunners"})  # id -> name
    dm_channel_id: int = 700_000_000_000_000_201

    def __post_init__(self) -> None:
        self._ids = itertools.count(int(time.time() * 1000 - 1_420_070_400_000) << 22)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._seq = 0
        self.messages: dict[int, dict[str, Any]] = {}
        self._sent: dict[int, tuple[float, int | None]] = {}  # interaction id -> (delivered at, clicked message id)
        self._where: dict[int, tuple[str, str | None]] = {}  # interaction id -> (channel id, guild id or None)
        self._responses: dict[int, int] = {}  # interaction id -> id of its response message ("@original")
        self.text_channels: set[int] = {self.channel_id}  # add ids to make more channels exist
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> "DiscordEmulator":
        if self.ack_clock is None:
            self.ack_clock = StallFreeClock()
        app = web.Application(client_max_size=50 * 1024 * 1024)
        api = API_PREFIX
        app.router.add_get(f"{api}/users/@me", self._me)
        app.router.add_get(f"{api}/oauth2/applications/@me", self._application)
        app.router.add_get(f"{api}/gateway/bot", self._gateway_bot)
        app.router.add_get(f"{api}/gateway", self._gateway_bot)
        app.router.add_put(f"{api}/applications/{{app}}/commands", self._sync_commands)
        app.router.add_put(f"{api}/applications/{{app}}/guilds/{{guild}}/commands", self._sync_commands)
        app.router.add_post(f"{api}/interactions/{{id}}/{{token}}/callback", self._callback)
        app.router.add_post(f"{api}/webhooks/{{app}}/{{token}}", self._followup)
        app.router.add_patch(f"{api}/webhooks/{{app}}/{{token}}/messages/{{message}}", self._edit_message)
        app.router.add_delete(f"{api}/webhooks/{{app}}/{{token}}/messages/{{message}}", self._delete_message)
        app.router.add_get(f"{api}/webhooks/{{app}}/{{token}}/messages/{{message}}", self._get_message)
        app.router.add_get(f"{api}/channels/{{channel}}", self._get_channel)
        app.router.add_post(f"{api}/channels/{{channel}}/messages", self._post_channel_message)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._unhandled)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> "DiscordEmulator":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def new_id(self) -> int:
        return next(self._ids)

    # -- REST ----------------------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {"id": str(self.bot_user_id), "username": "writersroom", "discriminator": "0", "avatar": None,
                "global_name": None, "bot": True, "verified": True, "mfa_enabled": False, "flags": 0}

    async def _me(self, request: web.Request) -> web.Response:
        return _json(self._bot_user())

    async def _application(self, request: web.Request) -> web.Response:
        return _json({
            "id": str(self.application_id), "name": "writersroom", "description": "", "icon": None,
            "bot_public": False, "bot_require_code_grant": False, "verify_key": "00", "flags": 0,
            "owner": {"id": self.user["id"], "username": "owner", "discriminator": "0", "avatar": None},
            "team": None, "redirect_uris": [], "interactions_endpoint_url": None,
        })

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})

    async def _sync_commands(self, request: web.Request) -> web.Response:
        payload = await request.json()
        scope = request.match_info.get("guild", "global")
        answered = []
        for command in payload:
            answered.append({
                "id": str(self.new_id()), "application_id": str(self.application_id), "version": "1",
                "default_member_permissions": None, "dm_permission": True, "nsfw": False, "type": 1,
                "options": [], **command,
                **({"guild_id": scope} if scope != "global" else {}),
            })
        async with self._changed:
            self.commands[scope] = answered
            self._changed.notify_all()
        return _json(answered)

    async def _callback(self, request: web.Request) -> web.Response:
        arrived_at = self.ack_clock()  # before reading the body: the emulator's own work is not the bot's
        body = await _json_or_multipart(request)
        payload = body[0]
        callback = Callback(int(request.match_info["id"]), request.match_info["token"], payload["type"],
                            payload.get("data") or {})
        sent_at, _ = self._sent.get(callback.interaction_id, (None, None))
        refusal = None
        if callback.interaction_id in self.ack_seconds:
            refusal = (400, {"message": "Interaction has already been acknowledged.", "code": 40060})
        elif sent_at is None or arrived_at - sent_at > ACK_DEADLINE_S:
            refusal = (404, {"message": "Unknown interaction", "code": 10062})
        async with self._changed:
            if refusal is not None:
                self.refused_callbacks.append((callback.interaction_id, refusal[1]["code"]))
                self._changed.notify_all()
                return _json(refusal[1], status=refusal[0])
            self.ack_seconds[callback.interaction_id] = arrived_at - sent_at
            self.callbacks.append(callback)
            if callback.type in (4, 5):  # the answer is a message (5: "… is thinking", until edited)
                data = callback.data if callback.type == 4 else {
                    "content": "", "flags": LOADING | (callback.data.get("flags") or 0) & EPHEMERAL}
                message = self._message(data, {}, interaction_token=callback.token)
                self.messages[int(message["id"])] = message
                self._responses[callback.interaction_id] = int(message["id"])
            self._changed.notify_all()
        return _json({"interaction": {
            "id": str(callback.interaction_id), "type": 2,
            "response_message_loading": callback.type == 5, "response_message_ephemeral": False}})

    async def _followup(self, request: web.Request) -> web.Response:
        payload, files = await _json_or_multipart(request)
        message = self._message(payload, files, interaction_token=request.match_info["token"])
        followup = Followup(int(request.match_info["app"]), request.match_info["token"], payload, files, message)
        async with self._changed:
            # Discord's copy changes with edits; the followup keeps the message as it was sent.
            self.messages[int(message["id"])] = copy.deepcopy(message)
            self.followups.append(followup)
            self._changed.notify_all()
        return _json(message)

    def _webhook_message(self, request: web.Request) -> dict[str, Any] | None:
        """The message a webhook route names: an id, or "@original": the interaction's response
        message (a deferred one's loading message), else, for a click or a modal submitted from
        a message that was answered by updating it (type 6), the message the button is on."""
        key = request.match_info["message"]
        if key == "@original":
            token = request.match_info["token"]
            interaction_id = int(token.removeprefix("token-")) if token.startswith("token-") else -1
            _, key = self._sent.get(interaction_id, (None, None))
            key = self._responses.get(interaction_id, key)
        return self.messages.get(int(key)) if key is not None and str(key).isdigit() else None

    async def _edit_message(self, request: web.Request) -> web.Response:
        payload, files = await _json_or_multipart(request)
        message = self._webhook_message(request)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        async with self._changed:
            message.update({key: payload[key] for key in ("content", "embeds", "components") if key in payload})
            message["flags"] = (message.get("flags") or 0) & ~LOADING  # an edit ends "… is thinking"
            message["edited_timestamp"] = _iso_now()
            self.edits.append(dict(message))
            self._changed.notify_all()
        return _json(message)

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self._webhook_message(request)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(message)

    async def _delete_message(self, request: web.Request) -> web.Response:
        message = self._webhook_message(request)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        async with self._changed:
            self.messages.pop(int(message["id"]), None)
            self._changed.notify_all()
        return web.Response(status=204)

    def _known_channel(self, request: web.Request) -> int | None:
        key = request.match_info["channel"]
        return int(key) if key.isdigit() and int(key) in self.text_channels else None

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel_id = self._known_channel(request)
        if channel_id is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        return _json(self._channel(channel_id))

    async def _post_channel_message(self, request: web.Request) -> web.Response:
        channel_id = self._known_channel(request)
        if channel_id is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        payload, files = await _json_or_multipart(request)
        message = self._message(payload, files, channel_id=channel_id)
        async with self._changed:
            self.messages[int(message["id"])] = copy.deepcopy(message)
            self.channel_posts.append(ChannelPost(channel_id, payload, files, message))
            self._changed.notify_all()
        return _json(message)

    async def _unhandled(self, request: web.Request) -> web.Response:
        self.unhandled.append(f"{request.method} {request.path}")
        return _json({"message": "404: Not Found (emulator)", "code": 0}, status=404)

    def _message(self, payload: dict[str, Any], files: dict[str, bytes], *, channel_id: int | None = None,
                 interaction_token: str | None = None) -> dict[str, Any]:
        """The message object Discord answers: an interaction response where the interaction
        came from (the room's channel by default), or (with `channel_id`) the bot's own message
        in that channel, which has no webhook id."""
        message_id = self.new_id()
        where_channel, guild = str(self.channel_id), str(self.guild_id)
        if interaction_token and interaction_token.startswith("token-"):
            where_channel, guild = self._where.get(int(interaction_token.removeprefix("token-")), (where_channel, guild))
        attachments = [
            {"id": str(self.new_id()), "filename": name, "size": len(content),
             "url": f"http://127.0.0.1:{self.port}/attachments/{message_id}/{name}",
             "proxy_url": f"http://127.0.0.1:{self.port}/attachments/{message_id}/{name}"}
            for name, content in files.items()
        ]
        message = {
            "id": str(message_id), "type": 0, "channel_id": str(channel_id or where_channel),
            "author": self._bot_user(), "content": payload.get("content") or "", "timestamp": _iso_now(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": attachments, "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [], "pinned": False, "flags": payload.get("flags") or 0,
            "webhook_id": str(self.application_id), "application_id": str(self.application_id),
        }
        if guild is not None:
            message["guild_id"] = guild
        if channel_id is not None:
            del message["webhook_id"], message["application_id"]
        return message

    def _guild(self) -> dict[str, Any]:
        """The guild as GUILD_CREATE brings it after READY: its roles, text channel and thread."""
        roles = [{"id": str(role_id), "name": name, "color": 0, "hoist": False, "position": position,
                  "permissions": "0" if position else "1071698660929", "managed": False, "mentionable": False,
                  "flags": 0}
                 for position, (role_id, name) in enumerate([(self.guild_id, "@everyone"), *self.roles.items()])]
        return {"id": str(self.guild_id), "name": "Writers' Room", "icon": None, "owner_id": self.user["id"],
                "roles": roles, "emojis": [], "stickers": [], "features": [], "member_count": 3, "large": False,
                "unavailable": False, "joined_at": "2024-01-01T00:00:00+00:00", "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0,
                "premium_tier": 0, "preferred_locale": "en-US", "system_channel_id": None, "afk_channel_id": None,
                "afk_timeout": 300, "members": [], "voice_states": [], "presences": [],
                "channels": [self._channel(channel_id) for channel_id in sorted(self.text_channels)],
                "threads": [self._thread()], "stage_instances": [], "guild_scheduled_events": []}

    def _channel(self, channel_id: int) -> dict[str, Any]:
        """A guild text channel object (type 0)."""
        return {"id": str(channel_id), "type": 0, "guild_id": str(self.guild_id), "name": "writers-room",
                "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None}

    # -- gateway -------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                if message["op"] == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif message["op"] == 2:
                    session_id = f"session-{self.identifies + 1}"
                    await self._dispatch(ws, "READY", {
                        "v": 10, "user": self._bot_user(), "guilds": [{"id": str(self.guild_id), "unavailable": True}],
                        "session_id": session_id, "resume_gateway_url": self.gateway_url, "shard": [0, 1],
                        "application": {"id": str(self.application_id), "flags": 0},
                    })
                    await self._dispatch(ws, "GUILD_CREATE", self._guild())
                    async with self._changed:
                        self.identifies += 1
                        self._changed.notify_all()
                    self._ready.set()
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
            if not self._sockets:
                self._ready.clear()
        return ws

    async def _dispatch(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        await ws.send_json({"op": 0, "t": event, "s": self._seq, "d": data})

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until a client has identified on the gateway."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def dispatch_interaction(self, interaction: dict[str, Any]) -> dict[str, Any]:
        if not self._sockets:
            raise RuntimeError("no client connected to the gateway")
        interaction_id = int(interaction["id"])
        clicked = int(interaction["message"]["id"]) if interaction.get("message", {}).get("id") else None
        self._sent[interaction_id] = (self.ack_clock(), clicked)  # known from now on
        self._where[interaction_id] = (interaction["channel_id"], interaction.get("guild_id"))
        await self._dispatch(self._sockets[-1], "INTERACTION_CREATE", interaction)
        if interaction_id not in self.ack_seconds:  # the 3 s run from delivery, as Discord counts them
            self._sent[interaction_id] = (self.ack_clock(), clicked)
        return interaction

    # -- interactions the tests send -----------------------------------------------------------

    def member(self, user_id: str = "600000000000000001", name: str = "maya", roles: tuple[int, ...] = ()) -> dict:
        """A guild member as interactions carry it: the user and the ids of the roles they hold."""
        return {"user": {"id": str(user_id), "username": name, "global_name": name.capitalize(), "discriminator": "0",
                         "avatar": None},
                "roles": [str(role) for role in roles], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False,
                "mute": False, "flags": 0, "permissions": PERMISSIONS_ALL, "nick": None}

    def _interaction(self, type_: int, data: dict[str, Any], *, where: str = GUILD, member: dict | None = None,
                     channel_id: int | None = None, **extra: Any) -> dict[str, Any]:
        interaction_id = self.new_id()
        member = member or {**self.member(), "user": dict(self.user)}
        interaction = {
            "id": str(interaction_id), "application_id": str(self.application_id), "type": type_,
            "token": f"token-{interaction_id}", "version": 1, "data": data,
            "app_permissions": PERMISSIONS_ALL, "locale": "en-US", "entitlements": [],
            "attachment_size_limit": 26_214_400, **extra,
        }
        if where == DM:  # no guild, no member: the user alone, in the bot's DM channel with them
            channel = {"id": str(channel_id or self.dm_channel_id), "type": 1, "recipients": [member["user"]]}
            interaction.update(user=member["user"], channel=channel, channel_id=channel["id"], context=1,
                               authorizing_integration_owners={"1": member["user"]["id"]})
        else:
            channel = self._channel(channel_id or self.channel_id) if where == GUILD else self._thread()
            interaction.update(guild_id=str(self.guild_id), guild_locale="en-US", member=member, channel=channel,
                               channel_id=channel["id"], context=0,
                               authorizing_integration_owners={"0": str(self.guild_id)})
        return interaction

    async def command(self, name: str, *, where: str = GUILD, member: dict | None = None,
                      channel_id: int | None = None, **options: Any) -> int:
        """A slash command typed in the channel (or `where` else); returns the interaction id."""
        scope = str(self.guild_id) if str(self.guild_id) in self.commands else "global"
        known = {command["name"]: command for command in self.commands.get(scope, [])}
        if name not in known:
            raise KeyError(f"/{name} was never synced (synced: {sorted(known)})")
        data = {"id": known[name]["id"], "name": name, "type": 1,
                "options": [{"name": key, "type": 3, "value": value} for key, value in options.items()]}
        if scope != "global":
            data["guild_id"] = scope
        interaction = await self.dispatch_interaction(
            self._interaction(2, data, where=where, member=member, channel_id=channel_id))
        return int(interaction["id"])

    async def click(self, message: dict[str, Any], custom_id: str, *, member: dict | None = None) -> int:
        """A button press on a message the bot sent (where that message is); returns the interaction id."""
        data = {"custom_id": custom_id, "component_type": 2}
        interaction = await self.dispatch_interaction(
            self._interaction(3, data, message=message, member=member, **self._where_message_is(message)))
        return int(interaction["id"])

    async def submit_modal(self, modal: dict[str, Any], values: dict[str, str],
                           message: dict[str, Any] | None = None, *, member: dict | None = None) -> int:
        """Submit a modal the bot opened (the `data` of its type-9 callback) with new text input values."""
        rows = []
        for row in modal.get("components", []):
            inputs = [row["component"]] if "component" in row else row.get("components", [])
            for component in inputs:
                if component.get("type") == 4:
                    value = values.get(component["custom_id"], component.get("value", ""))
                    answer = {"type": 4, "custom_id": component["custom_id"], "value": value}
                    if "component" in row:  # a Label (type 18) wraps one component
                        rows.append({"type": 18, "id": row.get("id"), "component": answer})
                    else:
                        rows.append({"type": 1, "components": [answer]})
        data = {"custom_id": modal["custom_id"], "components": rows}
        extra = {"message": message, **self._where_message_is(message)} if message is not None else {}
        interaction = await self.dispatch_interaction(self._interaction(5, data, member=member, **extra))
        return int(interaction["id"])

    def _where_message_is(self, message: dict[str, Any]) -> dict[str, Any]:
        channel_id = int(message["channel_id"])
        if channel_id == self.dm_channel_id:
            return {"where": DM}
        return {"where": THREAD} if channel_id == self.thread_id else {"channel_id": channel_id}

    def _thread(self) -> dict[str, Any]:
        """A public thread (type 11) in the guild channel."""
        return {"id": str(self.thread_id), "type": 11, "guild_id": str(self.guild_id), "name": "cold open",
                "parent_id": str(self.channel_id), "owner_id": self.user["id"], "member_count": 2,
                "message_count": 1, "rate_limit_per_user": 0, "flags": 0,
                "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                    "archive_timestamp": _iso_now()}}

    # -- waiting -------------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Until predicate() is truthy (re-checked whenever the bot calls a route); returns its value."""
        async def until() -> Any:
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
                return value
        return await asyncio.wait_for(until(), timeout)

    async def callback_for(self, interaction_id: int, timeout: float = 10.0) -> Callback:
        return await self.wait_for(
            lambda: next((c for c in self.callbacks if c.interaction_id == interaction_id), None), timeout)

    async def followup_for(self, interaction_id: int, timeout: float = 20.0) -> Followup:
        token = f"token-{interaction_id}"
        return await self.wait_for(lambda: next((f for f in self.followups if f.token == token), None), timeout)


def _json(data: Any, status: int = 200) -> web.Response:
    """discord.py parses a body as JSON only when Content-Type is exactly application/json (no charset)."""
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


async def _json_or_multipart(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON payload and any files, whether the bot sent JSON or multipart/form-data."""
    if not request.content_type.startswith("multipart/"):
        return (await request.json() if request.can_read_body else {}), {}
    payload: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    reader = await request.multipart()
    async for part in reader:
        if part.name == "payload_json":
            payload = json.loads(await part.text())
        else:
            files[part.filename or part.name or "file"] = bytes(await part.read())
    return payload, files

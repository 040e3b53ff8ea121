"""Slash commands: /dialogue, /similar, /recommend, /style, /room and /wr-help, mapped onto the core command table.

Each command is acked at once by a small ack function (Slack allows 3 seconds; a scene
takes longer); the work runs afterwards as a lazy listener: the core command, then its
reply posted into the channel with chat.postMessage. Anything the writer is told before
the reply (a scene waiting in the backend's queue) goes to them alone, as an ephemeral
message through the command's response_url. /style with no
text, or with a file id or permalink, reads a script shared in the channel instead of
pasted text (bot.slack.shared_files).
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.commands import dispatch
from bot.core.pipeline import serve
from bot.core.replies import Invocation, Reply, error_reply
from bot.core.services import CoreServices
from bot.core.style import FILE_MAX_BYTES, readable_suffixes, style_of_file
from bot.slack.posting import logged, notify_by_response, post_scene_reply, slack_invocation
from bot.slack.shared_files import FileProblem, download, file_reference, find_file

# Slack command -> core command name. /help is too generic a name to claim in a workspace.
SLASH_COMMANDS = {"/dialogue": "dialogue", "/similar": "similar", "/recommend": "recommend", "/style": "style",
                  "/room": "room", "/wr-help": "help"}

# What the writer sees (only they do) while the work runs.
ACK_TEXT = {"dialogue": "Writing the scene…", "similar": "Searching the library…",
            "style": "Reading the script…"}
STYLE_FILE_ACK = "Reading the newest script shared here…"

NO_SHARED_FILE = ("No file has been shared in this channel yet. Upload a script (Fountain, FDX, PDF, TEI XML or "
                  "plain text) and run `/style` again, give a file's link after `/style`, or paste a scene after it.")


def register(app: AsyncApp, services: CoreServices) -> None:
    for slash, name in SLASH_COMMANDS.items():
        app.command(slash)(ack=_acknowledger(name), lazy=[_command_handler(services, slash, name)])


def _on_shared_file(name: str, text: str) -> bool:
    return name == "style" and (not text or file_reference(text) is not None)


def _acknowledger(name: str):
    async def ack_command(ack, command) -> None:
        text = (command.get("text") or "").strip()
        ack_text = STYLE_FILE_ACK if _on_shared_file(name, text) and not text else ACK_TEXT.get(name) if text else None
        if ack_text:
            await ack(text=ack_text)
        else:
            await ack()

    ack_command.__name__ = f"ack_{name}_command"
    return ack_command


def _command_handler(services: CoreServices, slash: str, name: str):
    async def handle_command(command, client, respond) -> None:
        text = (command.get("text") or "").strip()
        invocation = slack_invocation(
            team_id=command.get("team_id"), channel_id=command["channel_id"], user_id=command["user_id"],
            text=text, user_name=command.get("user_name"), channel_name=command.get("channel_name"),
            delivery_id=command.get("trigger_id"), notify=notify_by_response(respond),
        )
        if _on_shared_file(name, text):
            reply = await serve(services, invocation, "style", lambda: style_of_shared_file(
                services, client, invocation, channel=command["channel_id"]))
        else:
            reply = await dispatch(services, name, invocation)
        await post_scene_reply(client, services, reply, channel=command["channel_id"], respond=respond)

    handle_command.__name__ = f"handle_{name}_command"  # Bolt tells lazy listeners apart by name
    return logged(handle_command)


async def style_of_shared_file(services: CoreServices, client: AsyncWebClient, invocation: Invocation, *,
                               channel: str) -> Reply:
    """The core style report of a file shared in `channel` (the one the text names, else the newest script);
    run through the core pipeline by the caller, which also applies the channel allowlist."""
    try:
        shared = await find_file(client, channel=channel, file_id=file_reference(invocation.text),
                                 readable=readable_suffixes())
        if shared is None:
            return error_reply("/style", NO_SHARED_FILE)
        data = await download(client, shared, max_bytes=FILE_MAX_BYTES)
    except FileProblem as problem:
        return error_reply("/style", str(problem))
    return await style_of_file(services, invocation, data=data, filename=shared.name)

"""Slash commands: /dialogue, /similar, /recommend, /style, /room and /wr-help, mapped onto the core command table.

Each handler acks at once (Slack allows 3 seconds; a scene takes longer), then runs the
core command and posts its reply into the channel with chat.postMessage.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.core.commands import dispatch
from bot.core.services import CoreServices
from bot.slack.posting import post_reply, run_core, slack_invocation

# Slack command -> core command name. /help is too generic a name to claim in a workspace.
SLASH_COMMANDS = {"/dialogue": "dialogue", "/similar": "similar", "/recommend": "recommend", "/style": "style",
                  "/room": "room", "/wr-help": "help"}

# What the writer sees (only they do) while the work runs.
ACK_TEXT = {"dialogue": "Writing the scene…", "similar": "Searching the library…",
            "style": "Reading the script…"}


def register(app: AsyncApp, services: CoreServices) -> None:
    for slash, name in SLASH_COMMANDS.items():
        app.command(slash)(_command_handler(services, slash, name))


def _command_handler(services: CoreServices, slash: str, name: str):
    async def handle_command(ack, command, client, respond) -> None:
        text = (command.get("text") or "").strip()
        ack_text = ACK_TEXT.get(name) if text else None
        if ack_text:
            await ack(text=ack_text)
        else:
            await ack()
        invocation = slack_invocation(
            team_id=command.get("team_id"), channel_id=command["channel_id"], user_id=command["user_id"],
            text=text, user_name=command.get("user_name"), channel_name=command.get("channel_name"),
            delivery_id=command.get("trigger_id"),
        )
        reply = await run_core(dispatch(services, name, invocation), title=slash)
        await post_reply(client, reply, channel=command["channel_id"], respond=respond)

    handle_command.__name__ = f"handle_{name}_command"
    return handle_command

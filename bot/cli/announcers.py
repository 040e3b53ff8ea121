"""Where training runs are announced: the chat notifiers built from settings.

    notifiers = chat_notifiers(settings)       # handed to run_training / run_forever
    announce(settings, announcement)           # one announcement, as the trainer makes it

The entry point wires them because only it may know every chat adapter: training depends
on the `Notifier` interface alone (training.announce).
"""

from __future__ import annotations

import logging

from config.settings import Settings
from training.announce import Notifier, RunAnnouncement
from training.announce import announce as announce_to

log = logging.getLogger(__name__)


def chat_notifiers(settings: Settings) -> list[Notifier]:
    """One notifier per platform with an announce channel and a bot token; the others are skipped."""
    notifiers: list[Notifier] = []
    t = settings.training
    if t.announce_slack_channel and settings.slack.bot_token is not None:
        from bot.slack.announcer import SlackAnnouncer

        notifiers.append(SlackAnnouncer(api_url=settings.slack.api_url, channel=t.announce_slack_channel,
                                        token=settings.slack.bot_token.get_secret_value()))
    else:
        log.info("not announcing training runs on slack: no announce channel or no bot token set")
    if t.announce_discord_channel and settings.discord.bot_token is not None:
        from bot.discord.announcer import DiscordAnnouncer

        notifiers.append(DiscordAnnouncer(api_url=settings.discord.api_url, channel=t.announce_discord_channel,
                                          token=settings.discord.bot_token.get_secret_value()))
    else:
        log.info("not announcing training runs on discord: no announce channel or no bot token set")
    return notifiers


def announce(settings: Settings, announcement: RunAnnouncement) -> list[str]:
    """Post one announcement where settings say, mentioning the room admins on a failure."""
    return announce_to(chat_notifiers(settings), announcement, admins=settings.room.admins)

"""Training announcements on Slack: the `Notifier` that training's `announce` posts through."""

from __future__ import annotations

import logging
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# A post must not hold the trainer up for long when Slack hangs.
TIMEOUT_S = 30


class SlackAnnouncer:
    """Posts to one channel with the bot token (Web API only: no Bolt app, no listeners)."""

    platform = "slack"

    def __init__(self, *, api_url: str, token: str, channel: str) -> None:
        # slack_sdk joins base_url and the method name, so the base must end with a slash.
        self._client = WebClient(token=token, base_url=api_url if api_url.endswith("/") else api_url + "/",
                                 timeout=TIMEOUT_S)
        self.channel = channel

    def post(self, text: str, png: Path | None) -> None:
        if png is None:
            self._client.chat_postMessage(channel=self.channel, text=text)
            return
        try:
            self._client.files_upload_v2(channel=self.channel, file=str(png), filename=png.name, title=png.name,
                                         initial_comment=text)
        except SlackApiError as exc:  # e.g. no files:write scope: the news matters more than the plot
            log.warning("could not upload the report plot to Slack channel %s (%s); posting the text alone",
                        self.channel, exc.response.get("error"))
            self._client.chat_postMessage(channel=self.channel, text=text)

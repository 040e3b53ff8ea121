"""build_app refuses to start without the secrets it needs, naming them."""

from __future__ import annotations

import pytest

from bot.slack.app import SlackConfigError, build_app
from config.settings import load_settings


def test_build_app_names_the_missing_secret(tmp_path):
    settings = load_settings(general={"home": tmp_path}, slack={"bot_token": None, "signing_secret": None})
    with pytest.raises(SlackConfigError, match="SLACK_BOT_TOKEN"):
        build_app(settings, services=None)
    settings = load_settings(general={"home": tmp_path}, slack={"bot_token": "xoxb-1-test", "signing_secret": None})
    with pytest.raises(SlackConfigError, match="SLACK_SIGNING_SECRET"):
        build_app(settings, services=None)
    assert build_app(settings, services=None, socket_mode=True) is not None

"""Training-run announcements, through the real slack_sdk and discord.py against the loopback
Slack Web API and Discord emulators (both served from one event loop in a thread, since
`announce` is sync and runs its own loop for Discord)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli.announcers import announce, chat_notifiers
from bot.discord.announcer import DISCORD_MAX_CHARS
from bot.slack.run import bound_port
from config.settings import Settings, load_settings
from emulators.discord import DiscordEmulator
from emulators.slack import LoopThread, SlackWebApi
from tests.bot.discord.conftest import restore_discord_endpoints  # noqa: F401 - autouse: announce sets Route.BASE
from tests.bot.slack.conftest import BOT_TOKEN as SLACK_TOKEN
from tests.bot.slack.conftest import _serve
from tests.training.conftest import tiny_base_model, tiny_training_env  # noqa: F401 - fixtures of the run tests
from training.announce import RunAnnouncement

pytestmark = pytest.mark.timeout(60)

DISCORD_TOKEN = "emulator.bot.token"
SLACK_CHANNEL = "C0ANNOUNCE"
SLACK_ADMINS = ["U0ADMIN1", "W0ADMIN2"]
DISCORD_ADMINS = ["600000000000000042", "600000000000000043"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # enough to notice a truncated upload

PROMOTED = RunAnnouncement(kind="promoted", run_id=7, version="r0007-ab12cd",
                           summary="Run 7 (412 examples): validation perplexity 9.81 -> 9.12 (-7.0%).")
FAILED = RunAnnouncement(kind="failed", run_id=7, summary="Run 7 stopped: CUDA out of memory at step 40.")


@dataclass
class Chat:
    slack: SlackWebApi
    discord: DiscordEmulator
    loop: LoopThread

    @property
    def discord_channel(self) -> str:
        return str(self.discord.channel_id)

    def settings(self, *, slack_channel: str = SLACK_CHANNEL, discord_channel: str | None = None,
                 slack_api_url: str | None = None, **sections: dict) -> Settings:
        """Both platforms configured (tokens, emulator URLs, announce channels) unless overridden."""
        return load_settings(
            slack={"bot_token": SLACK_TOKEN, "api_url": slack_api_url or f"{self.slack.base_url}/api/"},
            discord={"bot_token": DISCORD_TOKEN, "api_url": self.discord.api_url},
            training={"announce_slack_channel": slack_channel,
                      "announce_discord_channel": self.discord_channel if discord_channel is None else discord_channel},
            **sections,
        )


@pytest.fixture
def chat() -> Iterator[Chat]:
    loop = LoopThread()
    slack = SlackWebApi(bot_token=SLACK_TOKEN)
    slack_runner = loop.run(_serve(slack.web_app()))
    slack.base_url = f"http://127.0.0.1:{bound_port(slack_runner)}"
    discord_api = loop.run(DiscordEmulator().start())
    yield Chat(slack, discord_api, loop)
    assert discord_api.unhandled == []  # every route discord.py called is one the emulator knows
    loop.run(discord_api.stop())
    loop.run(slack_runner.cleanup())
    loop.close()


@pytest.fixture
def report_png(tmp_path: Path) -> Path:
    path = tmp_path / "report.png"
    path.write_bytes(PNG)
    return path


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def slack_texts(chat: Chat) -> list[str]:
    """What reached the Slack channel: message texts and upload comments alike."""
    return ([call.args["text"] for call in chat.slack.messages()]
            + [call.args["initial_comment"] for call in chat.slack.of("files.completeUploadExternal")])


def test_promotion_posts_the_headline_and_the_plot_on_both_platforms(chat: Chat, report_png: Path) -> None:
    announcement = RunAnnouncement(**{**PROMOTED.__dict__, "report_png": report_png})

    posted = announce(chat.settings(), announcement)

    assert posted == [f"slack:{SLACK_CHANNEL}", f"discord:{chat.discord_channel}"]
    [upload] = chat.slack.of("files.completeUploadExternal")
    assert upload.args["channel_id"] == SLACK_CHANNEL
    assert upload.args["initial_comment"].startswith("Adapter r0007-ab12cd promoted\n")
    assert PROMOTED.summary in upload.args["initial_comment"]
    [file_id] = [entry["id"] for entry in upload.args["files"]]
    assert chat.slack.uploads[file_id] == PNG
    assert chat.slack.messages() == []  # the plot and the text arrive as one post

    [post] = chat.discord.channel_posts
    assert post.channel_id == chat.discord.channel_id
    assert post.payload["content"].startswith("Adapter r0007-ab12cd promoted\n")
    assert PROMOTED.summary in post.payload["content"]
    assert post.files == {"report.png": PNG}


def test_without_a_plot_the_text_is_posted(chat: Chat) -> None:
    kept = RunAnnouncement(kind="kept", run_id=7, summary="Candidate r0007-ab12cd did not beat r0006-ffee00.")

    assert announce(chat.settings(), kept) == [f"slack:{SLACK_CHANNEL}", f"discord:{chat.discord_channel}"]

    [message] = chat.slack.messages(SLACK_CHANNEL)
    assert message.args["text"].startswith("Training run 7: candidate not promoted; the serving adapter stays\n")
    [post] = chat.discord.channel_posts
    assert post.payload["content"].startswith("Training run 7: candidate not promoted; the serving adapter stays\n")
    assert post.files == {}


def test_a_failure_mentions_exactly_that_platforms_admins(chat: Chat) -> None:
    settings = chat.settings(room={"admins": [*SLACK_ADMINS, *DISCORD_ADMINS, "not-an-id"]})

    announce(settings, FAILED)

    [slack_text] = slack_texts(chat)
    assert slack_text.startswith("Training run 7 failed\n")
    assert "<@U0ADMIN1>" in slack_text and "<@W0ADMIN2>" in slack_text
    assert not any(admin in slack_text for admin in DISCORD_ADMINS)
    discord_text = chat.discord.channel_posts[0].payload["content"]
    assert discord_text.startswith("Training run 7 failed\n")
    assert "<@600000000000000042>" in discord_text and "<@600000000000000043>" in discord_text
    assert not any(admin in discord_text for admin in SLACK_ADMINS)
    assert "not-an-id" not in slack_text + discord_text


def test_a_promotion_mentions_nobody(chat: Chat) -> None:
    announce(chat.settings(room={"admins": [*SLACK_ADMINS, *DISCORD_ADMINS]}), PROMOTED)

    assert "<@" not in slack_texts(chat)[0]
    assert "<@" not in chat.discord.channel_posts[0].payload["content"]


def test_nothing_configured_posts_nothing(chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(slack={"api_url": f"{chat.slack.base_url}/api/"},
                             discord={"api_url": chat.discord.api_url})
    caplog.set_level(logging.INFO, logger="training.announce")

    assert announce(settings, FAILED) == []

    assert chat.slack.calls == [] and chat.discord.channel_posts == []
    skipped = [record for record in caplog.records if "not announcing" in record.getMessage()]
    assert [record.levelno for record in skipped] == [logging.INFO, logging.INFO]


def test_a_channel_without_a_token_is_skipped(chat: Chat) -> None:
    settings = chat.settings()
    settings.slack.bot_token = None

    assert announce(settings, PROMOTED) == [f"discord:{chat.discord_channel}"]
    assert chat.slack.calls == []


def test_a_slack_error_is_logged_without_the_token_and_discord_still_gets_it(
        chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    chat.slack.not_in_channel.add(SLACK_CHANNEL)

    posted = announce(chat.settings(), FAILED)

    assert posted == [f"discord:{chat.discord_channel}"]
    [warning] = warnings(caplog)
    assert "SlackApiError" in warning.getMessage() and "not_in_channel" in warning.getMessage()
    assert SLACK_CHANNEL in warning.getMessage()
    assert SLACK_TOKEN not in caplog.text and DISCORD_TOKEN not in caplog.text


def test_an_unreachable_slack_is_a_warning_not_an_error(chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    closed_port = chat.loop.run(_closed_port())
    settings = chat.settings(slack_api_url=f"http://127.0.0.1:{closed_port}/api/", discord_channel="")

    assert announce(settings, FAILED) == []

    assert any("slack" in record.getMessage() for record in warnings(caplog))
    assert SLACK_TOKEN not in caplog.text


def test_an_unknown_discord_channel_is_a_warning(chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    settings = chat.settings(slack_channel="", discord_channel="123456789")

    assert announce(settings, FAILED) == []

    [warning] = warnings(caplog)
    assert "NotFound" in warning.getMessage() and "123456789" in warning.getMessage()
    assert DISCORD_TOKEN not in caplog.text


def test_a_refused_plot_upload_still_posts_the_text_to_slack(chat: Chat, report_png: Path) -> None:
    chat.slack.refuse_uploads = True
    announcement = RunAnnouncement(**{**PROMOTED.__dict__, "report_png": report_png})

    assert f"slack:{SLACK_CHANNEL}" in announce(chat.settings(discord_channel=""), announcement)

    [message] = chat.slack.messages(SLACK_CHANNEL)
    assert message.args["text"].startswith("Adapter r0007-ab12cd promoted\n")


def test_a_long_summary_is_cut_to_discords_limit_and_keeps_the_mentions(chat: Chat) -> None:
    long_failure = RunAnnouncement(kind="failed", run_id=7, summary="Traceback line. " * 400)
    settings = chat.settings(slack_channel="", room={"admins": DISCORD_ADMINS})

    assert announce(settings, long_failure) == [f"discord:{chat.discord_channel}"]

    content = chat.discord.channel_posts[0].payload["content"]
    assert len(content) == DISCORD_MAX_CHARS
    assert content.startswith("Training run 7 failed\n") and "<@600000000000000042>" in content


def test_announce_works_from_inside_a_running_event_loop(chat: Chat) -> None:
    async def from_async_code() -> list[str]:
        return announce(chat.settings(slack_channel=""), FAILED)

    assert asyncio.run(from_async_code()) == [f"discord:{chat.discord_channel}"]
    assert len(chat.discord.channel_posts) == 1


def test_a_room_adapter_names_its_room(chat: Chat) -> None:
    announcement = RunAnnouncement(**{**PROMOTED.__dict__, "room": "T0WRITERS:C0ROOM"})

    announce(chat.settings(discord_channel=""), announcement)

    assert slack_texts(chat)[0].startswith("Adapter r0007-ab12cd promoted (room T0WRITERS:C0ROOM)\n")


def test_an_unknown_kind_is_refused_when_the_announcement_is_made() -> None:
    with pytest.raises(ValueError, match="kind"):
        RunAnnouncement(kind="succeeded", summary="")


async def _closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


@pytest.mark.usefixtures("tiny_training_env")
def test_a_training_run_announces_its_promotion_with_its_own_report_plot(chat: Chat) -> None:
    from tests.training.run_support import import_scenes
    from training.run import run_training

    import_scenes(12)
    settings = chat.settings()
    result = run_training(settings, trigger="test", progress=False, notifiers=chat_notifiers(settings))

    assert result.promoted
    [upload] = chat.slack.of("files.completeUploadExternal")
    assert upload.args["initial_comment"].startswith(f"Adapter {result.version} promoted\n")
    assert "validation perplexity" in upload.args["initial_comment"]
    [file_id] = [entry["id"] for entry in upload.args["files"]]
    assert chat.slack.uploads[file_id] == result.report_png.read_bytes()
    [post] = chat.discord.channel_posts
    assert post.files == {"report.png": result.report_png.read_bytes()}


@pytest.mark.usefixtures("tiny_training_env")
def test_a_failed_training_run_is_reported_to_the_admins(chat: Chat, monkeypatch) -> None:
    from tests.training.run_support import import_scenes
    from training.run import run_training

    import_scenes(12)
    monkeypatch.setenv("WRITERSROOM_TRAINING_TARGET_MODULES", '["no_such_proj"]')
    settings = chat.settings(room={"admins": SLACK_ADMINS})
    result = run_training(settings, trigger="test", progress=False, notifiers=chat_notifiers(settings))

    assert result.status == "failed"
    [text] = slack_texts(chat)
    assert text.startswith(f"Training run {result.run_id} failed\n") and "<@U0ADMIN1>" in text
    assert "no_such_proj" in text

"""Settings: TOML defaults, environment overrides, secrets only from the environment,
one clear message for a bad value."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from config.settings import REPO_ROOT, SettingsError, load_settings
from config.settings_doc import settings_table


def test_defaults_come_from_the_toml_file():
    settings = load_settings()
    assert settings.generation.temperature == 0.7
    assert settings.generation.repetition_penalty == 1.05
    assert settings.backend.host == "127.0.0.1"
    assert settings.slack.api_url == "https://slack.com/api/"


def test_environment_overrides_the_file(monkeypatch, isolated_home):
    monkeypatch.setenv("WRITERSROOM_GENERATION_TEMPERATURE", "0.3")
    monkeypatch.setenv("WRITERSROOM_DATABASE_URL", "postgresql+psycopg://wr:pw@db/wr")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api/")
    settings = load_settings()
    assert settings.generation.temperature == 0.3
    assert settings.database_url == "postgresql+psycopg://wr:pw@db/wr"
    assert settings.slack.api_url == "http://127.0.0.1:9999/api/"
    assert settings.index_dir == isolated_home / "index"


def test_everything_lives_under_home_by_default(isolated_home):
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{isolated_home / 'writersroom.db'}"
    assert settings.adapter_dir == isolated_home / "adapters"
    assert settings.backend_url == "http://127.0.0.1:8088/v1"


def test_a_bad_value_names_the_setting_and_the_allowed_values(monkeypatch):
    monkeypatch.setenv("WRITERSROOM_MODEL_DEVICE", "gpu")
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "WRITERSROOM_MODEL_DEVICE" in message and "'gpu'" in message
    assert "'auto', 'cpu' or 'cuda'" in message


def test_a_number_out_of_range_is_refused(monkeypatch):
    monkeypatch.setenv("WRITERSROOM_BACKEND_PORT", "70000")
    with pytest.raises(SettingsError, match="WRITERSROOM_BACKEND_PORT"):
        load_settings()


def test_secret_in_the_file_is_refused(tmp_path, monkeypatch):
    config = tmp_path / "room.toml"
    config.write_text('[slack]\nbot_token = "xoxb-123-real-looking"\n')
    monkeypatch.setenv("WRITERSROOM_CONFIG", str(config))
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN is a secret"):
        load_settings()


def test_placeholder_secret_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "your-discord-token")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "DISCORD_BOT_TOKEN" in str(error.value)
    assert "your-discord-token" not in str(error.value)


def test_config_show_masks_secrets(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1111-2222-abcdef")
    monkeypatch.setenv("WRITERSROOM_BACKEND_API_KEY", "k3y-9f8e7d")
    monkeypatch.setenv("WRITERSROOM_DATABASE_URL", "postgresql+psycopg://wr:hunter2@db/wr")
    result = subprocess.run([sys.executable, "-m", "bot.cli.main", "config", "show"], capture_output=True, text=True,
                            cwd=REPO_ROOT, check=True)
    shown = json.loads(result.stdout)
    assert shown["slack"]["bot_token"] == "********"
    assert shown["backend"]["api_key"] == "********"
    assert "hunter2" not in result.stdout and "abcdef" not in result.stdout and "9f8e7d" not in result.stdout
    assert shown["derived"]["database_url"] == "postgresql+psycopg://wr:********@db/wr"


def test_cli_stops_with_one_message_on_a_bad_value(monkeypatch):
    monkeypatch.setenv("WRITERSROOM_LOG_LEVEL", "LOUD")
    result = subprocess.run([sys.executable, "-m", "bot.cli.main", "config", "show"], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "WRITERSROOM_LOG_LEVEL" in result.stderr and "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in result.stderr


def test_readme_settings_table_is_current():
    readme = (REPO_ROOT / "README.md").read_text()
    assert settings_table() in readme, "regenerate with `writersroom config table` and paste into README.md"


def test_the_settings_file_is_read_once_for_all_sections(tmp_path, monkeypatch):
    import config.settings as settings_module

    config = tmp_path / "room.toml"
    config.write_text("[generation]\ntemperature = 0.5\n[room]\nquorum = 2\n")
    monkeypatch.setenv("WRITERSROOM_CONFIG", str(config))
    reads = []
    real = settings_module.read_config_document
    monkeypatch.setattr(settings_module, "read_config_document", lambda: reads.append(1) or real())
    loaded = load_settings()
    assert loaded.generation.temperature == 0.5 and loaded.room.quorum == 2
    assert len(reads) == 1  # ten sections, one read


def test_a_service_loads_only_its_sections_and_ignores_the_others(tmp_path, monkeypatch):
    from config.settings import SERVICE_SECTIONS

    config = tmp_path / "bad-bot-sections.toml"
    config.write_text("[room]\nquorum = 0\n[backend]\nport = 9099\n")  # a broken bot setting
    monkeypatch.setenv("WRITERSROOM_CONFIG", str(config))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-real-looking-token-1")
    with pytest.raises(SettingsError, match="quorum"):
        load_settings()  # the bot refuses to start
    backend = load_settings(sections=SERVICE_SECTIONS["backend"])  # the backend does not care
    assert backend.backend.port == 9099
    with pytest.raises(AttributeError, match=r"\[slack\] was not loaded"):
        backend.slack  # nor does it hold the bot's secrets
    assert "slack" not in backend.as_masked_dict()

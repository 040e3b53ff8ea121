"""Button custom ids, the persistent view, the slash-command text and the client's wiring."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.core.replies import Action, ActionKind, Reply, Section, SectionKind
from bot.discord.client import (
    MissingTokenError,
    bot_token,
    build_bot,
    configure_gateway,
    configure_rest,
)
from bot.discord.cog import dialogue_text
from bot.discord.views import FeedbackButton, custom_id, parse_custom_id, scene_view
from config.settings import load_settings


def _scene_reply(generation_id: int = 42) -> Reply:
    return Reply(title="t", sections=(Section(SectionKind.SCREENPLAY, "INT. X"),), generation_id=generation_id,
                 actions=tuple(Action(kind, kind.value.title(), str(generation_id)) for kind in ActionKind))


@pytest.mark.parametrize("kind", list(ActionKind))
def test_custom_id_round_trip(kind: ActionKind) -> None:
    value = custom_id(kind, 42)
    assert value == f"wr:{kind.value}:42"
    assert parse_custom_id(value) == (kind, 42)


def test_custom_id_fits_discords_100_characters() -> None:
    assert len(custom_id(ActionKind.REGENERATE, 2**63 - 1)) <= 100


@pytest.mark.parametrize("value", ["", "wr:approve:", "wr:approve:x", "wr:delete:1", "approve:1", "wr:approve:1:2",
                                   "xwr:approve:1", "wr:APPROVE:1", "wr:approve:-1"])
def test_foreign_custom_ids_are_not_ours(value: str) -> None:
    assert parse_custom_id(value) is None
    assert FeedbackButton.__discord_ui_compiled_template__.fullmatch(value) is None


def test_scene_view_is_persistent_with_four_buttons() -> None:
    view = scene_view(_scene_reply(7))
    assert view is not None and view.timeout is None and view.is_persistent()
    rows = view.to_components()
    buttons = [component for row in rows for component in row["components"]]
    assert [b["custom_id"] for b in buttons] == ["wr:approve:7", "wr:reject:7", "wr:regenerate:7", "wr:edit:7"]
    assert [b["label"] for b in buttons] == ["Approve", "Reject", "Regenerate", "Edit"]
    assert buttons[0]["style"] == discord.ButtonStyle.success.value
    assert buttons[1]["style"] == discord.ButtonStyle.danger.value


def test_replies_without_a_generation_get_no_view() -> None:
    assert scene_view(Reply(title="help", sections=(Section(SectionKind.TEXT, "…"),))) is None


def test_dynamic_item_rebuilds_from_a_custom_id() -> None:
    match = FeedbackButton.__discord_ui_compiled_template__.fullmatch("wr:reject:123")
    template_item = discord.ui.Button(label="Reject", custom_id="wr:reject:123")
    item = asyncio.run(FeedbackButton.from_custom_id(None, template_item, match))  # type: ignore[arg-type]
    assert (item.kind, item.generation_id, item.custom_id, item.item.label) == \
        (ActionKind.REJECT, 123, "wr:reject:123", "Reject")


def test_dialogue_text_is_what_the_core_parses() -> None:
    from screenplay.prompting import parse_dialogue_request

    text = dialogue_text(" a heist goes wrong ", "Ann, Bo", "farce")
    request = parse_dialogue_request(text)
    assert (request.situation, request.characters, request.tone) == ("a heist goes wrong", ("ANN", "BO"), "farce")
    assert dialogue_text("a heist", None, "  ") == "a heist"


def test_bot_asks_for_no_privileged_intents(tmp_path) -> None:
    settings = load_settings(general={"home": tmp_path})
    bot = build_bot(settings, services=object())  # type: ignore[arg-type]
    assert not (bot.intents.message_content or bot.intents.members or bot.intents.presences)
    assert bot.services is not None and bot.discord_settings is settings.discord


def test_endpoints_are_configurable() -> None:
    configure_rest("https://discord.example.gov/api/v10/")
    assert Route("GET", "/users/@me").url == "https://discord.example.gov/api/v10/users/@me"
    configure_gateway("wss://gateway.example.gov")
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.example.gov"


def test_missing_token_is_explained(tmp_path) -> None:
    with pytest.raises(MissingTokenError, match="DISCORD_BOT_TOKEN"):
        bot_token(load_settings(general={"home": tmp_path}))

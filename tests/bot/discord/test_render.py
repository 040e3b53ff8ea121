"""Reply -> embeds and files, within Discord's limits."""

from __future__ import annotations

import discord

from bot.core.replies import (
    Action,
    ActionKind,
    Citation,
    Reply,
    Section,
    SectionKind,
    error_reply,
)
from bot.discord.render import (
    CITATIONS_FIELD,
    COLOUR_ERROR,
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    MAX_FIELDS,
    SCENE_FILENAME,
    STATE_FIELD,
    fountain_block,
    render_content,
    render_reply,
    scene_from_embed,
    shorten_lines,
    state_from_embed,
    with_state,
)

SCENE = "EXT. ALLEY - NIGHT\n\nMAYA\nYou sold us out, Cole.\n\nCOLE\n(backing away)\nI kept you alive."


def _citation(n: int, *, long: bool = False) -> Citation:
    text = "x" * 2000 if long else f"excerpt {n}"
    return Citation(script_id=f"script-{n}", title=f"Title {n}" + ("T" * 400 if long else ""), scene_index=n,
                    heading=f"INT. ROOM {n} - DAY", excerpt=text, score=0.5)


def _scene_reply(text: str = SCENE, citations: tuple[Citation, ...] = (), title: str = "A rainy alley") -> Reply:
    return Reply(title=title, sections=(Section(SectionKind.SCREENPLAY, text),), citations=citations,
                 actions=tuple(Action(kind, kind.value.title(), "42") for kind in ActionKind), generation_id=42,
                 metadata={"model": "fake-model", "latency_ms": 1500})


def _file_text(file: discord.File) -> str:
    file.fp.seek(0)
    return file.fp.read().decode()


def test_short_scene_is_a_fountain_block_without_attachment() -> None:
    rendered = render_reply(_scene_reply())
    embed = rendered.embeds[0]
    assert embed.description == f"```fountain\n{SCENE}\n```"
    assert rendered.files == []
    assert embed.title == "A rainy alley"
    assert "generation 42" in embed.footer.text and "fake-model" in embed.footer.text
    assert embed.colour != COLOUR_ERROR
    assert rendered.content is None and "files" not in rendered.send_kwargs()


def test_long_scene_is_shortened_in_the_embed_and_attached_in_full() -> None:
    long_scene = "\n\n".join(f"MAYA\nLine {n}: the rain will not stop tonight." for n in range(300))
    rendered = render_reply(_scene_reply(long_scene))
    embed = rendered.embeds[0]
    assert len(long_scene) > DESCRIPTION_LIMIT
    assert len(embed.description) <= DESCRIPTION_LIMIT
    assert embed.description.startswith("```fountain\n") and embed.description.endswith("\n```")
    assert len(embed) <= EMBED_TOTAL_LIMIT
    [file] = rendered.files
    assert file.filename == SCENE_FILENAME
    assert _file_text(file) == long_scene
    assert SCENE_FILENAME in embed.footer.text
    shown = scene_from_embed(embed)
    assert long_scene.startswith(shown) and shown.endswith("tonight.")  # cut at a line boundary
    assert rendered.send_kwargs()["files"] == [file]


def test_scene_exactly_at_the_limit_is_not_attached() -> None:
    room = DESCRIPTION_LIMIT - len("```fountain\n") - len("\n```")
    block, shortened = fountain_block("a" * room)
    assert not shortened and len(block) == DESCRIPTION_LIMIT
    block, shortened = fountain_block("a" * (room + 1))
    assert shortened and len(block) <= DESCRIPTION_LIMIT


def test_backticks_in_the_scene_cannot_close_the_block() -> None:
    text = "INT. SERVER ROOM\n\nHACKER\n```rm -rf```"
    embed = render_reply(_scene_reply(text)).embeds[0]
    assert embed.description.count("```") == 2
    assert scene_from_embed(embed) == text


def test_citations_become_a_drawn_on_field() -> None:
    embed = render_reply(_scene_reply(citations=(_citation(1), _citation(2)))).embeds[0]
    [field] = embed.fields
    assert field.name == CITATIONS_FIELD
    assert "Title 1 — INT. ROOM 1 - DAY" in field.value and "Title 2" in field.value


def test_many_long_citations_stay_within_field_and_embed_limits() -> None:
    long_scene = "MAYA\n" + "word " * 2000
    reply = _scene_reply(long_scene, citations=tuple(_citation(n, long=True) for n in range(40)), title="T" * 400)
    embed = render_reply(reply).embeds[0]
    assert len(embed.title) <= 256
    assert all(len(field.value) <= FIELD_VALUE_LIMIT for field in embed.fields)
    assert len(embed) <= EMBED_TOTAL_LIMIT


def test_similar_results_are_one_field_each_within_limits() -> None:
    reply = Reply(title="Closest to: rain", sections=(Section(SectionKind.TEXT, "1. …"),),
                  citations=tuple(_citation(n, long=n % 2 == 0) for n in range(30)))
    embed = render_reply(reply).embeds[0]
    assert 0 < len(embed.fields) <= MAX_FIELDS
    assert embed.fields[1].name == "2. Title 1 — INT. ROOM 1 - DAY"  # ranks, no raw scores
    assert embed.fields[1].value == "excerpt 1"
    assert all(len(f.name) <= FIELD_NAME_LIMIT and len(f.value) <= FIELD_VALUE_LIMIT for f in embed.fields)
    assert len(embed) <= EMBED_TOTAL_LIMIT
    assert render_reply(reply).files == []


def test_errors_are_red() -> None:
    embed = render_reply(error_reply("/dialogue", "The generation backend is not reachable.")).embeds[0]
    assert embed.colour == COLOUR_ERROR
    assert "The generation backend is not reachable." in embed.description


def test_content_is_clipped_to_2000() -> None:
    assert len(render_content("x" * 5000)) == CONTENT_LIMIT
    assert render_content("short") == "short"


def test_shorten_lines_cuts_inside_a_line_only_when_it_must() -> None:
    assert shorten_lines("aaaa\nbbbb", 6) == "aaaa"
    assert shorten_lines("a" * 20, 5) == "aaaaa"


def test_the_state_leads_the_scene_embed_and_replaces_the_one_shown_before() -> None:
    embed = render_reply(_scene_reply(citations=(_citation(1),))).embeds[0]
    once = with_state([embed], "Approved 1 of 2 — by <@1>")
    twice = with_state(once, "Approved by <@1>, <@2>")
    assert [field.name for field in twice[0].fields] == [STATE_FIELD, CITATIONS_FIELD]
    assert state_from_embed(twice[0]) == "Approved by <@1>, <@2>"
    assert twice[0].description == embed.description and scene_from_embed(twice[0]) == SCENE
    assert state_from_embed(embed) is None  # the message it came from is untouched


def test_the_state_fits_an_embed_already_at_the_limits() -> None:
    reply = _scene_reply(text="MAYA\n" + "word " * 1500, citations=tuple(_citation(n, long=True) for n in range(30)))
    shown = with_state(render_reply(reply).embeds, "Rejected by " + ", ".join(f"<@{n}>" for n in range(400)))[0]
    assert len(shown) <= EMBED_TOTAL_LIMIT and len(shown.fields) <= MAX_FIELDS
    assert shown.fields[0].name == STATE_FIELD and len(shown.fields[0].value) <= FIELD_VALUE_LIMIT

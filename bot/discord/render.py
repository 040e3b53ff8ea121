"""Render a core Reply as a Discord message: content, embeds and attached files.

A scene goes into an embed description as a ```fountain block. Discord caps an embed
description at 4096 characters, a field at 1024, a whole embed at 6000 and message
content at 2000; a scene that does not fit is attached in full as `scene.fountain` and
the embed shows its opening lines.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field

import discord

from bot.core.replies import Citation, Reply, SectionKind

CONTENT_LIMIT = 2000
DESCRIPTION_LIMIT = 4096
TITLE_LIMIT = 256
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
MAX_FIELDS = 25

SCENE_FILENAME = "scene.fountain"
CITATIONS_FIELD = "Drawn on"
STATE_FIELD = "Room"  # where the scene stands with the room: approvals, rejections, edits
FENCE_OPEN = "```fountain\n"
FENCE_CLOSE = "\n```"
TRUNCATION_NOTE = "\n…"

COLOUR_SCENE = discord.Colour.blurple()
COLOUR_TEXT = discord.Colour.dark_teal()
COLOUR_ERROR = discord.Colour.red()


@dataclass
class Rendered:
    """What `followup.send` takes: `content`, `embeds` and `files`."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    files: list[discord.File] = field(default_factory=list)

    def send_kwargs(self) -> dict:
        kwargs: dict = {"embeds": self.embeds}
        if self.content:
            kwargs["content"] = self.content
        if self.files:
            kwargs["files"] = self.files
        return kwargs


def render_reply(reply: Reply) -> Rendered:
    """A core Reply as one embed (plus `scene.fountain` when the scene is too long to show)."""
    files: list[discord.File] = []
    parts: list[str] = []
    notes: list[str] = []
    for section in reply.sections:
        if section.kind is SectionKind.SCREENPLAY:
            block, shortened = fountain_block(section.body, limit=DESCRIPTION_LIMIT - _used(parts))
            parts.append(block)
            if shortened:
                files.append(scene_file(section.body))
                notes.append(f"Scene shortened here; the full text is attached as {SCENE_FILENAME}.")
        elif section.kind is SectionKind.ERROR:
            parts.append(f"⚠️ {section.body}")
        else:
            parts.append(section.body)
    embed = discord.Embed(
        title=_clip(reply.title, TITLE_LIMIT) or None,
        description=_clip("\n\n".join(parts), DESCRIPTION_LIMIT) or None,
        colour=_colour(reply),
    )
    _add_citations(embed, reply)
    footer = " · ".join([*notes, *_footer_bits(reply)])
    if footer:
        embed.set_footer(text=_clip(footer, FOOTER_LIMIT))
    _fit_total(embed)
    return Rendered(content=None, embeds=[embed], files=files)


def fountain_block(text: str, *, limit: int = DESCRIPTION_LIMIT) -> tuple[str, bool]:
    """The scene in a ```fountain block of at most `limit` characters; True when it was shortened."""
    safe = escape_fences(text)
    room = limit - len(FENCE_OPEN) - len(FENCE_CLOSE)
    if len(safe) <= room:
        return f"{FENCE_OPEN}{safe}{FENCE_CLOSE}", False
    return f"{FENCE_OPEN}{shorten_lines(safe, room - len(TRUNCATION_NOTE))}{TRUNCATION_NOTE}{FENCE_CLOSE}", True


def escape_fences(text: str) -> str:
    """A ``` inside the scene would close the code block early; a zero-width space breaks it."""
    return text.replace("```", "`\u200b``")


def shorten_lines(text: str, limit: int) -> str:
    """Whole lines up to `limit` characters (cutting inside a line only when the first one is too long)."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit + 1)
    return text[:cut].rstrip() if cut > 0 else text[:limit]


def scene_file(text: str) -> discord.File:
    return discord.File(io.BytesIO(text.encode("utf-8")), filename=SCENE_FILENAME)


def render_content(text: str) -> str:
    """Plain message content within Discord's 2000-character limit."""
    return _clip(text, CONTENT_LIMIT)


def _add_citations(embed: discord.Embed, reply: Reply) -> None:
    if not reply.citations:
        return
    if reply.generation_id is not None:  # a scene: one field naming its exemplars
        lines = [f"• {c.title} — {c.heading}" for c in reply.citations]
        embed.add_field(name=CITATIONS_FIELD, value=_clip("\n".join(lines), FIELD_VALUE_LIMIT), inline=False)
        return
    for rank, citation in enumerate(reply.citations[:MAX_FIELDS], 1):  # /similar: one field per result
        embed.add_field(name=_clip(_result_name(rank, citation), FIELD_NAME_LIMIT),
                        value=_clip(_result_value(citation), FIELD_VALUE_LIMIT), inline=False)


def _result_name(rank: int, citation: Citation) -> str:
    # Ranks only: a fused hybrid score (~0.03) means nothing to a writer.
    return f"{rank}. {citation.title} — {citation.heading}"


def _result_value(citation: Citation) -> str:
    excerpt = " ".join(citation.excerpt.split())
    return excerpt or f"scene {citation.scene_index + 1} of `{citation.script_id}`"


def _footer_bits(reply: Reply) -> list[str]:
    bits = []
    if reply.generation_id is not None:
        bits.append(f"generation {reply.generation_id}")
    model = reply.metadata.get("model")
    if model:
        bits.append(f"model {model}")
    latency = reply.metadata.get("latency_ms")
    if isinstance(latency, int):
        bits.append(f"{latency / 1000:.1f} s")
    return bits


def _colour(reply: Reply) -> discord.Colour:
    if reply.is_error or any(s.kind is SectionKind.ERROR for s in reply.sections):
        return COLOUR_ERROR
    return COLOUR_SCENE if reply.generation_id is not None else COLOUR_TEXT


def _fit_total(embed: discord.Embed) -> None:
    """Drop trailing fields (then shorten the description) until the embed fits 6000 characters."""
    while len(embed) > EMBED_TOTAL_LIMIT and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
    excess = len(embed) - EMBED_TOTAL_LIMIT
    if excess > 0 and embed.description:
        embed.description = _clip(embed.description, len(embed.description) - excess)


def _used(parts: list[str]) -> int:
    return sum(len(part) + 2 for part in parts)


def _clip(text: str, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def with_state(embeds: list[discord.Embed], state: str) -> list[discord.Embed]:
    """The scene message's embeds with the room's state as the first one's leading field
    (replacing the state shown before); the others are kept as they are."""
    if not embeds:
        return [discord.Embed(description=_clip(state, DESCRIPTION_LIMIT), colour=COLOUR_SCENE)]
    first = discord.Embed.from_dict(copy.deepcopy(embeds[0].to_dict()))  # Embed.copy shares its fields
    fields = [(f.name, f.value, f.inline) for f in first.fields if f.name != STATE_FIELD]
    first.clear_fields()
    first.add_field(name=STATE_FIELD, value=_clip(state, FIELD_VALUE_LIMIT), inline=False)
    for name, value, inline in fields[: MAX_FIELDS - 1]:
        first.add_field(name=name, value=value, inline=inline)
    _fit_total(first)
    return [first, *embeds[1:]]


def state_from_embed(embed: discord.Embed) -> str | None:
    """The state `with_state` showed on a scene, or None before any feedback."""
    return next((field.value for field in embed.fields if field.name == STATE_FIELD), None)


def scene_from_embed(embed: discord.Embed) -> str | None:
    """The scene text shown in a rendered embed (what Edit prefills), or None when there is none."""
    description = embed.description or ""
    start = description.find(FENCE_OPEN)
    end = description.rfind(FENCE_CLOSE)
    if start < 0 or end <= start:
        return None
    body = description[start + len(FENCE_OPEN):end]
    if body.endswith(TRUNCATION_NOTE):
        body = body[: -len(TRUNCATION_NOTE)]
    return body.replace("`\u200b``", "```")

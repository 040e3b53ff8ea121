"""Approve / Reject / Regenerate / Edit buttons that keep working after a restart.

Each button's custom_id carries what it does and the generation it acts on
(`wr:approve:42`). The buttons are `discord.ui.DynamicItem`s: the client registers the
class once (`client.add_dynamic_items(FeedbackButton)`), and discord.py rebuilds the
button from any custom_id that matches the template, whichever process sent the
message. All state lives in the store, keyed by that generation id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from bot.core import feedback
from bot.core.replies import ActionKind, Reply
from bot.discord.invocation import invocation_from, safely
from bot.discord.render import SCENE_FILENAME, render_reply, scene_from_embed

if TYPE_CHECKING:
    from bot.core.services import CoreServices

CUSTOM_ID_PREFIX = "wr"
CUSTOM_ID_TEMPLATE = r"wr:(?P<action>approve|reject|regenerate|edit):(?P<generation_id>[0-9]{1,19})"
_PATTERN = re.compile(CUSTOM_ID_TEMPLATE)
EDIT_MODAL_PREFIX = "wr:edit-modal:"
EDIT_MAX_CHARS = 4000  # Discord's limit for a text input

_STYLES = {
    ActionKind.APPROVE: discord.ButtonStyle.success,
    ActionKind.REJECT: discord.ButtonStyle.danger,
    ActionKind.REGENERATE: discord.ButtonStyle.secondary,
    ActionKind.EDIT: discord.ButtonStyle.primary,
}
_LABELS = {ActionKind.APPROVE: "Approve", ActionKind.REJECT: "Reject", ActionKind.REGENERATE: "Regenerate",
           ActionKind.EDIT: "Edit"}


def custom_id(kind: ActionKind, generation_id: int) -> str:
    """`wr:<action>:<generation id>`: all a click needs, so it survives a restart."""
    return f"{CUSTOM_ID_PREFIX}:{kind.value}:{int(generation_id)}"


def parse_custom_id(value: str) -> tuple[ActionKind, int] | None:
    """(kind, generation id) from a button's custom_id, or None when it is not one of ours."""
    match = _PATTERN.fullmatch(value or "")
    if match is None:
        return None
    return ActionKind(match["action"]), int(match["generation_id"])


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_TEMPLATE):
    """One feedback button; rebuilt by discord.py from its custom_id on every click."""

    def __init__(self, kind: ActionKind, generation_id: int, *, label: str | None = None) -> None:
        super().__init__(discord.ui.Button(label=label or _LABELS[kind], style=_STYLES[kind],
                                           custom_id=custom_id(kind, generation_id)))
        self.kind = kind
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> "FeedbackButton":
        return cls(ActionKind(match["action"]), int(match["generation_id"]), label=getattr(item, "label", None))

    async def callback(self, interaction: discord.Interaction) -> None:
        services = _services(interaction)
        if self.kind is ActionKind.EDIT:
            await self._open_editor(interaction, services)
            return
        await interaction.response.defer(thinking=True)
        reply = await safely(feedback.record(services, invocation_from(interaction, ""),
                                              generation_id=self.generation_id, kind=self.kind))
        await send_reply(interaction, reply)

    async def _open_editor(self, interaction: discord.Interaction, services: "CoreServices") -> None:
        # A modal must be the first answer to the click, so Edit cannot defer first.
        scene = _scene_text(interaction)
        if _scene_attached(interaction) or (scene is not None and len(scene) > EDIT_MAX_CHARS):
            # A text input holds 4000 characters; prefilling part of the scene would record a cut version.
            await interaction.response.send_message(
                f"This scene is longer than the {EDIT_MAX_CHARS:,} characters Discord lets a form hold, so it "
                "cannot be edited here. Approve it, or Regenerate for a shorter one.", ephemeral=True)
            return
        await interaction.response.send_modal(EditModal(services, self.generation_id, scene, opened_by=interaction.id))


class EditModal(discord.ui.Modal):
    """The scene in a paragraph box; submitting records an edited approval."""

    def __init__(self, services: "CoreServices", generation_id: int, scene: str | None, *, opened_by: int) -> None:
        # discord.py files open modals by custom_id alone: one per click, so two writers editing the
        # same scene do not share (and close) one form. Open forms live in memory: a restart drops them.
        super().__init__(title=f"Edit scene {generation_id}"[:45], timeout=30 * 60,
                         custom_id=f"{EDIT_MODAL_PREFIX}{generation_id}:{opened_by}")
        self.services = services
        self.generation_id = generation_id
        self.scene = discord.ui.TextInput(label="Scene (Fountain)", style=discord.TextStyle.paragraph,
                                          default=(scene or "")[:EDIT_MAX_CHARS] or None,
                                          max_length=EDIT_MAX_CHARS, required=True)
        self.add_item(self.scene)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        reply = await safely(feedback.record(self.services, invocation_from(interaction, ""),
                                              generation_id=self.generation_id, kind=ActionKind.EDIT,
                                              edited_text=self.scene.value))
        await send_reply(interaction, reply)


def scene_view(reply: Reply) -> discord.ui.View | None:
    """The persistent button row for a scene reply; None for replies without actions."""
    if reply.generation_id is None or not reply.actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in reply.actions:
        generation_id = int(action.value) if action.value.isdigit() else reply.generation_id
        view.add_item(FeedbackButton(action.kind, generation_id, label=action.label))
    return view


async def send_reply(interaction: discord.Interaction, reply: Reply) -> None:
    """The rendered reply as the followup of a deferred interaction, with buttons for a scene."""
    rendered = render_reply(reply)
    kwargs = rendered.send_kwargs()
    view = scene_view(reply)
    if view is not None:
        kwargs["view"] = view
    await interaction.followup.send(**kwargs)


def _services(interaction: discord.Interaction) -> "CoreServices":
    return interaction.client.services  # type: ignore[attr-defined]  # set by build_bot


def _scene_attached(interaction: discord.Interaction) -> bool:
    message = interaction.message
    return message is not None and any(a.filename == SCENE_FILENAME for a in message.attachments)


def _scene_text(interaction: discord.Interaction) -> str | None:
    message = interaction.message
    if message is None:
        return None
    for embed in message.embeds:
        text = scene_from_embed(embed)
        if text:
            return text
    return None

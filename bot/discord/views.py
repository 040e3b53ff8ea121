"""Approve / Reject / Regenerate / Edit buttons that keep working after a restart.

Each button's custom_id carries what it does and the generation it acts on
(`wr:approve:42`). The buttons are `discord.ui.DynamicItem`s: the client registers the
class once (`client.add_dynamic_items(FeedbackButton)`), and discord.py rebuilds the
button from any custom_id that matches the template, whichever process sent the
message. All state lives in the store, keyed by that generation id.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import discord

from bot.core import feedback
from bot.core.approval import current_state
from bot.core.replies import ActionKind, Reply
from bot.discord.invocation import in_dm, invocation_from
from bot.discord.render import (
    SCENE_FILENAME,
    render_reply,
    scene_from_embed,
    with_state,
)

if TYPE_CHECKING:
    from bot.core.services import CoreServices

log = logging.getLogger(__name__)

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
        if self.kind is ActionKind.REGENERATE:  # anyone may ask for another take
            await interaction.response.defer(thinking=True)
            reply = await feedback.record(services, invocation_from(interaction, ""),
                                          generation_id=self.generation_id, kind=self.kind)
            await send_reply(interaction, reply)
            return
        refusal = feedback_refusal(interaction, services)
        if refusal is not None:  # told to the clicker alone; the room's message stays as it is
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        if self.kind is ActionKind.EDIT:
            await self._open_editor(interaction, services)
            return
        # The answer is the scene's own message, updated with the room's state (type 6).
        await interaction.response.defer()
        reply = await feedback.record(services, invocation_from(interaction, ""),
                                      generation_id=self.generation_id, kind=self.kind)
        await show_outcome(interaction, services, reply, self.generation_id)

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
        # Opened from the scene's button, so the submission carries that message: update it (type 6).
        await interaction.response.defer(thinking=interaction.message is None, ephemeral=True)
        reply = await feedback.record(self.services, invocation_from(interaction, ""),
                                      generation_id=self.generation_id, kind=ActionKind.EDIT,
                                      edited_text=self.scene.value)
        await show_outcome(interaction, self.services, reply, self.generation_id)


def feedback_refusal(interaction: discord.Interaction, services: "CoreServices") -> str | None:
    """Why this person may not approve, reject or edit here; None when they may."""
    if in_dm(interaction) and not services.settings.discord.dm_approvals:
        return ("Approvals are off in direct messages. Post the scene in the room's channel to have it "
                "approved there (or ask an admin about the `discord.dm_approvals` setting).")
    if not services.policy.may_approve(invocation_from(interaction, "")):
        return (f"{feedback.NOT_AN_APPROVER} You can still Regenerate, "
                "or ask an admin to add you (`[room] approvers` or `approver_roles`).")
    return None


async def show_outcome(interaction: discord.Interaction, services: "CoreServices", reply: Reply,
                       generation_id: int) -> None:
    """Feedback recorded: the scene's message shows where it stands with the room (its buttons
    give way once the quorum is met) and the person who clicked is told privately."""
    message = interaction.message
    if message is not None and not reply.is_error and "approval" in reply.metadata:
        # Read fresh under a per-message lock: two approvers clicking at once both end up shown.
        async with _scene_lock(message.id):
            state = await current_state(services, generation_id)
            # view=None takes the buttons away; leaving it out keeps them
            buttons = {"view": None} if state.approved else {}
            try:
                await interaction.edit_original_response(embeds=with_state(message.embeds, state.describe()), **buttons)
            except discord.HTTPException as exc:  # deleted meanwhile, or the token expired: the store has it
                log.warning("could not show the approval state of generation %s: %s", generation_id, exc)
    kwargs = render_reply(reply).send_kwargs()
    await interaction.followup.send(**kwargs, ephemeral=True)


def scene_view(reply: Reply, *, approvals: bool = True) -> discord.ui.View | None:
    """The persistent button row for a scene reply (Regenerate alone where ``approvals`` are
    off); None for replies without actions."""
    if reply.generation_id is None or not reply.actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in reply.actions:
        if not approvals and action.kind is not ActionKind.REGENERATE:
            continue
        generation_id = int(action.value) if action.value.isdigit() else reply.generation_id
        view.add_item(FeedbackButton(action.kind, generation_id, label=action.label))
    return view if view.children else None


async def send_reply(interaction: discord.Interaction, reply: Reply) -> None:
    """The rendered reply as the followup of a deferred interaction, with buttons for a scene."""
    rendered = render_reply(reply)
    kwargs = rendered.send_kwargs()
    view = scene_view(reply, approvals=not in_dm(interaction) or _services(interaction).settings.discord.dm_approvals)
    if view is not None:
        kwargs["view"] = view
    await interaction.followup.send(**kwargs)


def _services(interaction: discord.Interaction) -> "CoreServices":
    return interaction.client.services  # type: ignore[attr-defined]  # set by build_bot


_LOCKS: "OrderedDict[int, asyncio.Lock]" = OrderedDict()
_MAX_LOCKS = 1024


def _scene_lock(message_id: int) -> asyncio.Lock:
    """One lock per scene message, the oldest idle ones forgotten past _MAX_LOCKS."""
    lock = _LOCKS.pop(message_id, None) or asyncio.Lock()
    _LOCKS[message_id] = lock
    while len(_LOCKS) > _MAX_LOCKS:
        oldest, held = next(iter(_LOCKS.items()))
        if held.locked():
            break
        del _LOCKS[oldest]
    return lock


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

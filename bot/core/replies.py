"""Platform-neutral shapes: what a command receives and what it answers.

Slack renders a Reply as Block Kit, Discord as embeds and views, the local room as
text. Nothing here knows about any platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Awaitable, Callable


@dataclass(frozen=True)
class Invocation:
    """One command typed by one person in one room."""

    platform: str  # "local", "slack", "discord"
    room_id: str  # workspace/guild + channel, as the platform names it
    user_id: str  # the platform's user id
    text: str
    user_name: str | None = None
    room_name: str | None = None
    thread_id: str | None = None
    delivery_id: str | None = None  # the platform's id for this delivery, to drop duplicates
    roles: tuple[str, ...] = ()  # Slack user groups / Discord roles the user holds, as the adapter knows them
    # How the adapter tells this writer something before the reply (a scene waiting in the
    # backend's queue): the local room prints a line, Slack posts an ephemeral message, Discord
    # edits the "thinking" message. None: nobody to tell (the CLI, a button's regeneration).
    notify: Callable[[str], Awaitable[None]] | None = field(default=None, compare=False, repr=False)


class SectionKind(str, Enum):
    SCREENPLAY = "screenplay"  # Fountain text, shown monospaced
    TEXT = "text"  # prose for people
    ERROR = "error"


@dataclass(frozen=True)
class Section:
    kind: SectionKind
    body: str


@dataclass(frozen=True)
class Citation:
    """A scene from the library that a reply drew on or found."""

    script_id: str
    title: str
    scene_index: int
    heading: str
    excerpt: str
    score: float | None = None


class ActionKind(str, Enum):
    APPROVE = "approve"
    REJECT = "reject"
    REGENERATE = "regenerate"
    EDIT = "edit"


@dataclass(frozen=True)
class Action:
    """A button: the generation id travels in `value` so it works after a restart."""

    kind: ActionKind
    label: str
    value: str


@dataclass(frozen=True)
class Reply:
    title: str
    sections: tuple[Section, ...] = ()
    citations: tuple[Citation, ...] = ()
    actions: tuple[Action, ...] = ()
    generation_id: int | None = None
    is_error: bool = False
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All sections joined, for platforms (and tests) that want plain text."""
        return "\n\n".join(section.body for section in self.sections)


def user_mention(user_id: str) -> str:
    """A person as `<@id>`: Slack and Discord both render this form as a mention."""
    return f"<@{user_id}>"


def channel_mention(channel_id: str) -> str:
    """A channel as `<#id>`, the form Slack and Discord both render as a link."""
    return f"<#{channel_id}>"


def error_reply(title: str, message: str) -> Reply:
    return Reply(title=title, sections=(Section(SectionKind.ERROR, message),), is_error=True)

"""Render a core Reply as terminal text."""

from __future__ import annotations

from bot.core.replies import Reply, SectionKind


def render_text(reply: Reply) -> str:
    out = [f"== {reply.title} =="]
    for section in reply.sections:
        if section.kind is SectionKind.ERROR:
            out.append(f"! {section.body}")
        elif section.kind is SectionKind.SCREENPLAY:
            out.append("\n".join(f"  {line}" if line else "" for line in section.body.splitlines()))
        else:
            out.append(section.body)
    if reply.generation_id is not None and reply.citations:
        out.append("Drawn on: " + "; ".join(f"{c.title} — {c.heading}" for c in reply.citations))
    elif reply.citations:  # /similar: show what each found scene reads like
        out.extend(f"  {rank}. {' '.join(c.excerpt.split())[:160]}" for rank, c in enumerate(reply.citations, 1))
    if reply.actions:
        kinds = " ".join(f"/{action.kind.value}" for action in reply.actions)
        out.append(f"[generation {reply.generation_id}] {kinds}")
    return "\n".join(out)

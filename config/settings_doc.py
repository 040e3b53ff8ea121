"""The README's Setting | Default | Meaning table, generated from the settings classes
so the two cannot drift (a test compares them)."""

from __future__ import annotations

from pydantic_core import PydanticUndefined

from config.settings import SECTIONS


def _default(field) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`".replace("'", "")
    if field.default is PydanticUndefined or field.default is None:
        return "(unset)"
    if field.default == "":
        return "(empty)"
    return f"`{field.default}`"


def settings_table() -> str:
    rows = ["| Setting (environment) | TOML key | Default | Meaning |", "|---|---|---|---|"]
    for cls in SECTIONS.values():
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            env = (prefix + name).upper()
            key = f"[{cls.toml_table}] {name}" if cls.toml_table else name
            if name in cls.secret_fields:
                key = "— (environment only)"
            rows.append(f"| `{env}` | {key} | {_default(field)} | {field.description or ''} |")
    return "\n".join(rows)

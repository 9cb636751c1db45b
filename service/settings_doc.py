"""The README's settings table, generated from :class:`~service.settings.Settings` (so it cannot go
stale: a unit test compares the two). ``python -m service.settings_doc`` prints it."""

from __future__ import annotations

from service.cli import ENV_ONLY_SETTINGS
from service.settings import Settings

#: Defaults whose value depends on the machine or is too long for a table cell.
_SHOWN_DEFAULTS = {"models": "embedded MiniLM + sentiment + reranker", "home": "`~/.cache/bertserve`"}


def _flag(name: str) -> str:
    if name in ENV_ONLY_SETTINGS:
        return "(none: environment only)"
    if name == "models":
        return "`--model (repeat)`"
    return f"`--{name.replace('_', '-')}`"


def _default(name: str) -> str:
    if name in _SHOWN_DEFAULTS:
        return _SHOWN_DEFAULTS[name]
    return f"`{Settings.model_fields[name].get_default(call_default_factory=True)}`"


def settings_table() -> str:
    """One Markdown row per setting: name, environment variable, flag, default, description."""
    lines = [
        "| Setting | Environment | Flag | Default | What it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        lines.append(
            f"| `{name}` | `BERTSERVE_{name.upper()}` | {_flag(name)} | {_default(name)} | {description} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())

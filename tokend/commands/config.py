"""``tokend config show|path|init``: see and start the settings file.

``init`` writes a file in which every setting is present but commented out, set
to its default, with a line on what it does: uncommenting a line is the whole
editing job. It is generated from the settings model so it never lists a key the
program does not accept. ``show`` prints the effective settings (file and
``TOKEND_*`` environment merged) in the same TOML form.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import BaseModel

from tokend.context import Context
from tokend.errors import TokendError

__all__ = ["default_file_text", "register", "run", "to_toml"]

_HELP: dict[str, str] = {
    "accounts": 'display names for agent folders, e.g. "~/.claude-work/projects" = "work"',
    "enabled": "read this agent's logs at all",
    "plan": "none | pro | max5 | max20 | plus | team | custom | free: what 100 % means\n"
    "#   without an official figure (Claude presets are community estimates;\n"
    "#   Gemini free/pro are its documented daily request quotas)",
    "five_hour_tokens": "your own 100 % for the 5-hour window, in tokens of every type",
    "weekly_tokens": "your own 100 % for the weekly window, in tokens of every type",
    "daily_requests": "your own daily request quota (Gemini: resets at midnight Pacific)",
    "anchor": "'rolling' (last 7 days) or the weekly reset, e.g. 'mon 09:00'",
    "timezone": "'local' or an IANA zone such as 'Europe/Berlin', for the weekly anchor",
    "thresholds": "percents that fire a notification, once per window",
    "five_hour_thresholds": "thresholds for the 5-hour window only (default: thresholds)",
    "weekly_thresholds": "thresholds for the weekly window only (default: thresholds)",
    "reset": "off | after-warning | always: notify when a window resets",
    "predictive": "warn when the projection runs out before the reset",
    "quiet_hours": "'' (off) or a range such as '22:00-07:00'",
    "pin": "show this window in the tray instead of the most used one, e.g. 'claude:5h'",
}

_SECTION_HELP: dict[str, str] = {
    "claude": "Claude Code",
    "codex": "Codex CLI",
    "gemini": "Gemini CLI",
    "weekly": "where the weekly window starts when no official reset time is known",
    "alerts": "desktop notifications",
    "tray": "the tray icon",
    "checkpoint": "session checkpoint files",
    "daemon": "the background daemon's timers",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="show the settings, where they live, or write a default file")
    actions = p.add_subparsers(dest="config_action", metavar="ACTION")
    show = actions.add_parser("show", help="print the effective settings (file + environment)")
    show.add_argument("--json", action="store_true", help="as JSON")
    show.set_defaults(func=run_show)
    path = actions.add_parser("path", help="print where the settings file is")
    path.set_defaults(func=run_path)
    init = actions.add_parser("init", help="write a commented default settings file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=run_init)
    p.set_defaults(func=run_show, json=False)


def run(args: argparse.Namespace, ctx: Context) -> int:
    return int(args.func(args, ctx))


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    if getattr(args, "json", False):
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
    else:
        where = ctx.paths.config_file
        state = "" if where.exists() else " (not created yet: defaults and environment only)"
        print(f"# effective settings; file: {where}{state}")
        print(to_toml(settings))
    return 0


def run_path(args: argparse.Namespace, ctx: Context) -> int:
    del args
    print(ctx.paths.config_file)
    return 0


def run_init(args: argparse.Namespace, ctx: Context) -> int:
    path = ctx.paths.config_file
    if path.exists() and not args.force:
        raise TokendError(
            f"{path} already exists; not overwriting it",
            hint="edit it, or run 'tokend config init --force' to replace it with the defaults",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(default_file_text(), encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}")
    return 0


def _value(value: Any) -> str | None:
    """A TOML literal, or ``None`` for a value TOML cannot hold (unset)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        items = [_value(v) for v in value]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    if isinstance(value, dict):
        pairs = [f"{json.dumps(str(k))} = {_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    return json.dumps(str(value))


def to_toml(settings: BaseModel, *, commented: bool = False) -> str:
    """Settings as TOML: top-level keys first, then one table per section.

    Unset values (``None``) appear as comments, since TOML has no null.
    """
    mark = "# " if commented else ""
    top: list[str] = []
    sections: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            lines = [""]
            if name in _SECTION_HELP:
                lines.append(f"# {_SECTION_HELP[name]}")
            lines.append(f"[{name}]")
            for key in type(value).model_fields:
                lines.extend(_line(key, getattr(value, key), mark, commented))
            sections.extend(lines)
        elif name == "accounts" and isinstance(value, dict):
            sections.extend(["", f"# {_HELP['accounts']}", "[accounts]"])
            for k, v in value.items():
                sections.append(f"{mark}{json.dumps(str(k))} = {json.dumps(str(v))}")
            if not value:
                sections.append('# "~/.claude-work/projects" = "work"')
        else:
            top.extend(_line(name, value, mark, commented))
    return "\n".join(top + sections).lstrip("\n") + "\n"


def _line(key: str, value: Any, mark: str, commented: bool) -> list[str]:
    out = []
    if commented and key in _HELP:
        out.append(f"# {key}: {_HELP[key]}")
    literal = _value(value)
    if literal is None:
        out.append(f"# {key} =   (not set)")
    else:
        out.append(f"{mark}{key} = {literal}")
    return out


def default_file_text() -> str:
    """The commented default settings file ``tokend config init`` writes."""
    from tokend.config import Settings

    head = (
        "# tokend settings. Every line below is commented out and shows the default:\n"
        "# uncomment a line to change it. TOKEND_* environment variables override this\n"
        "# file, nested keys with '__' (TOKEND_CLAUDE__PLAN=max5).\n\n"
    )
    return head + to_toml(Settings.model_construct(), commented=True)

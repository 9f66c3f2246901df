"""Hook tokend into Claude Code's statusLine and into shell prompts.

Claude Code runs one statusLine command (the settings file's ``statusLine``), and
that command is the only place Claude's official 5-hour and weekly percentages
appear locally. Installing sets it to ``tokend statusline``; a statusline the user
already had keeps running through ``--chain`` so nothing they saw disappears.

The settings file belongs to the user and to Claude Code, so the rules are strict:
a file that is not valid JSON is never touched (we would lose what we cannot read);
the file is copied aside before the first edit; installing twice changes nothing;
``--remove`` puts back exactly what was there - the original bytes when nothing else
changed since, otherwise the previous ``statusLine`` value in the current file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tokend.errors import TokendError

__all__ = [
    "SHELLS",
    "ClaudeResult",
    "claude_settings_path",
    "install_claude",
    "remove_claude",
    "shell_snippet",
    "statusline_command",
]

SHELLS = ("bash", "zsh", "fish")
_MARK = " statusline"


@dataclass(frozen=True)
class ClaudeResult:
    """What an install or removal did, for the command to report."""

    settings: Path
    changed: bool
    message: str
    backup: Path | None = None


def claude_settings_path(env: Mapping[str, str], home: Path) -> Path:
    """``$CLAUDE_CONFIG_DIR/settings.json`` (its first entry), else ``~/.claude/settings.json``."""
    configured = [p.strip() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
    if configured:
        first = configured[0]
        base = home / first[2:] if first.startswith("~/") else Path(first)
        return base / "settings.json"
    return home / ".claude" / "settings.json"


def statusline_command(executable: str | None = None) -> str:
    """The command Claude should run: this interpreter's ``tokend`` script (the fastest
    start; a version manager's shim on PATH, such as pyenv's, is a shell script that
    costs more than the statusline itself), else the one on PATH, else ``-m tokend``."""
    beside = Path(sys.executable).parent / "tokend"
    found = executable or (str(beside) if beside.is_file() else shutil.which("tokend"))
    if found:
        return f"{shlex.quote(found)} statusline"
    return f"{shlex.quote(sys.executable)} -m tokend statusline"


def _is_ours(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("command"), str)
        and "tokend" in value["command"]
        and _MARK in value["command"]
    )


def load_settings_file(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """A Claude settings file's bytes (``None`` if absent) and its object; refuses what
    it cannot read, so nothing is ever written over a file we did not understand."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise TokendError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise TokendError(
            f"{path} is not valid JSON ({exc}); refusing to edit it, nothing was changed",
            hint="fix the file (Claude Code reports the same error) and run this again",
        ) from exc
    if not isinstance(data, dict):
        raise TokendError(
            f"{path} does not hold a JSON object; refusing to edit it, nothing was changed",
            hint="Claude Code expects an object such as {\"statusLine\": ...}",
        )
    return raw, data


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(f".{path.name}.tokend.tmp")
    with open(tmp, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.chmod(mode)
    tmp.replace(path)


def _record_path(state_dir: Path) -> Path:
    return state_dir / "integrate-claude.json"


def _records(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(_record_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_records(state_dir: Path, records: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    _write(_record_path(state_dir), json.dumps(records, indent=2).encode())


def install_claude(
    settings: Path, state_dir: Path, command: str, now: datetime | None = None
) -> ClaudeResult:
    """Point Claude's statusLine at ``command``, chaining the user's own one.

    :raises TokendError: the file is not valid JSON (nothing is touched).
    """
    raw, data = load_settings_file(settings)
    current = data.get("statusLine")
    if _is_ours(current):
        return ClaudeResult(settings, False, f"already installed in {settings}")
    new: dict[str, Any] = {"type": "command", "command": command, "padding": 0}
    if isinstance(current, dict):
        new = {**current, "type": "command", "command": command}
        previous = current.get("command")
        if isinstance(previous, str) and previous.strip():
            new["command"] = f"{command} --chain {shlex.quote(previous)}"
    new.setdefault("refreshInterval", 30)  # reset countdowns move with no new message
    backup = None
    now = now or datetime.now(timezone.utc)
    if raw is not None:
        backup = settings.with_name(f"{settings.name}.tokend-backup-{now:%Y%m%dT%H%M%S}")
        backup.write_bytes(raw)
    out = dict(data)
    out["statusLine"] = new
    content = _dump(out)
    records = _records(state_dir)
    records[str(settings)] = {
        "had_file": raw is not None,
        "had_key": "statusLine" in data,
        "previous": current,
        "installed": new,
        "original": raw.decode("utf-8") if raw is not None else None,
        "written_sha256": hashlib.sha256(content).hexdigest(),
        "backup": str(backup) if backup else None,
    }
    _save_records(state_dir, records)
    _write(settings, content)
    chained = " (your previous statusline is chained)" if "--chain" in new["command"] else ""
    return ClaudeResult(settings, True, f"statusLine set in {settings}{chained}", backup)


def remove_claude(settings: Path, state_dir: Path) -> ClaudeResult:
    """Undo :func:`install_claude`: exactly the old bytes when nothing else changed.

    :raises TokendError: the file is not valid JSON, or its statusLine is no longer
        ours (the user changed it since: we leave their choice alone).
    """
    raw, data = load_settings_file(settings)
    current = data.get("statusLine")
    records = _records(state_dir)
    record = records.get(str(settings))
    if not isinstance(current, dict) or not _is_ours(current):
        records.pop(str(settings), None)
        _save_records(state_dir, records)
        return ClaudeResult(settings, False, f"tokend is not the statusLine in {settings}")
    if record is None:
        # Installed by hand or the record was lost: unwrap --chain if present.
        out = dict(data)
        previous = _chained(str(current.get("command", "")))
        if previous:
            out["statusLine"] = {**current, "command": previous}
        else:
            out.pop("statusLine")
        _write(settings, _dump(out))
        return ClaudeResult(settings, True, f"statusLine removed from {settings}")
    if raw is not None and hashlib.sha256(raw).hexdigest() == record.get("written_sha256"):
        original = record.get("original")
        if record.get("had_file") and isinstance(original, str):
            _write(settings, original.encode("utf-8"))
        else:
            settings.unlink()
    else:
        out = dict(data)
        if record.get("had_key"):
            out["statusLine"] = record.get("previous")
        else:
            out.pop("statusLine", None)
        _write(settings, _dump(out))
    records.pop(str(settings), None)
    _save_records(state_dir, records)
    return ClaudeResult(settings, True, f"statusLine restored in {settings}")


def _chained(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if "--chain" in words:
        index = words.index("--chain")
        if index + 1 < len(words):
            return words[index + 1]
    return None


def shell_snippet(shell: str, command: str = "tokend statusline") -> str:
    """A prompt snippet for ``bash``, ``zsh`` or ``fish``.

    :raises TokendError: for another shell.
    """
    if shell == "bash":
        return (
            "# tokend: AI usage in the prompt. Add to ~/.bashrc\n"
            f"__tokend_ps1() {{ {command} 2>/dev/null; }}\n"
            "PS1='[$(__tokend_ps1)] '\"$PS1\"\n"
        )
    if shell == "zsh":
        return (
            "# tokend: AI usage on the right of the prompt. Add to ~/.zshrc\n"
            "setopt PROMPT_SUBST\n"
            f"RPROMPT='$({command} 2>/dev/null)'\n"
        )
    if shell == "fish":
        return (
            "# tokend: AI usage on the right of the prompt.\n"
            "# Save as ~/.config/fish/functions/fish_right_prompt.fish\n"
            "function fish_right_prompt\n"
            f"    {command} 2>/dev/null\n"
            "end\n"
        )
    raise TokendError(f"unknown shell {shell!r}", hint=f"one of {', '.join(SHELLS)}")

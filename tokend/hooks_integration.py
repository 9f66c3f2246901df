"""Install ``tokend hook`` as Claude Code's SessionStart / UserPromptSubmit hook.

The hook is how a new session hears about the checkpoint an earlier one left in
its folder (:mod:`tokend.commands.hook`). It lives in Claude's ``settings.json``,
which belongs to the user and to Claude Code, so the rules are those of the
statusLine install (:mod:`tokend.integrate`), kept separately so both can be
installed and removed in any order:

- a file that is not valid JSON (or whose ``hooks`` is not the documented shape)
  is never touched: we would lose what we cannot read;
- the file is copied aside before every edit;
- installing twice changes nothing (a handler that runs ``tokend … hook`` is ours);
- ``remove`` puts back exactly what was there: the original bytes when nothing
  else changed since, otherwise it takes out only our handlers (and the keys we
  created), leaving every other hook where it was.

Settings shape (``docs/hooks.md``): ``{"hooks": {"<Event>": [{"matcher"?: ...,
"hooks": [{"type": "command", "command": ..., "timeout"?: s}]}]}}``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tokend.errors import TokendError
from tokend.integrate import load_settings_file

__all__ = [
    "HOOK_EVENTS",
    "HOOK_TIMEOUT",
    "HooksResult",
    "claude_hooks",
    "hook_command",
    "install_hooks",
    "is_tokend_hook",
    "remove_hooks",
]

HOOK_EVENTS = ("SessionStart", "UserPromptSubmit")
HOOK_TIMEOUT = 10
"""Seconds Claude Code waits for the hook; it answers in well under one."""


@dataclass(frozen=True)
class HooksResult:
    """What an install or removal did (the same fields as ``integrate.ClaudeResult``)."""

    settings: Path
    changed: bool
    message: str
    backup: Path | None = None


def hook_command(executable: str | None = None) -> str:
    """The command Claude should run: the ``tokend`` script when it is on PATH,
    else this interpreter with ``-m tokend``."""
    found = executable or shutil.which("tokend")
    if found:
        return f"{shlex.quote(found)} hook"
    return f"{shlex.quote(sys.executable)} -m tokend hook"


def is_tokend_hook(handler: object) -> bool:
    """A handler that runs ``tokend hook`` (whatever path or interpreter it names)."""
    if not isinstance(handler, dict) or not isinstance(handler.get("command"), str):
        return False
    try:
        words = shlex.split(handler["command"])
    except ValueError:
        return False
    return len(words) >= 2 and words[-1] == "hook" and any("tokend" in w for w in words[:-1])


# -- file handling ---------------------------------------------------------------------


def _load(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """The settings file as :func:`tokend.integrate.load_settings_file` reads it, plus a
    check that its ``hooks`` have the shape we are about to edit."""
    raw, data = load_settings_file(path)
    hooks = data.get("hooks")
    if hooks is not None and not (
        isinstance(hooks, dict) and all(isinstance(v, list) for v in hooks.values())
    ):
        raise TokendError(
            f"the 'hooks' of {path} are not an object of lists; refusing to edit it, "
            "nothing was changed",
            hint='the documented shape is {"hooks": {"SessionStart": [{"hooks": [...]}]}}',
        )
    return raw, data


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write(path: Path, content: bytes) -> None:
    """Atomic replace that keeps the file's mode (0600 for a new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(f".{path.name}.tokend-hooks.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _backup(path: Path, raw: bytes | None, now: datetime) -> Path | None:
    """Copy the current bytes aside before an edit; never over an earlier backup."""
    if raw is None:
        return None
    stem = f"{path.name}.tokend-hooks-backup-{now.astimezone(timezone.utc):%Y%m%dT%H%M%S}"
    backup = path.with_name(stem)
    n = 1
    while backup.exists():
        backup = path.with_name(f"{stem}-{n}")
        n += 1
    backup.write_bytes(raw)
    backup.chmod(path.stat().st_mode & 0o777)
    return backup


def _record_path(state_dir: Path) -> Path:
    return state_dir / "integrate-claude-hooks.json"


def _records(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(_record_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_records(state_dir: Path, records: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    _write(_record_path(state_dir), json.dumps(records, indent=2).encode())


def _has_ours(groups: list[Any]) -> bool:
    return any(
        isinstance(g, dict) and isinstance(g.get("hooks"), list)
        and any(is_tokend_hook(h) for h in g["hooks"])
        for g in groups
    )


# -- install and remove --------------------------------------------------------------------


def install_hooks(
    settings: Path, state_dir: Path, command: str, now: datetime | None = None
) -> HooksResult:
    """Add ``command`` as a SessionStart and a UserPromptSubmit hook.

    :raises TokendError: the file is not valid JSON or not the documented shape
        (nothing is touched).
    """
    raw, data = _load(settings)
    hooks: dict[str, list[Any]] = data.get("hooks") or {}
    missing = [e for e in HOOK_EVENTS if not _has_ours(hooks.get(e, []))]
    if not missing:
        return HooksResult(settings, False, f"tokend hooks already installed in {settings}")
    now = now or datetime.now(timezone.utc)
    backup = _backup(settings, raw, now)
    out = copy.deepcopy(data)
    new_hooks: dict[str, list[Any]] = out.setdefault("hooks", {})
    group = {"hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT}]}
    for event in missing:
        new_hooks.setdefault(event, []).append(copy.deepcopy(group))
    content = _dump(out)
    records = _records(state_dir)
    previous = records.get(str(settings))
    if isinstance(previous, dict):
        # a re-install after a hand edit: what was there before tokend stays the original
        record = {**previous, "written_sha256": hashlib.sha256(content).hexdigest()}
        record["had_events"] = sorted(set(previous.get("had_events", [])))
    else:
        record = {
            "had_file": raw is not None,
            "original": raw.decode("utf-8") if raw is not None else None,
            "had_hooks_key": "hooks" in data,
            "had_events": sorted(e for e in HOOK_EVENTS if e in hooks),
            "written_sha256": hashlib.sha256(content).hexdigest(),
            "backup": str(backup) if backup else None,
        }
    records[str(settings)] = record
    _save_records(state_dir, records)
    _write(settings, content)
    return HooksResult(
        settings, True, f"tokend hook added for {', '.join(missing)} in {settings}", backup
    )


def remove_hooks(settings: Path, state_dir: Path, now: datetime | None = None) -> HooksResult:
    """Undo :func:`install_hooks`: the old bytes when nothing else changed, else only
    our handlers (and the keys we created) are taken out.

    :raises TokendError: the file is not valid JSON or not the documented shape.
    """
    raw, data = _load(settings)
    records = _records(state_dir)
    record = records.get(str(settings))
    record = record if isinstance(record, dict) else None
    hooks: dict[str, list[Any]] = data.get("hooks") or {}
    if not any(_has_ours(groups) for groups in hooks.values()):
        if record is not None:
            records.pop(str(settings), None)
            _save_records(state_dir, records)
        return HooksResult(settings, False, f"no tokend hook in {settings}")
    now = now or datetime.now(timezone.utc)
    backup = _backup(settings, raw, now)
    if (
        record is not None and raw is not None
        and hashlib.sha256(raw).hexdigest() == record.get("written_sha256")
    ):
        original = record.get("original")
        if record.get("had_file") and isinstance(original, str):
            _write(settings, original.encode("utf-8"))
        else:
            settings.unlink()
    else:
        _write(settings, _dump(_without_ours(data, record)))
    records.pop(str(settings), None)
    _save_records(state_dir, records)
    return HooksResult(settings, True, f"tokend hooks removed from {settings}", backup)


def _without_ours(data: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(data)
    hooks: dict[str, list[Any]] = out.get("hooks") or {}
    # without a record (installed by hand, or the record was lost) an event left empty
    # was ours alone
    had_events = set(record.get("had_events", [])) if record else set()
    for event in list(hooks):
        groups: list[Any] = []
        for group in hooks[event]:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                kept = [h for h in group["hooks"] if not is_tokend_hook(h)]
                if not kept and group["hooks"]:
                    continue  # a group that only ran tokend: ours, gone
                group = {**group, "hooks": kept}
            groups.append(group)
        if groups or event in had_events:
            hooks[event] = groups
        else:
            del hooks[event]
    if "hooks" in out and not hooks and not (record or {}).get("had_hooks_key"):
        del out["hooks"]
    return out


def claude_hooks(
    settings: Path,
    state_dir: Path,
    *,
    remove: bool = False,
    command: str | None = None,
    now: datetime | None = None,
) -> HooksResult:
    """What ``tokend integrate claude --hooks [--remove]`` does."""
    if remove:
        return remove_hooks(settings, state_dir, now)
    return install_hooks(settings, state_dir, command or hook_command(), now)

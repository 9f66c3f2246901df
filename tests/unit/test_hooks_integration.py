"""Installing ``tokend hook`` into Claude Code's settings.json, and taking it out again.

The file belongs to the user: backup before every edit, idempotent install,
``remove`` restores exactly what was there, and a file that is not valid JSON is
never touched.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tokend.errors import TokendError
from tokend.hooks_integration import (
    HOOK_EVENTS,
    claude_hooks,
    hook_command,
    install_hooks,
    is_tokend_hook,
    remove_hooks,
)

NOW = datetime(2026, 9, 15, 9, 45, tzinfo=timezone.utc)
COMMAND = "/opt/bin/tokend hook"
USER_SETTINGS = {
    "model": "opus",
    "statusLine": {"type": "command", "command": "~/bin/my-status.sh"},
    "hooks": {
        "SessionStart": [{"hooks": [{"type": "command", "command": "~/bin/greet.sh"}]}],
        "PostToolUse": [{"matcher": "Edit|Write",
                         "hooks": [{"type": "command", "command": "prettier --write"}]}],
    },
}


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return tmp_path / "claude" / "settings.json"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "tokend" / "state"


def write_user(settings: Path, data: dict[str, Any] | None = None) -> bytes:
    # the user's own formatting (4-space indent) must come back byte for byte
    raw = (json.dumps(data or USER_SETTINGS, indent=4) + "\n").encode()
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_bytes(raw)
    settings.chmod(0o640)
    return raw


def ours(data: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [h for g in data["hooks"].get(event, []) for h in g["hooks"] if is_tokend_hook(h)]


def test_install_adds_both_events_and_keeps_everything_else(settings: Path, state: Path) -> None:
    raw = write_user(settings)
    result = install_hooks(settings, state, COMMAND, NOW)
    assert result.changed
    data = json.loads(settings.read_text())
    for event in HOOK_EVENTS:
        assert ours(data, event) == [{"type": "command", "command": COMMAND, "timeout": 10}]
    assert data["hooks"]["SessionStart"][0] == USER_SETTINGS["hooks"]["SessionStart"][0]  # type: ignore[index]
    assert data["hooks"]["PostToolUse"] == USER_SETTINGS["hooks"]["PostToolUse"]  # type: ignore[index]
    assert data["statusLine"] == USER_SETTINGS["statusLine"]
    assert data["model"] == "opus"
    assert result.backup is not None and result.backup.read_bytes() == raw
    assert settings.stat().st_mode & 0o777 == 0o640


def test_install_twice_changes_nothing(settings: Path, state: Path) -> None:
    write_user(settings)
    install_hooks(settings, state, COMMAND, NOW)
    after_first = settings.read_bytes()
    backups = sorted(settings.parent.glob("*backup*"))
    again = install_hooks(settings, state, "python -m tokend hook", NOW)
    assert not again.changed and again.backup is None
    assert settings.read_bytes() == after_first
    assert sorted(settings.parent.glob("*backup*")) == backups


def test_remove_restores_the_exact_bytes(settings: Path, state: Path) -> None:
    raw = write_user(settings)
    install_hooks(settings, state, COMMAND, NOW)
    result = remove_hooks(settings, state, NOW)
    assert result.changed
    assert settings.read_bytes() == raw
    assert settings.stat().st_mode & 0o777 == 0o640
    assert not remove_hooks(settings, state, NOW).changed


def test_remove_after_other_edits_takes_out_only_ours(settings: Path, state: Path) -> None:
    write_user(settings)
    install_hooks(settings, state, COMMAND, NOW)
    data = json.loads(settings.read_text())
    data["theme"] = "dark"  # the user (or Claude Code) changed the file since
    data["hooks"]["UserPromptSubmit"].append(
        {"hooks": [{"type": "command", "command": "~/bin/log-prompt.sh"}]})
    settings.write_text(json.dumps(data, indent=2))
    remove_hooks(settings, state, NOW)
    expected = json.loads(json.dumps(USER_SETTINGS))
    expected["theme"] = "dark"
    expected["hooks"]["UserPromptSubmit"] = [
        {"hooks": [{"type": "command", "command": "~/bin/log-prompt.sh"}]}]
    assert json.loads(settings.read_text()) == expected


def test_keys_tokend_created_are_removed_again(settings: Path, state: Path) -> None:
    write_user(settings, {"model": "opus"})
    install_hooks(settings, state, COMMAND, NOW)
    data = json.loads(settings.read_text())
    data["model"] = "sonnet"
    settings.write_text(json.dumps(data))
    remove_hooks(settings, state, NOW)
    assert json.loads(settings.read_text()) == {"model": "sonnet"}


def test_no_settings_file_is_created_and_removed(settings: Path, state: Path) -> None:
    result = install_hooks(settings, state, COMMAND, NOW)
    assert result.changed and result.backup is None
    assert settings.stat().st_mode & 0o777 == 0o600
    remove_hooks(settings, state, NOW)
    assert not settings.exists()


def test_hand_installed_hook_is_removed_without_a_record(settings: Path, state: Path) -> None:
    data = json.loads(json.dumps(USER_SETTINGS))
    data["hooks"]["SessionStart"][0]["hooks"].append(
        {"type": "command", "command": "python3 -m tokend hook"})
    data["hooks"]["UserPromptSubmit"] = [{"hooks": [{"type": "command", "command": "tokend hook"}]}]
    write_user(settings, data)
    assert remove_hooks(settings, state, NOW).changed
    assert json.loads(settings.read_text()) == USER_SETTINGS


@pytest.mark.parametrize("content", [b"{ not json", b'{"a": 1,}', b"[1, 2]",
                                     b'{"hooks": ["SessionStart"]}',
                                     b'{"hooks": {"SessionStart": {"hooks": []}}}'])
def test_invalid_settings_are_never_touched(settings: Path, state: Path, content: bytes) -> None:
    settings.parent.mkdir(parents=True)
    settings.write_bytes(content)
    with pytest.raises(TokendError, match="refusing to edit"):
        install_hooks(settings, state, COMMAND, NOW)
    with pytest.raises(TokendError, match="refusing to edit"):
        remove_hooks(settings, state, NOW)
    assert settings.read_bytes() == content
    assert list(settings.parent.iterdir()) == [settings]


def test_backups_never_overwrite_each_other(settings: Path, state: Path) -> None:
    write_user(settings)
    first = install_hooks(settings, state, COMMAND, NOW)
    second = remove_hooks(settings, state, NOW)  # same second
    assert first.backup is not None and second.backup is not None
    assert first.backup != second.backup
    assert first.backup.exists() and second.backup.exists()


@pytest.mark.parametrize(("command", "mine"), [
    ("tokend hook", True),
    ("/home/u/.local/bin/tokend hook", True),
    ("'/usr/bin/python3' -m tokend hook", True),
    ("tokend statusline", False),
    ("~/bin/other hook", False),
    ("tokend hook --something", False),
])
def test_recognises_its_own_handler(command: str, mine: bool) -> None:
    assert is_tokend_hook({"type": "command", "command": command}) is mine


def test_default_command_runs_this_tokend() -> None:
    assert hook_command("/opt/x/tokend") == "/opt/x/tokend hook"
    assert is_tokend_hook({"command": hook_command()})


def test_coexists_with_the_statusline_install(settings: Path, state: Path) -> None:
    from tokend.integrate import install_claude, remove_claude

    write_user(settings)
    install_claude(settings, state, "tokend statusline", NOW)
    claude_hooks(settings, state, command=COMMAND, now=NOW)
    remove_claude(settings, state)
    data = json.loads(settings.read_text())
    assert data["statusLine"] == USER_SETTINGS["statusLine"]
    assert ours(data, "SessionStart") and ours(data, "UserPromptSubmit")
    claude_hooks(settings, state, remove=True, now=NOW)
    assert json.loads(settings.read_text()) == USER_SETTINGS

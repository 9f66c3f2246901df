"""``tokend integrate claude|shell`` through the real command, on a fake home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

USER_SETTINGS = """{
    "model": "opus",
    "statusLine": {"type": "command", "command": "~/bin/my line.sh", "padding": 1},
    "permissions": {"allow": ["Bash(ls:*)"]}
}
"""


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOKEND_", "XDG_", "CLAUDE_"))}
    env.update(HOME=str(tmp / "home"), TOKEND_HOME=str(tmp / "t"), PYTHONPATH=str(REPO),
               **extra)
    return env


def _tokend(tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokend", *args], env=_env(tmp, **extra),
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


def test_install_chains_backs_up_is_idempotent_and_removes_exactly(home: Path) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(USER_SETTINGS)
    done = _tokend(home, "integrate", "claude", "--command", "tokend statusline")
    assert done.returncode == 0, done.stderr
    data = json.loads(settings.read_text())
    assert data["statusLine"]["command"] == "tokend statusline --chain '~/bin/my line.sh'"
    assert data["statusLine"]["padding"] == 1  # the user's options are kept
    assert data["model"] == "opus" and data["permissions"] == {"allow": ["Bash(ls:*)"]}
    backups = list(settings.parent.glob("settings.json.tokend-backup-*"))
    assert len(backups) == 1 and backups[0].read_text() == USER_SETTINGS
    installed = settings.read_bytes()
    again = _tokend(home, "integrate", "claude", "--command", "tokend statusline")
    assert again.returncode == 0 and "already installed" in again.stdout
    assert settings.read_bytes() == installed
    removed = _tokend(home, "integrate", "claude", "--remove")
    assert removed.returncode == 0, removed.stderr
    assert settings.read_text() == USER_SETTINGS  # byte for byte


def test_remove_after_claude_changed_other_keys_restores_only_the_statusline(
    home: Path,
) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(USER_SETTINGS)
    assert _tokend(home, "integrate", "claude").returncode == 0
    data = json.loads(settings.read_text())
    data["model"] = "sonnet"  # Claude Code edits its file while we are installed
    settings.write_text(json.dumps(data))
    assert _tokend(home, "integrate", "claude", "--remove").returncode == 0
    after = json.loads(settings.read_text())
    assert after["model"] == "sonnet"
    assert after["statusLine"] == {"type": "command", "command": "~/bin/my line.sh",
                                   "padding": 1}


def test_claude_config_dir_and_a_missing_file(home: Path) -> None:
    config = home / "cfg"
    done = _tokend(home, "integrate", "claude", CLAUDE_CONFIG_DIR=str(config))
    assert done.returncode == 0, done.stderr
    settings = config / "settings.json"
    data = json.loads(settings.read_text())
    assert "statusline" in data["statusLine"]["command"]
    assert "--chain" not in data["statusLine"]["command"]
    assert not (home / "home" / ".claude").exists()
    assert _tokend(home, "integrate", "claude", "--remove",
                   CLAUDE_CONFIG_DIR=str(config)).returncode == 0
    assert not settings.exists()  # there was no file: there is none again


def test_invalid_json_is_refused_and_untouched(home: Path) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    broken = '{"model": "opus",, }\n'
    settings.write_text(broken)
    before = settings.stat().st_mtime_ns
    time.sleep(0.01)
    done = _tokend(home, "integrate", "claude")
    assert done.returncode == 1
    assert "not valid JSON" in done.stderr and "nothing was changed" in done.stderr
    assert settings.read_text() == broken and settings.stat().st_mtime_ns == before
    assert list(settings.parent.iterdir()) == [settings]  # no backup, no temp file
    assert _tokend(home, "integrate", "claude", "--remove").returncode == 1
    assert settings.read_text() == broken


def test_installed_command_runs_both_statuslines(home: Path) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"statusLine": {"type": "command", "command": "echo mine"}}))
    ours = f"{sys.executable} -m tokend statusline"
    assert _tokend(home, "integrate", "claude", "--command", ours).returncode == 0
    command = json.loads(settings.read_text())["statusLine"]["command"]
    payload = json.dumps({"session_id": "s", "model": {"display_name": "Opus"}})
    out = subprocess.run(command, shell=True, input=payload, env=_env(home),
                         capture_output=True, text=True, timeout=30, check=False).stdout
    assert out.strip() == "mine | Opus"


@pytest.mark.parametrize(("shell", "needle"), [
    ("bash", "PS1="), ("zsh", "RPROMPT="), ("fish", "function fish_right_prompt"),
])
def test_shell_snippets(home: Path, shell: str, needle: str) -> None:
    done = _tokend(home, "integrate", "shell", "--shell", shell)
    assert done.returncode == 0 and needle in done.stdout
    assert "tokend statusline" in done.stdout
    by_env = _tokend(home, "integrate", "shell", SHELL=f"/usr/bin/{shell}")
    assert by_env.stdout == done.stdout


def test_shell_unknown(home: Path) -> None:
    done = _tokend(home, "integrate", "shell", SHELL="/bin/tcsh")
    assert done.returncode == 1 and "--shell" in done.stderr


def test_a_settings_file_that_is_not_an_object_is_refused(home: Path) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text("[1, 2]\n")
    done = _tokend(home, "integrate", "claude")
    assert done.returncode == 1 and "does not hold a JSON object" in done.stderr
    assert settings.read_text() == "[1, 2]\n"


def test_hooks_install_is_idempotent_and_remove_restores_the_bytes(home: Path) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(USER_SETTINGS)
    done = _tokend(home, "integrate", "claude", "--hooks", "--command", "tokend hook")
    assert done.returncode == 0, done.stderr
    assert "SessionStart, UserPromptSubmit" in done.stdout
    assert "backup of the previous file:" in done.stdout
    data = json.loads(settings.read_text())
    for event in ("SessionStart", "UserPromptSubmit"):
        assert data["hooks"][event] == [
            {"hooks": [{"type": "command", "command": "tokend hook", "timeout": 10}]}
        ]
    assert data["statusLine"]["command"] == "~/bin/my line.sh"  # the statusLine untouched
    backup = Path(done.stdout.split("backup of the previous file: ")[1].strip())
    assert backup.read_text() == USER_SETTINGS
    installed = settings.read_bytes()
    again = _tokend(home, "integrate", "claude", "--hooks", "--command", "tokend hook")
    assert again.returncode == 0 and "already installed" in again.stdout
    assert settings.read_bytes() == installed
    removed = _tokend(home, "integrate", "claude", "--hooks", "--remove")
    assert removed.returncode == 0, removed.stderr
    assert "removed" in removed.stdout
    assert settings.read_text() == USER_SETTINGS  # byte for byte
    nothing = _tokend(home, "integrate", "claude", "--hooks", "--remove")
    assert nothing.returncode == 0 and "no tokend hook" in nothing.stdout
    assert settings.read_text() == USER_SETTINGS


def test_statusline_and_hooks_together_then_removed_leave_the_file_as_it_was(
    home: Path,
) -> None:
    settings = home / "home" / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(USER_SETTINGS)
    assert _tokend(home, "integrate", "claude", "--command", "tokend statusline").returncode == 0
    assert _tokend(home, "integrate", "claude", "--hooks").returncode == 0
    data = json.loads(settings.read_text())
    assert data["statusLine"]["command"].startswith("tokend statusline --chain")
    assert set(data["hooks"]) == {"SessionStart", "UserPromptSubmit"}
    assert data["hooks"]["SessionStart"][0]["hooks"][0]["command"].endswith(" hook")
    # the reverse order of the installs: each restores the bytes it found
    assert _tokend(home, "integrate", "claude", "--hooks", "--remove").returncode == 0
    assert "hooks" not in json.loads(settings.read_text())
    assert _tokend(home, "integrate", "claude", "--remove").returncode == 0
    assert settings.read_text() == USER_SETTINGS
    # the same order as the installs: the statusLine comes out by itself first
    assert _tokend(home, "integrate", "claude", "--command", "tokend statusline").returncode == 0
    assert _tokend(home, "integrate", "claude", "--hooks").returncode == 0
    assert _tokend(home, "integrate", "claude", "--remove").returncode == 0
    middle = json.loads(settings.read_text())
    assert middle["statusLine"]["command"] == "~/bin/my line.sh" and "hooks" in middle
    assert _tokend(home, "integrate", "claude", "--hooks", "--remove").returncode == 0
    assert json.loads(settings.read_text()) == json.loads(USER_SETTINGS)

"""``tokend checkpoint write | list | show`` through the CLI, over fake agent homes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_checkpoint_support import CLAUDE_SESSION, CODEX_SESSION, install
from tokend.checkpoint import MARKER
from tokend.cli import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "acme-api"
    folder.mkdir()
    install("claude", tmp_path / "claude", folder)
    install("codex", tmp_path / "codex", folder)
    for name, value in (("HOME", tmp_path / "home"), ("TOKEND_HOME", tmp_path / "tokend"),
                        ("CLAUDE_CONFIG_DIR", tmp_path / "claude"),
                        ("CODEX_HOME", tmp_path / "codex"),
                        ("GEMINI_CLI_HOME", tmp_path / "gemini")):
        monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(tmp_path)
    return folder


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_write_by_session_prefix_then_list_and_show(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "checkpoint", "write", "--session", CLAUDE_SESSION[:8])
    assert code == 0, err
    path = project / ".tokend" / "checkpoints" / f"{CLAUDE_SESSION}.md"
    assert out.strip() == str(path)
    assert "because it was asked for (tokend checkpoint write)." in path.read_text()

    code, out, _ = cli(capsys, "checkpoint", "list")
    assert code == 0 and str(path) in out and "claude" in out
    code, out, _ = cli(capsys, "checkpoint", "list", "--json", "--cwd", str(project))
    assert [r["session"] for r in json.loads(out)] == [CLAUDE_SESSION]
    code, out, _ = cli(capsys, "checkpoint", "show", "--cwd", str(project))
    assert code == 0 and out.startswith(MARKER) and "## Goal" in out


def test_write_defaults_to_the_latest_session_of_the_current_folder(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    code, out, err = cli(capsys, "checkpoint", "write")
    assert code == 0, err
    # the Claude session's last request (09:41:50) is later than Codex's (09:41:05)
    assert out.strip().endswith(f"{CLAUDE_SESSION}.md")
    code, out, _ = cli(capsys, "checkpoint", "show")
    assert code == 0 and f"session={CLAUDE_SESSION}" in out


def test_write_latest_and_unknown_session(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "checkpoint", "write", "--latest")
    assert code == 0 and CLAUDE_SESSION in out
    code, out, _ = cli(capsys, "checkpoint", "write", "--session", CODEX_SESSION)
    assert code == 0 and CODEX_SESSION in out
    code, _, err = cli(capsys, "checkpoint", "write", "--session", "nope")
    assert code == 1 and "no Claude Code or Codex session matches 'nope'" in err


def test_nothing_here_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "checkpoint", "list")
    assert code == 0 and "no checkpoints yet" in out
    code, _, err = cli(capsys, "checkpoint", "write")  # cwd has no session
    assert code == 1 and "--latest" in err
    code, _, err = cli(capsys, "checkpoint", "show", "--cwd", str(project))
    assert code == 1 and "no checkpoint found" in err


def test_refused_write_is_an_error_with_the_reason(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = project / ".tokend" / "checkpoints" / f"{CLAUDE_SESSION}.md"
    target.parent.mkdir(parents=True)
    target.write_text("my notes\n")
    code, _, err = cli(capsys, "checkpoint", "write", "--session", CLAUDE_SESSION)
    assert code == 1 and "was not written by tokend" in err
    assert target.read_text() == "my notes\n"

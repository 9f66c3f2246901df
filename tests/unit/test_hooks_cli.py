"""``tokend hook``: Claude Code's SessionStart / UserPromptSubmit hook, through the CLI.

Each test feeds the hook's stdin JSON (the shapes of Claude Code's hook contract)
to ``tokend.cli.main(["hook"])`` over a temp TOKEND_HOME and checks the answer:
the latest unread checkpoint of the folder is announced exactly once, never to
its own session, never on other events, and nothing ever fails the session.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tokend.checkpoint import MARKER
from tokend.cli import main
from tokend.store import Store

WRITTEN = datetime(2026, 9, 15, 9, 45, tzinfo=timezone.utc)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKEND_HOME", str(tmp_path / "tokend"))
    return tmp_path / "tokend"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "acme-api"
    folder.mkdir()
    return folder


def store_path(home: Path) -> Path:
    return home / "data" / "usage.sqlite3"


def checkpoint(home: Path, project: Path, session: str, written: datetime = WRITTEN) -> Path:
    """A checkpoint file of ``session`` in ``project``, recorded as the daemon does."""
    path = project / ".tokend" / "checkpoints" / f"{session}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{MARKER} v1 agent=claude session={session} -->\n# Checkpoint\n")
    with Store(store_path(home)) as store:
        store.record_checkpoint(
            session_id=session, agent="claude", path=str(path), cwd=str(project),
            reason="the claude 5-hour window is at 83 %",
            written_ms=int(written.timestamp() * 1000),
        )
    return path


def hook(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         payload: dict[str, Any] | str) -> tuple[int, str]:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    monkeypatch.setattr("sys.stdin", io.StringIO(raw))
    code = main(["hook"])
    out = capsys.readouterr()
    assert out.err == ""
    return code, out.out


def start(session: str, cwd: Path, source: str = "startup") -> dict[str, Any]:
    return {"session_id": session, "transcript_path": f"/x/{session}.jsonl", "cwd": str(cwd),
            "hook_event_name": "SessionStart", "source": source, "model": "claude-opus-4-6"}


def prompt(session: str, cwd: Path, text: str = "go on") -> dict[str, Any]:
    return {"session_id": session, "transcript_path": f"/x/{session}.jsonl", "cwd": str(cwd),
            "permission_mode": "default", "hook_event_name": "UserPromptSubmit", "prompt": text}


def context_of(out: str, event: str) -> str:
    answer = json.loads(out)
    assert answer["hookSpecificOutput"]["hookEventName"] == event
    assert set(answer) == {"hookSpecificOutput"}
    text = answer["hookSpecificOutput"]["additionalContext"]
    assert isinstance(text, str)
    return text


def test_new_session_is_told_once_and_never_again(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = checkpoint(home, project, "sess-a")
    code, out = hook(monkeypatch, capsys, start("sess-b", project))
    assert code == 0
    text = context_of(out, "SessionStart")
    assert str(path) in text and "5-hour window is at 83 %" in text
    for n in range(3):
        assert hook(monkeypatch, capsys, prompt("sess-b", project, f"p{n}")) == (0, "")
    # another new session in the folder: that checkpoint was read already
    assert hook(monkeypatch, capsys, start("sess-c", project)) == (0, "")


def test_first_prompt_announces_when_session_start_did_not(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint(home, project, "sess-a")
    code, out = hook(monkeypatch, capsys, prompt("sess-b", project))
    assert code == 0
    assert "sess-a.md" in context_of(out, "UserPromptSubmit")
    assert hook(monkeypatch, capsys, prompt("sess-b", project)) == (0, "")


def test_updated_checkpoint_is_news_for_a_new_session_only(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint(home, project, "sess-a")
    assert hook(monkeypatch, capsys, start("sess-b", project))[1]
    checkpoint(home, project, "sess-a", WRITTEN.replace(minute=50))  # rewritten in place
    assert hook(monkeypatch, capsys, prompt("sess-b", project)) == (0, "")
    assert "sess-a.md" in context_of(hook(monkeypatch, capsys, start("sess-d", project))[1],
                                     "SessionStart")


def test_session_is_not_told_about_its_own_checkpoint(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint(home, project, "sess-a")
    assert hook(monkeypatch, capsys, start("sess-a", project, source="resume")) == (0, "")
    assert hook(monkeypatch, capsys, prompt("sess-a", project)) == (0, "")
    # still unread for the next session
    assert hook(monkeypatch, capsys, start("sess-b", project))[1]


def test_latest_checkpoint_of_the_folder_wins(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    checkpoint(home, project, "sess-old", WRITTEN.replace(hour=8))
    checkpoint(home, project, "sess-new")
    other = tmp_path / "other"
    other.mkdir()
    checkpoint(home, other, "sess-elsewhere", WRITTEN.replace(minute=59))
    text = context_of(hook(monkeypatch, capsys, start("sess-b", project))[1], "SessionStart")
    assert "sess-new.md" in text
    assert hook(monkeypatch, capsys, start("sess-c", project)) == (0, "")  # old one is stale


def test_deleted_checkpoint_file_is_not_announced(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint(home, project, "sess-a").unlink()
    assert hook(monkeypatch, capsys, start("sess-b", project)) == (0, "")


@pytest.mark.parametrize("event", [
    {"hook_event_name": "Stop", "stop_hook_active": False, "last_assistant_message": "done"},
    {"hook_event_name": "PostToolUse", "tool_name": "Read", "tool_input": {}},
    {"hook_event_name": "SessionEnd", "reason": "prompt_input_exit"},
    {"hook_event_name": "StopFailure", "error": "rate_limit"},
])
def test_other_events_print_nothing_and_leave_the_checkpoint_unread(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], event: dict[str, Any],
) -> None:
    checkpoint(home, project, "sess-a")
    payload = {"session_id": "sess-b", "transcript_path": "/x", "cwd": str(project), **event}
    assert hook(monkeypatch, capsys, payload) == (0, "")
    assert hook(monkeypatch, capsys, start("sess-b", project))[1]


def test_no_store_yet_answers_nothing_and_creates_nothing(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert hook(monkeypatch, capsys, start("sess-b", project)) == (0, "")
    assert not store_path(home).exists()


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '{"hook_event_name": 5}'])
def test_bad_stdin_never_fails_the_session(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raw: str,
) -> None:
    assert hook(monkeypatch, capsys, raw) == (0, "")


def test_broken_store_is_logged_and_the_hook_still_exits_0(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_path(home).parent.mkdir(parents=True)
    store_path(home).write_bytes(b"this is not a SQLite database" * 100)
    assert hook(monkeypatch, capsys, start("sess-b", project)) == (0, "")
    log = (home / "log" / "tokend.log").read_text()
    assert "ERROR tokend.hook" in log


def test_fast_path_answers_like_the_cli(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tokend.commands.hook import main as hook_main

    checkpoint(home, project, "sess-a")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(start("sess-b", project))))
    assert hook_main() == 0
    assert "sess-a.md" in context_of(capsys.readouterr().out, "SessionStart")
    assert hook(monkeypatch, capsys, prompt("sess-b", project)) == (0, "")


def test_two_sessions_starting_together_are_not_both_told(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tokend.checkpoint import announce

    checkpoint(home, project, "sess-a")
    with Store(store_path(home)) as first, Store(store_path(home)) as second:
        stale = second.checkpoints(str(project))  # read before the other hook marked it
        assert announce(first, str(project), WRITTEN, "sess-b") is not None
        monkeypatch.setattr(second, "checkpoints", lambda cwd=None: stale)
        assert announce(second, str(project), WRITTEN, "sess-c") is None

"""The safety rules of checkpoint writing, one test (at least) each.

A checkpoint lands inside the user's project, so tokend must never write through
a symlink out of it, never clobber a file it did not write, skip quietly when the
folder is gone or read-only, and never copy a secret out of a prompt or a command.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.unit.test_checkpoint_support import (
    CLAUDE_SESSION,
    NOW,
    install,
    scan,
    session,
    snapshot,
)
from tokend.checkpoint import (
    MARKER,
    MAX_BYTES,
    CheckpointNumbers,
    redact,
    render,
    run_checkpoints,
    target_path,
    write_checkpoint,
    write_session_checkpoint,
)
from tokend.config import CheckpointSettings
from tokend.store import Store
from tokend.transcript import SessionDigest, digest_claude

TEXT = f"{MARKER} v1 agent=claude session=s -->\n# Checkpoint\n"
REPO = Path(__file__).resolve().parents[2]


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def target(folder: Path) -> Path:
    return target_path("{cwd}/.tokend/checkpoints/{session}.md", str(folder), "sess-1")


# -- symlinks -----------------------------------------------------------------------


def test_checkpoint_folder_symlinked_out_of_the_project_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / ".tokend").symlink_to(outside, target_is_directory=True)
    result = write_checkpoint(target(folder), folder, TEXT)
    assert not result.written
    assert "leads outside" in result.reason
    assert list(outside.rglob("*")) == []


def test_checkpoint_file_symlinked_out_of_the_project_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path)
    victim = tmp_path / "victim.md"
    victim.write_text(f"{MARKER} looks like ours but lives elsewhere\n")
    path = target(folder)
    path.parent.mkdir(parents=True)
    path.symlink_to(victim)
    result = write_checkpoint(path, folder, TEXT)
    assert not result.written
    assert "symlink" in result.reason
    assert victim.read_text() == f"{MARKER} looks like ours but lives elsewhere\n"
    assert path.is_symlink()


def test_template_that_climbs_out_of_the_project_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path)
    path = target_path("{cwd}/../escaped/{session}.md", str(folder), "sess-1")
    result = write_checkpoint(path, folder, TEXT)
    assert not result.written
    assert not (tmp_path / "escaped").exists()


def test_session_id_cannot_traverse_folders(tmp_path: Path) -> None:
    folder = project(tmp_path)
    path = target_path("{cwd}/.tokend/checkpoints/{session}.md", str(folder), "../../../x")
    assert path.parent == folder / ".tokend" / "checkpoints"


# -- files tokend did not write -------------------------------------------------------------


def test_user_file_at_the_target_path_is_never_overwritten(tmp_path: Path) -> None:
    folder = project(tmp_path)
    path = target(folder)
    path.parent.mkdir(parents=True)
    path.write_text("# my own notes\n")
    result = write_checkpoint(path, folder, TEXT)
    assert not result.written
    assert "not written by tokend" in result.reason
    assert path.read_text() == "# my own notes\n"


def test_own_file_is_replaced(tmp_path: Path) -> None:
    folder = project(tmp_path)
    path = target(folder)
    assert write_checkpoint(path, folder, TEXT + "old\n").written
    assert write_checkpoint(path, folder, TEXT + "new\n").written
    assert path.read_text() == TEXT + "new\n"


# -- missing or read-only folders ----------------------------------------------------------


def test_gone_project_folder_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "deleted"
    result = write_checkpoint(target(folder), folder, TEXT)
    assert not result.written
    assert "gone" in result.reason
    assert not folder.exists()


WRITE_AS_USER = """
import json, sys
from pathlib import Path
from tokend.checkpoint import write_checkpoint
folder = Path(sys.argv[1])
result = write_checkpoint(folder / ".tokend" / "checkpoints" / "s.md", folder, sys.argv[2])
print(json.dumps({"written": result.written, "reason": result.reason}))
"""


def test_read_only_project_folder_is_skipped(tmp_path: Path) -> None:
    folder = project(tmp_path)
    folder.chmod(0o555)
    command = [sys.executable, "-c", WRITE_AS_USER, str(folder), TEXT]
    if os.geteuid() == 0:
        # root writes anywhere: drop the capabilities that bypass file permissions
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        ).stdout
    finally:
        folder.chmod(0o755)
    result = json.loads(out)
    assert result["written"] is False
    assert "cannot write" in result["reason"]
    assert list(folder.iterdir()) == []


def test_refusal_is_logged_once_per_session_and_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = project(tmp_path)
    root = install("claude", tmp_path / "claude", folder)
    log = next(root.path.rglob(f"{CLAUDE_SESSION}.jsonl"))
    (folder / ".tokend").mkdir()
    (folder / ".tokend" / "checkpoints").write_text("a file where our folder goes")
    settings = CheckpointSettings(min_interval_minutes=3)
    caplog.set_level(logging.WARNING, logger="tokend.checkpoint")
    with Store(tmp_path / "s.db") as store:
        scan(store, root)
        first = run_checkpoints(store, snapshot(root, 85.0), settings, NOW)
        # the session goes on; four minutes later the write is tried again, and fails alike
        lines = log.read_text().splitlines()
        last = json.loads(lines[-2])
        last["timestamp"] = "2026-09-15T09:48:00.000Z"
        last["message"]["id"] = "msg_new"
        last["requestId"] = "req_new"
        log.write_text("\n".join([*lines, json.dumps(last)]) + "\n")
        scan(store, root)
        later = NOW + timedelta(minutes=4)
        second = run_checkpoints(store, snapshot(root, 85.0, now=later), settings, later)
    assert [r.written for r in first + second] == [False, False]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not written" in warnings[0].getMessage()


# -- secrets and size ---------------------------------------------------------------------


def bash_transcript(command: str, prompt: str = "deploy it") -> list[str]:
    base = {"sessionId": "s", "cwd": "/p", "timestamp": "2026-09-15T09:00:00.000Z"}
    return [
        json.dumps({**base, "type": "user", "message": {"role": "user", "content": prompt}}),
        json.dumps({**base, "type": "assistant", "message": {
            "model": "claude-opus-4-6", "id": "m1", "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                         "input": {"command": command}}],
            "usage": {"input_tokens": 1, "output_tokens": 1}}}),
    ]


def rendered(digest: SessionDigest) -> str:
    return render(digest, CheckpointNumbers(1.0, 1), "test", NOW)


def test_secret_in_a_bash_command_is_redacted(tmp_path: Path) -> None:
    secret = "ghp_Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8Ii9Jj0Kk1Ll2"
    digest = digest_claude(bash_transcript(
        f"git push https://x:{secret}@github.com/acme/api.git && "
        f"curl -H 'Authorization: Bearer {secret[4:]}' -d password=hunter2 https://api"
    ))
    text = rendered(digest)
    assert "git push https://x:[REDACTED]@github.com/acme/api.git" in text
    for leaked in (secret, secret[4:], "hunter2"):
        assert leaked not in text


@pytest.mark.parametrize(
    ("raw", "leak"),
    [
        ("export ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnop", "abcdefghijklmnop"),
        ("OPENAI_API_KEY='sk-abcdefghijklmnopqrstuv' python x.py", "abcdefghijklmnopqrstuv"),
        ("aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG", None),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCY", "wJalrXUtnFEMIK7MDENGbPxRfiCY"),
        ("mysql -u root -pS3cretPass db", "S3cretPass"),
        ("psql postgres://app:pa55word@db:5432/app", "pa55word"),
        ("curl -u alice:Secr3t https://example.com", "Secr3t"),
        ("login --password 'hunter 2' --user bob", "hunter 2"),
        ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
        ("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
        ('{"api_key": "abc123def456"}', "abc123def456"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
        ("X-Api-Key: 0123456789abcdef", "0123456789abcdef"),
    ],
)
def test_redaction_patterns(raw: str, leak: str | None) -> None:
    out = redact(raw)
    assert "[REDACTED]" in out or leak is None
    if leak is not None:
        assert leak not in out


def test_redaction_happens_before_truncation() -> None:
    # a key cut in half by the item limit would no longer match any pattern
    secret = "sk-ant-api03-" + "Q" * 60
    digest = digest_claude(bash_transcript("echo " + "x" * 250 + " " + secret))
    assert "QQQQQQ" not in rendered(digest)


def test_checkpoint_is_capped_and_long_items_are_cut() -> None:
    digest = SessionDigest(
        agent="claude", session_id="s", cwd="/p",
        prompts=["goal " * 1000] + [f"prompt {i} " + "y" * 2000 for i in range(50)],
        commands=[f"make target-{i} " + "z" * 500 for i in range(100)],
        files_modified=[f"/p/src/file{i}.py" for i in range(100)],
        last_assistant="done " * 2000,
    )
    text = rendered(digest)
    assert len(text.encode()) <= MAX_BYTES
    assert text.startswith(MARKER)
    assert "- … 88 earlier" in text  # 100 files, the latest 12 shown
    assert all(len(line) <= 1510 for line in text.splitlines())  # goal 1200, last 1500


def test_checkpoint_outside_the_project_when_configured(tmp_path: Path) -> None:
    folder = project(tmp_path)
    notes = tmp_path / "notes"
    root = install("claude", tmp_path / "claude", folder)
    settings = CheckpointSettings(path=f"{notes}/{{session}}.md")
    with Store(tmp_path / "s.db") as store:
        scan(store, root)
        result = write_session_checkpoint(
            store, session(store, CLAUDE_SESSION), settings, "test",
            datetime(2026, 9, 15, 9, 45, tzinfo=timezone.utc),
        )
    assert result.written, result.reason
    assert result.path == notes / f"{CLAUDE_SESSION}.md"
    assert not (folder / ".tokend").exists()

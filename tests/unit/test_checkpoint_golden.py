"""Golden checkpoints: fixture transcripts in, the expected Markdown out.

The whole chain runs on real files: the fixture logs are tailed into a real store,
the session is found there, its transcript (and, for Claude, its subagents') is
re-read and the file is written into the project folder. The golden files under
``tests/fixtures/checkpoint/`` were reviewed by hand; regenerate them with
``TOKEND_UPDATE_GOLDEN=1 pytest tests/unit/test_checkpoint_golden.py`` and review
the diff.

What the Claude fixture encodes: a ``/model`` command and its output (not
prompts), an ``isMeta`` caveat, a streamed response split over three lines, a
TodoWrite that is later updated, an Explore subagent (its Read counts as a file
read, its prompt is not a user prompt; the parent's ``progress`` echo is ignored),
an Edit and a Write, Bash commands with an API key and a bearer token, a manual
compaction (the summary is not a prompt; the context is the last request's after
it), an interrupted turn, a ``/review`` slash command (a prompt), and a
``<synthetic>`` limit error (not the last assistant message, not a model).

The Codex fixture: the injected ``<environment_context>`` message, ``sed -n`` and
``nl`` reads, ``apply_patch`` as a tool and as a shell heredoc, ``update_plan``,
a ``PGPASSWORD=`` secret in a shell argv, compaction, and the context window
reported by ``token_count``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_checkpoint_support import (
    CLAUDE_SESSION,
    CODEX_SESSION,
    FIXTURES,
    NOW,
    golden_text,
    install,
    scan,
    session,
    snapshot,
)
from tokend.checkpoint import MARKER, write_session_checkpoint
from tokend.config import CheckpointSettings
from tokend.store import Store

SECRETS = (
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2",
    "abcdef0123456789abcdef",
    "s3cr3t-Pa55",
)


@pytest.mark.parametrize(
    ("agent", "session_id"), [("claude", CLAUDE_SESSION), ("codex", CODEX_SESSION)]
)
def test_fixture_transcript_gives_the_golden_checkpoint(
    tmp_path: Path, agent: str, session_id: str
) -> None:
    project = tmp_path / "acme-api"
    project.mkdir()
    root = install(agent, tmp_path / agent, project)
    with Store(tmp_path / "s.db") as store:
        scan(store, root)
        result = write_session_checkpoint(
            store, session(store, session_id), CheckpointSettings(),
            f"the {agent} 5-hour window is at 83 %", NOW, snapshot(root, 83.0, 41.0),
        )
        recorded = store.checkpoints(str(project))
    assert result.written, result.reason
    target = project / ".tokend" / "checkpoints" / f"{session_id}.md"
    assert result.path == target
    text = golden_text(target.read_text(encoding="utf-8"), project)
    golden = FIXTURES / f"{agent}-expected.md"
    if os.environ.get("TOKEND_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert text.startswith(MARKER)
    assert not any(secret in text for secret in SECRETS)
    assert [r.session_id for r in recorded] == [session_id]


def test_checkpoint_is_private_and_kept_out_of_git(tmp_path: Path) -> None:
    project = tmp_path / "acme-api"
    project.mkdir()
    root = install("claude", tmp_path / "claude", project)
    with Store(tmp_path / "s.db") as store:
        scan(store, root)
        result = write_session_checkpoint(
            store, session(store, CLAUDE_SESSION), CheckpointSettings(), "test", NOW,
        )
    assert result.path is not None
    assert result.path.stat().st_mode & 0o777 == 0o600
    assert (project / ".tokend" / ".gitignore").read_text() == "*\n"


def test_rewrite_updates_in_place(tmp_path: Path) -> None:
    project = tmp_path / "acme-api"
    project.mkdir()
    root = install("codex", tmp_path / "codex", project)
    with Store(tmp_path / "s.db") as store:
        scan(store, root)
        row = session(store, CODEX_SESSION)
        first = write_session_checkpoint(store, row, CheckpointSettings(), "first", NOW)
        second = write_session_checkpoint(store, row, CheckpointSettings(), "second", NOW)
    assert first.written and second.written and first.path == second.path
    assert first.path is not None
    assert "because second." in first.path.read_text()
    leftovers = [p.name for p in first.path.parent.iterdir()]
    assert leftovers == [first.path.name]  # no temp files left behind

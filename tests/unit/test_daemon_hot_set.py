"""The daemon's hot set: the files it looks at again before answering a sync.

In-process, without the daemon's threads: the worker's own methods over a real store
and real files, with the tailer's ``ingest`` counted. The end-to-end side (an append
whose watcher event never comes is still in the next served report) is
``tests/integration/test_daemon_reports.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.daemon_harness import append, claude_line
from tokend import daemon_worker
from tokend.context import Context
from tokend.daemon import Daemon
from tokend.sources.base import Root, Source
from tokend.tail import FileResult


def test_a_sync_opens_only_the_hot_files_that_changed(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "TOKEND_HOME": str(tmp_path / "t"),
           "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
           "CODEX_HOME": str(tmp_path / "codex"), "GEMINI_CLI_HOME": str(tmp_path / "gem")}
    logs = [tmp_path / "claude" / "projects" / "-p" / f"s{i}.jsonl" for i in range(20)]
    for i, log in enumerate(logs):
        append(log, claude_line(100, session=f"s{i}"))
    ctx = Context(env=env, home=tmp_path)
    daemon = Daemon(ctx, tray=False, notify=False)
    daemon._roots = ctx.roots()
    daemon._store = store = ctx.open_store()
    daemon._tailer = tailer = ctx.tailer(store)
    daemon._full_scan()
    # Written a moment ago, all 20 are live sessions as far as the start-up scan knows.
    assert sorted(daemon._hot) == sorted(map(str, logs))

    opened: list[Path] = []
    ingest = tailer.ingest

    def counted(source: Source, root: Root, path: Path) -> FileResult:
        opened.append(path)
        return ingest(source, root, path)

    tailer.ingest = counted  # type: ignore[method-assign]
    assert daemon._sync_hot() is False
    assert opened == []  # nothing changed: a stat each, no file opened

    append(logs[3], claude_line(1000, session="s3"))
    assert daemon._sync_hot() is True
    assert opened == [logs[3]]
    assert store.counts()["events"] == 21

    opened.clear()
    assert daemon._sync_hot() is False and opened == []
    store.close()


def test_a_full_scan_makes_only_the_most_recent_live_files_hot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_worker, "MAX_LIVE_FROM_SCAN", 5)
    env = {"HOME": str(tmp_path), "TOKEND_HOME": str(tmp_path / "t"),
           "CLAUDE_CONFIG_DIR": str(tmp_path / "claude")}
    logs = [tmp_path / "claude" / "projects" / "-p" / f"s{i:02}.jsonl" for i in range(12)]
    now = time.time()
    for i, log in enumerate(logs):
        append(log, claude_line(100, session=f"s{i}"))
        os.utime(log, (now - 60 + i, now - 60 + i))  # s11 written last
    old = tmp_path / "claude" / "projects" / "-q" / "old.jsonl"
    append(old, claude_line(100, session="old"))
    os.utime(old, (now - 2 * daemon_worker.HOT_SECONDS,) * 2)
    ctx = Context(env=env, home=tmp_path)
    daemon = Daemon(ctx, tray=False, notify=False)
    daemon._roots = ctx.roots()
    daemon._store = ctx.open_store()
    daemon._tailer = ctx.tailer(daemon._store)
    daemon._full_scan()
    assert sorted(daemon._hot) == sorted(map(str, logs[-5:]))
    daemon._store.close()

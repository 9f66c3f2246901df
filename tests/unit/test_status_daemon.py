"""``tokend status`` says whether the daemon runs; ``--json`` carries its DaemonInfo."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tokend.commands import status as status_cmd
from tokend.context import Context
from tokend.daemon import InstanceLock, publish
from tokend.snapshot import DaemonInfo, Snapshot

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=timezone.utc)


def _ctx(tmp: Path) -> Context:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"TOKEND_HOME": str(tmp / "tokend"), "HOME": str(home),
           "CLAUDE_CONFIG_DIR": str(tmp / "claude")}
    return Context(env=env, home=home, clock=lambda: NOW)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    status_cmd.register(parser.add_subparsers())
    return parser.parse_args(["status", *argv])


def test_status_says_the_daemon_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = _ctx(tmp_path)
    assert status_cmd.run(_args("--no-scan"), ctx) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "daemon: not running (start it with 'tokend start')"
    assert status_cmd.run(_args("--json", "--no-scan"), ctx) == 0
    assert json.loads(capsys.readouterr().out)["daemon"] is None


def test_status_names_the_running_daemon_and_json_carries_its_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = _ctx(tmp_path)
    ctx.paths.ensure_runtime_dir()
    lock = InstanceLock(ctx.paths.lock_file)
    lock.acquire()  # this process plays the daemon: it holds the lock and published
    try:
        info = DaemonInfo(pid=4242, started_at=NOW - timedelta(hours=2, minutes=5),
                          last_ingest_at=NOW - timedelta(seconds=30), tray="headless: no display")
        publish(ctx.paths, Snapshot(generated_at=NOW, agents=(), daemon=info), 30,
                NOW.timestamp())
        assert status_cmd.run(_args("--no-scan"), ctx) == 0
        first = capsys.readouterr().out.splitlines()[0]
        import os

        assert first.startswith(f"daemon: running, pid {os.getpid()}, up 2h 05m")
        assert "last ingest 30 s ago" in first and "tray: headless: no display" in first
        assert status_cmd.run(_args("--json", "--no-scan"), ctx) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["daemon"]["pid"] == 4242
        assert data["daemon"]["tray"] == "headless: no display"
        assert Snapshot.from_dict(data).daemon == info
    finally:
        lock.release()
    assert status_cmd.running_daemon(ctx) is None  # the lock is gone: not running

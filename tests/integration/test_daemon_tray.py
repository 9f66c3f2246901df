"""The daemon with a tray and a notifier: recording stand-ins for the two GUI adapters.

Everything else is real (watchdog, apscheduler, the store, the state, the alerts);
the daemon runs in this process with the stand-in tray's ``run`` blocking the main
thread, as pystray's would.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

import tokend
from tests.daemon_harness import FakeNotifier, append, claude_line, stand_in_adapters, wait_for
from tokend.context import Context
from tokend.daemon import Daemon, lock_holder
from tokend.snapshot import Snapshot


class FakeTray:
    instances: ClassVar[list[FakeTray]] = []

    def __init__(self, actions: Any, settings: Any, clock: Callable[[], datetime]) -> None:
        self.actions = actions
        self.updates: list[Snapshot] = []
        self.stopped = threading.Event()
        self.ran_on: str = ""
        FakeTray.instances.append(self)

    def update(self, snapshot: Snapshot) -> None:
        self.updates.append(snapshot)

    def run(self, setup: Callable[[], None]) -> None:
        self.ran_on = threading.current_thread().name
        setup()
        self.stopped.wait(30)

    def stop(self) -> None:
        self.stopped.set()


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    FakeTray.instances.clear()
    with stand_in_adapters(monkeypatch, FakeTray):
        yield


def test_tray_on_the_main_thread_gets_snapshots_and_actions_work(stand_ins: None) -> None:
    base = Path(tempfile.mkdtemp(prefix="tkt", dir="/tmp"))
    log = base / "claude" / "projects" / "-p" / "s.jsonl"
    append(log, claude_line(100))
    env = {"HOME": str(base), "TOKEND_HOME": str(base / "t"),
           "CLAUDE_CONFIG_DIR": str(base / "claude"), "CODEX_HOME": str(base / "codex"),
           "GEMINI_CLI_HOME": str(base / "gem")}
    # Settings come from the file (the environment of this process is the test runner's).
    (base / "t" / "config").mkdir(parents=True)
    (base / "t" / "config" / "config.toml").write_text(
        "[claude]\nfive_hour_tokens = 1000\n[daemon]\ndebounce_ms = 10\n")
    ctx = Context(env=env, home=base)
    daemon = Daemon(ctx, tray=True, notify=True)
    result: dict[str, Any] = {}

    def drive() -> None:
        try:
            wait_for(lambda: FakeTray.instances and FakeTray.instances[0].updates, 15)
            tray = FakeTray.instances[0]
            assert tray.actions is daemon
            # crossing 60 % and 80 % of the configured 1000 tokens sends one alert
            append(log, claude_line(800))
            wait_for(lambda: FakeNotifier.sent, 10)
            result["sent"] = list(FakeNotifier.sent)
            until = datetime.now(timezone.utc) + timedelta(hours=1)
            tray.actions.pause_alerts(until)
            wait_for(lambda: tray.updates[-1].alerts_paused_until == until, 10)
            tray.actions.refresh()
            result["autostart"] = tray.actions.autostart_enabled()
            result["percent"] = tray.updates[-1].agents[0].windows[0].percent
            tray.actions.quit()
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc
            daemon.request_stop()

    driver = threading.Thread(target=drive)
    driver.start()
    started = time.monotonic()
    code = daemon.run()
    driver.join(10)
    assert "error" not in result, result.get("error")
    assert code == 0 and time.monotonic() - started < 30
    tray = FakeTray.instances[0]
    assert tray.ran_on == "MainThread" and tray.stopped.is_set()
    assert len(result["sent"]) == 1 and "80" in result["sent"][0][0] + result["sent"][0][1]
    assert result["percent"] == pytest.approx(92.0)  # (110 + 810) / 1000
    assert result["autostart"] in (True, False, None)
    assert lock_holder(ctx.paths.lock_file) is None
    assert not ctx.paths.status_json.exists()
    snapshot_info = tray.updates[-1].daemon
    assert snapshot_info is not None and snapshot_info.tray == "stand-in"


def test_no_tray_module_runs_headless_and_says_why(
    stand_ins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tokend.tray", None)  # import fails
    monkeypatch.delattr(tokend, "tray", raising=False)
    base = Path(tempfile.mkdtemp(prefix="tkt", dir="/tmp"))
    env = {"HOME": str(base), "TOKEND_HOME": str(base / "t"),
           "CLAUDE_CONFIG_DIR": str(base / "claude")}
    daemon = Daemon(Context(env=env, home=base), tray=True, notify=False)
    threading.Timer(1.5, daemon.request_stop).start()
    published: list[str] = []

    def watch() -> None:
        wait_for(lambda: daemon.published, 10)
        published.append(daemon.published["daemon"]["tray"])  # type: ignore[index]

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert daemon.run() == 0
    watcher.join(5)
    assert published and published[0].startswith("headless: tray module unavailable")

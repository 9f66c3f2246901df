"""The daemon's tray actions and fallbacks: headless on a tray failure, "Open report",
"Start at login", and the gate on "Checkpoint saved" notifications.

The GUI adapters are stand-ins where a display would be needed (the desktop tests
drive the real ones); the store, the report, the login-item files and the alert
bookkeeping are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.daemon_harness import (
    FakeMachine,
    FakeNotifier,
    agent_window,
    append,
    claude_line,
    fake_machine,
    stand_in_adapters,
    wait_for,
)
from tokend.context import Context
from tokend.daemon import Daemon, lock_holder
from tokend.snapshot import Snapshot
from tokend.tray import TrayUnavailable


class Opened:
    """An opener that records what it was asked to open (and may be slow or fail)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.paths: list[Path] = []
        self.threads: list[str] = []
        self.delay, self.fail = delay, fail

    def __call__(self, path: Path) -> None:
        time.sleep(self.delay)
        self.threads.append(threading.current_thread().name)
        self.paths.append(path)
        if self.fail:
            raise OSError("no browser here")


class BrokenTray:
    """A tray whose toolkit cannot start (what pystray does without a usable display)."""

    instances: ClassVar[list[BrokenTray]] = []
    mode = "raise"

    def __init__(self, actions: Any, settings: Any, clock: Callable[[], datetime]) -> None:
        self.updates: list[Snapshot] = []
        BrokenTray.instances.append(self)

    def update(self, snapshot: Snapshot) -> None:
        self.updates.append(snapshot)

    def tick(self) -> None:
        pass

    def run(self, setup: Callable[[], None]) -> None:
        if BrokenTray.mode == "raise":
            raise TrayUnavailable("cannot load a tray backend: Bad display name ''")
        # "ends": the toolkit loop returns by itself, nobody asked it to stop

    def stop(self) -> None:
        pass


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    BrokenTray.instances.clear()
    BrokenTray.mode = "raise"
    with stand_in_adapters(monkeypatch, BrokenTray):
        yield


def _base() -> Path:
    return Path(tempfile.mkdtemp(prefix="tka", dir="/tmp"))  # socket paths stay short


def _env(base: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(base), "TOKEND_HOME": str(base / "t"),
            "CLAUDE_CONFIG_DIR": str(base / "claude"), "CODEX_HOME": str(base / "codex"),
            "GEMINI_CLI_HOME": str(base / "gem"), "TOKEND_CLAUDE__FIVE_HOUR_TOKENS": "1000",
            "TOKEND_DAEMON__DEBOUNCE_MS": "10", **extra}


def _percent(daemon: Daemon) -> float | None:
    published = daemon.published or {}
    for agent in published.get("agents", []):
        for window in agent["windows"]:
            if agent["agent"] == "claude" and window["kind"] == "5h":
                return window["percent"]  # type: ignore[no-any-return]
    return None


# -- 2: a tray that cannot start ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "state"),
    [("raise", "headless: cannot load a tray backend: Bad display name ''"),
     ("ends", "headless: the tray icon's loop ended")],
)
def test_a_tray_that_fails_leaves_the_daemon_running_headless(
    stand_ins: None, mode: str, state: str, caplog: pytest.LogCaptureFixture
) -> None:
    BrokenTray.mode = mode
    base = _base()
    log = base / "claude" / "projects" / "-p" / "s.jsonl"
    append(log, claude_line(100))
    ctx = Context(env=_env(base), home=base)
    opened = Opened()
    daemon = Daemon(ctx, tray=True, notify=True, opener=opened)
    result: dict[str, Any] = {}

    def drive() -> None:
        try:
            wait_for(lambda: (daemon.published or {}).get("daemon", {}).get("tray") == state, 10,
                     lambda: str((daemon.published or {}).get("daemon")))
            status = json.loads(ctx.paths.status_json.read_text())
            result["status_tray"] = status["daemon"]["tray"]
            result["running"] = lock_holder(ctx.paths.lock_file)
            # still working: a new line is read, the threshold alert goes out
            append(log, claude_line(800))
            wait_for(lambda: (_percent(daemon) or 0) > 90, 10, lambda: str(_percent(daemon)))
            wait_for(lambda: FakeNotifier.sent, 10)
            # a click on the notification opens the report
            FakeNotifier.sent[0][3]()
            wait_for(lambda: opened.paths, 10)
        except BaseException as exc:
            result["error"] = exc
        finally:
            daemon.request_stop()

    driver = threading.Thread(target=drive)
    driver.start()
    with caplog.at_level("WARNING", logger="tokend.daemon"):
        code = daemon.run()
    driver.join(10)
    assert "error" not in result, result.get("error")
    assert code == 0
    assert result["status_tray"] == state
    assert result["running"] == os.getpid()
    assert "80" in FakeNotifier.sent[0][0]
    assert opened.paths == [ctx.paths.state_dir / "report.html"]
    assert "Today" in opened.paths[0].read_text()
    said = [r.getMessage() for r in caplog.records if "headless" in r.getMessage()]
    assert said == [f"no tray icon, running headless: {state.removeprefix('headless: ')}"]


FORCED_TRAY = """
import sys
import tokend.tray
from tokend.context import Context
from tokend.daemon import Daemon, setup_logging

# tray_available would say "no display"; force the tray path to see the real
# Tray fail to start (pystray cannot load a backend without a display).
tokend.tray.tray_available = lambda env: (True, "forced by the test")
ctx = Context()
setup_logging(ctx.paths, stderr=True)
sys.exit(Daemon(ctx, tray=True, notify=False).run())
"""


def test_the_real_tray_without_a_display_goes_headless() -> None:
    inherit = {k: v for k, v in os.environ.items()
               if not k.startswith(("DBUS_", "PYSTRAY_"))
               and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    with fake_machine(FakeMachine, "tka") as machine:
        env = machine.environment(inherit, TOKEND_CLAUDE__FIVE_HOUR_TOKENS="1000")
        log = machine.claude / "projects" / "-p" / "s.jsonl"
        append(log, claude_line(100))
        proc = subprocess.Popen([sys.executable, "-c", FORCED_TRAY], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            def published() -> dict[str, Any] | None:
                data = machine.read_status()
                return data if data and data["daemon"]["tray"].startswith("headless") else None

            data = wait_for(published, 20, lambda: f"{machine.status_json} not headless")
            tray = data["daemon"]["tray"]
            assert tray.startswith("headless: cannot load a tray backend:"), tray
            assert proc.poll() is None  # still running
            append(log, claude_line(800))

            def percent() -> float:
                return float(agent_window(machine.read_status(), "claude").get("percent") or 0)

            wait_for(lambda: percent() > 90, 10, lambda: f"percent {percent()}")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        assert stderr.count("running headless") == 1, stderr


# -- 3: Open report ------------------------------------------------------------------------


def test_open_report_writes_the_page_and_opens_it_off_the_calling_thread(
    tmp_path: Path,
) -> None:
    base = _base()
    append(base / "claude" / "projects" / "-p" / "s.jsonl", claude_line(1234))
    ctx = Context(env=_env(base), home=base)
    with ctx.open_store() as store:
        ctx.refresh(store)
    opened = Opened(delay=0.5)
    daemon = Daemon(ctx, opener=opened)
    started = time.monotonic()
    daemon.open_report()
    daemon.open_report()  # a second click while the first is being written: ignored
    assert time.monotonic() - started < 0.3  # the tray thread never waits for it
    wait_for(lambda: opened.paths, 10)
    time.sleep(0.3)
    assert opened.paths == [ctx.paths.state_dir / "report.html"]
    assert opened.threads == ["tokend-report"]
    page = opened.paths[0].read_text()
    assert "<html" in page.lower() and "Claude" in page and "1,2" in page.replace(".", ",")
    daemon.open_report()  # once done, it can be opened again
    wait_for(lambda: len(opened.paths) == 2, 10)


def test_open_report_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = _base()
    ctx = Context(env=_env(base), home=base)
    failing = Opened(fail=True)
    daemon = Daemon(ctx, opener=failing)
    with caplog.at_level("WARNING", logger="tokend.daemon"):
        daemon.open_report()  # no store yet: logged, not raised
        wait_for(lambda: any("cannot write the report" in r.getMessage()
                             for r in caplog.records), 10)
        with ctx.open_store():
            pass
        daemon.open_report()  # the browser fails: logged, not raised
        wait_for(lambda: any("cannot open" in r.getMessage() and "no browser" in r.getMessage()
                             for r in caplog.records), 10)
    assert failing.paths == [ctx.paths.state_dir / "report.html"]


# -- 4: Start at login ---------------------------------------------------------------------


class Runner:
    def __init__(self, graphical: bool) -> None:
        self.graphical = graphical
        self.calls: list[list[str]] = []

    def __call__(self, argv: Any, *, env: Any = None, timeout: float = 10) -> tuple[int, str]:
        self.calls.append(list(argv))
        if argv[-1] == "graphical-session.target":
            return (0, "active") if self.graphical else (3, "inactive")
        if argv[2:3] == ["is-enabled"]:
            return (0, "enabled") if ["enable"] in [c[2:3] for c in self.calls] else (
                1, "disabled")
        return 0, ""


def test_start_at_login_writes_the_xdg_desktop_file_under_the_given_root(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cfg"
    ctx = Context(env={"TOKEND_HOME": str(tmp_path / "t"), "XDG_CONFIG_HOME": str(config)},
                  home=tmp_path / "home")
    runner = Runner(graphical=False)
    daemon = Daemon(ctx, platform="linux", autostart_runner=runner)
    desktop = config / "autostart" / "tokend.desktop"
    assert daemon.autostart_enabled() is False
    daemon.set_autostart(True)
    assert desktop.is_file()
    text = desktop.read_text()
    assert "-m tokend run" in text and f"TOKEND_HOME={tmp_path / 't'}" in text
    assert daemon.autostart_enabled() is True
    for _ in range(5):  # the tray asks on every menu refresh
        daemon.autostart_enabled()
    daemon.set_autostart(False)
    assert not desktop.exists()
    assert daemon.autostart_enabled() is False
    # detected once: one systemctl question for the daemon's whole life
    assert runner.calls == [["systemctl", "--user", "is-active", "graphical-session.target"]]
    assert not (tmp_path / "home" / ".config").exists()


def test_start_at_login_with_a_systemd_session_and_where_nothing_applies(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cfg"
    env = {"TOKEND_HOME": str(tmp_path / "t"), "XDG_CONFIG_HOME": str(config)}
    runner = Runner(graphical=True)
    daemon = Daemon(Context(env=env, home=tmp_path), platform="linux", autostart_runner=runner)
    daemon.set_autostart(True)
    assert (config / "systemd" / "user" / "tokend.service").is_file()
    assert daemon.autostart_enabled() is True
    assert ["systemctl", "--user", "enable", "tokend.service"] in runner.calls
    assert not any("start" in c for c in runner.calls)  # never starts a second daemon

    nowhere = Daemon(Context(env=env, home=tmp_path), platform="plan9",
                     autostart_runner=Runner(graphical=False))
    assert nowhere.autostart_enabled() is None  # hides the menu item
    nowhere.set_autostart(True)  # a no-op, not an error


# -- 5: Checkpoint saved -------------------------------------------------------------------


def test_checkpoint_notice_goes_through_pause_quiet_hours_and_rate_limit(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    ctx = Context(env={"TOKEND_HOME": str(tmp_path / "t"), "TZ": "UTC"}, home=tmp_path)
    opened = Opened()
    daemon = Daemon(ctx, opener=opened)
    notifier = FakeNotifier()
    FakeNotifier.sent.clear()
    first = tmp_path / "a" / ".tokend" / "checkpoints" / "s1.md"
    body = f"codex in a: the codex 5-hour window is at 85 %. Saved to {first}"
    with ctx.open_store() as store:
        from tokend.alerts import Alert, record_sent

        # the threshold alert of the same moment does not swallow the checkpoint notice
        record_sent(store, [Alert(key="k", agent="codex", kind="threshold", title="t",
                                  body="b", urgency="normal")], now)
        daemon._notify_checkpoint(store, notifier, "Checkpoint saved", body, first, now)
        assert [s[:3] for s in FakeNotifier.sent] == [("Checkpoint saved", body, "normal")]
        FakeNotifier.sent[0][3]()  # the click opens the checkpoint file
        wait_for(lambda: opened.paths == [first], 5)
        rows = store.db.execute("SELECT agent, detail FROM alerts WHERE key LIKE 'checkpoint|%'")
        (agent, detail), = rows.fetchall()
        assert agent == "checkpoint:codex"
        assert json.loads(detail)["kind"] == "checkpoint"
        assert json.loads(detail)["path"] == str(first)

        # rate limit: a second checkpoint of a codex session two minutes later waits
        second = tmp_path / "b" / "s2.md"
        later = now + timedelta(minutes=2)
        daemon._notify_checkpoint(store, notifier, "Checkpoint saved",
                                  f"codex in b: ... Saved to {second}", second, later)
        assert len(FakeNotifier.sent) == 1
        # another agent has its own budget
        daemon._notify_checkpoint(store, notifier, "Checkpoint saved",
                                  f"claude in b: ... Saved to {second}", second, later)
        assert len(FakeNotifier.sent) == 2

        # paused: nothing, whatever the rate
        much_later = now + timedelta(hours=1)
        daemon.paused_until = much_later + timedelta(minutes=30)
        daemon._notify_checkpoint(store, notifier, "Checkpoint saved",
                                  f"gemini in c: ... Saved to {second}", second, much_later)
        assert len(FakeNotifier.sent) == 2
        daemon.paused_until = None
    # quiet hours (from the Context's env): nothing either
    quiet = Context(env={"TOKEND_HOME": str(tmp_path / "t"),
                         "TOKEND_ALERTS__QUIET_HOURS": "11:00-13:00"}, home=tmp_path)
    hushed = Daemon(quiet, opener=opened)
    with quiet.open_store() as store:
        hushed._notify_checkpoint(store, notifier, "Checkpoint saved",
                                  f"gemini in c: ... Saved to {second}", second,
                                  now.replace(hour=12, minute=30))
        assert len(FakeNotifier.sent) == 2
        hushed._notify_checkpoint(store, notifier, "Checkpoint saved",
                                  f"gemini in c: ... Saved to {second}", second,
                                  now.replace(hour=14))
        assert len(FakeNotifier.sent) == 3

"""``tokend doctor``: every check healthy and broken, exit status, JSON output."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tokend import doctor
from tokend.autostart import Command, SystemdUnit, XdgAutostart
from tokend.config import load_settings
from tokend.context import Context
from tokend.doctor import (
    Finding,
    check_autostart,
    check_claude_integration,
    check_config,
    check_daemon,
    check_notifications,
    check_pricing,
    check_roots,
    check_store,
    check_tray,
    claude_settings_files,
    daemon_pid,
    exit_status,
    probe_tray_backend,
    run_checks,
)
from tokend.paths import Paths
from tokend.sources.base import OnError, Root
from tokend.store import SCHEMA_VERSION, Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


class Runner:
    def __init__(self, answers: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[list[str]] = []

    def __call__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, str]:
        self.calls.append(list(argv))
        joined = " ".join(argv)
        return next((a for k, a in self.answers.items() if k in joined), (0, ""))


def bus_with(**states: str) -> doctor.BusQuery:
    def query(names: Sequence[str]) -> Mapping[str, str]:
        return {n: states.get(n.rsplit(".", 1)[-1], "absent") for n in names}

    return query


def broken_bus(names: Sequence[str]) -> Mapping[str, str]:
    raise OSError("connection refused")


# -- config ----------------------------------------------------------------------------


def test_config_ok_and_broken(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert check_config(path, load_settings).status == "ok"
    path.write_text("[alerts]\nthresholds = [150]\n")
    broken = check_config(path, load_settings)
    assert broken.status == "error" and "thresholds" in broken.summary
    assert broken.fix


# -- agent roots -----------------------------------------------------------------------


def test_roots_found_counted_and_missing(tmp_path: Path) -> None:
    from tokend.sources.claude import SOURCE

    project = tmp_path / ".claude" / "projects" / "-home-ada-app"
    project.mkdir(parents=True)
    older = (NOW - timedelta(days=2)).timestamp()
    for i in range(3):
        (project / f"s{i}.jsonl").write_text("{}\n")
        # The files' mtimes are set relative to the fixed NOW, not the real clock.
        os.utime(project / f"s{i}.jsonl", (older, older))
    (project / "notes.txt").write_text("not a log")
    recent = (NOW - timedelta(minutes=5)).timestamp()
    os.utime(project / "s1.jsonl", (recent, recent))
    roots = [(SOURCE, r) for r in SOURCE.roots({}, tmp_path)]
    findings = check_roots(roots, NOW)
    found = [f for f in findings if f.details.get("found")]
    assert len(found) == 1 and found[0].status == "ok"
    assert found[0].details["files"] == 3
    assert "5 min ago" in found[0].summary
    missing = [f for f in findings if f.details.get("found") is False]
    assert missing and all(f.status == "info" for f in missing)


def test_no_root_at_all_is_a_warning(tmp_path: Path) -> None:
    from tokend.sources.claude import SOURCE

    findings = check_roots([(SOURCE, r) for r in SOURCE.roots({}, tmp_path)], NOW)
    assert findings[-1].check == "agents" and findings[-1].status == "warn"
    assert "CLAUDE_CONFIG_DIR" in findings[-1].fix


class _FailingSource:
    """A source whose walk hits an unreadable folder (root reads everything, so fake it)."""

    agent = "claude"

    def files(self, root: Root, on_error: OnError) -> list[Path]:
        on_error(PermissionError(13, "Permission denied", str(root.path / "locked")))
        return []


def test_unreadable_folder_is_reported(tmp_path: Path) -> None:
    root = Root("claude", tmp_path, "x")
    findings = check_roots([(_FailingSource(), root)], NOW)  # type: ignore[list-item]
    assert findings[0].status == "warn" and "unreadable" in findings[0].summary
    assert str(tmp_path) in findings[0].fix


# -- store -----------------------------------------------------------------------------


def test_store_missing_healthy_corrupt_and_newer(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    missing = check_store(path)
    assert missing.status == "warn" and missing.fix == "tokend scan"

    Store(path).close()
    healthy = check_store(path)
    assert healthy.status == "ok"
    assert healthy.details["schema_version"] == SCHEMA_VERSION
    assert healthy.details["integrity"] == ["ok"]

    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    newer = check_store(path)
    assert newer.status == "error" and "newer" in newer.summary

    path.write_bytes(b"this is not sqlite at all" * 100)
    garbage = check_store(path)
    assert garbage.status == "error" and "tokend scan" in garbage.fix


def test_store_with_a_damaged_page_fails_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("CREATE INDEX t_v ON t(v)")
    db.executemany("INSERT INTO t (v) VALUES (?)", [(f"value {i}" * 5,) for i in range(3000)])
    db.commit()
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 3 + 100, page * 3 + 400):  # scribble inside a b-tree page
        data[offset] = 0x41
    path.write_bytes(bytes(data))
    finding = check_store(path)
    assert finding.status == "error"


# -- daemon ----------------------------------------------------------------------------


def _paths(tmp_path: Path) -> Paths:
    return Paths.from_env({"TOKEND_HOME": str(tmp_path / "th")})


def _publish(paths: Paths, at: datetime) -> None:
    paths.ensure_runtime_dir()
    paths.status_json.write_text(json.dumps({"generated_at": at.isoformat()}))


def test_daemon_not_running_fresh_stale_and_silent(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    down = check_daemon(paths, NOW, None, 150)
    assert down.status == "warn" and "tokend start" in down.fix
    silent = check_daemon(paths, NOW, 4242, 150)
    assert silent.status == "error" and "missing" in silent.summary
    _publish(paths, NOW - timedelta(seconds=20))
    fresh = check_daemon(paths, NOW, 4242, 150)
    assert fresh.status == "ok" and fresh.details["last_publish_seconds"] == 20
    _publish(paths, NOW - timedelta(minutes=10))
    stale = check_daemon(paths, NOW, 4242, 150)
    assert stale.status == "error" and "hung" in stale.summary
    assert "tokend stop; tokend start" in stale.fix


def test_daemon_pid_means_the_lock_is_held(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    assert daemon_pid(paths) is None
    paths.ensure_runtime_dir()
    paths.lock_file.write_text(f"{os.getpid()}\n")
    assert daemon_pid(paths) is None  # a pid in a file is not a running daemon
    fd = os.open(paths.lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert daemon_pid(paths) == os.getpid()
    finally:
        os.close(fd)
    assert daemon_pid(paths) is None


# -- tray ------------------------------------------------------------------------------

X11 = {"DISPLAY": ":5"}


def test_tray_healthy_with_a_watcher() -> None:
    f = check_tray(X11, "linux", True, (True, ""), ("appindicator", ""),
                   bus_with(StatusNotifierWatcher="owned"))
    assert f.status == "ok" and f.details["backend"] == "appindicator"


def test_tray_without_a_watcher_names_the_gnome_extension() -> None:
    f = check_tray(X11, "linux", True, None, ("appindicator", ""), bus_with())
    assert f.status == "warn" and "gnome-extensions enable" in f.fix


def test_tray_broken_cases() -> None:
    assert check_tray({}, "linux", True, None, None, None).status == "warn"
    no_gi = check_tray(X11, "linux", True, None, (None, "ImportError: gi"), None)
    assert no_gi.status == "warn" and "gir1.2-ayatanaappindicator3" in no_gi.fix
    unavailable = check_tray(X11, "linux", True, (False, "no tray host"), None, None)
    assert unavailable.status == "warn" and "no tray host" in unavailable.summary
    assert check_tray(X11, "linux", True, None, ("appindicator", ""), broken_bus).status == "warn"
    assert check_tray(X11, "linux", True, None, ("appindicator", ""), None).status == "warn"


def test_tray_other_platforms_and_disabled() -> None:
    assert check_tray({}, "darwin", True, None, None, None).status == "ok"
    assert check_tray({}, "win32", True, None, None, None).status == "ok"
    assert check_tray(X11, "linux", False, None, None, None).status == "info"
    assert check_tray(X11, "linux", True, None, ("xorg", ""), None).status == "ok"


def test_probe_tray_backend_asks_pystray_in_a_subprocess() -> None:
    from tokend.autostart import run_command

    env = {**os.environ, "PYSTRAY_BACKEND": "dummy"}
    assert probe_tray_backend(env, run_command) == ("dummy", "")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    name, error = probe_tray_backend({**env, "PYSTRAY_BACKEND": "xorg"}, run_command)
    assert name is None and error


# -- notifications ---------------------------------------------------------------------


def test_notifications_states() -> None:
    assert check_notifications("linux", bus_with(Notifications="owned")).status == "ok"
    assert check_notifications("linux", bus_with(Notifications="activatable")).status == "ok"
    absent = check_notifications("linux", bus_with())
    assert absent.status == "warn" and "dunst" in absent.fix
    assert check_notifications("linux", None).status == "warn"
    assert check_notifications("linux", broken_bus).status == "warn"
    assert check_notifications("darwin", None).status == "info"


# -- autostart -------------------------------------------------------------------------


def test_autostart_off_on_outdated_and_foreign(tmp_path: Path) -> None:
    backend = XdgAutostart(tmp_path, Command(sys.executable))
    off = check_autostart(backend)
    assert off.status == "info" and off.fix == "tokend autostart enable"
    backend.install()
    assert check_autostart(backend).status == "ok"
    other = XdgAutostart(tmp_path, Command(sys.executable, "/other/home"))
    differs = check_autostart(other)
    assert differs.status == "warn" and differs.fix.startswith("tokend autostart enable")
    XdgAutostart(tmp_path, Command("/gone/python")).install()
    gone = check_autostart(backend)
    assert gone.status == "error" and "/gone/python" in gone.summary
    assert gone.fix == "tokend autostart enable"
    backend.install()
    backend.path.write_text("[Desktop Entry]\nType=Application\nName=x\nExec=x\n")
    assert check_autostart(backend).status == "info"


def test_autostart_written_but_not_enabled(tmp_path: Path) -> None:
    runner = Runner({"is-enabled": (1, "disabled")})
    unit = SystemdUnit(tmp_path, Command(sys.executable), runner)
    unit.install()
    finding = check_autostart(unit)
    assert finding.status == "warn" and finding.details["enabled"] is False


# -- Claude integration ----------------------------------------------------------------


def _tokend_on_path(tmp_path: Path) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "tokend"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return str(bindir)


def test_claude_integration_installed(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({
        "statusLine": {"type": "command", "command": "tokend statusline"},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "tokend hook stop"}]}]},
    }))
    ok = check_claude_integration([settings], _tokend_on_path(tmp_path))
    assert ok.status == "ok" and "hooks" in ok.summary
    not_on_path = check_claude_integration([settings], str(tmp_path / "empty"))
    assert not_on_path.status == "warn" and "ensurepath" in not_on_path.fix


def test_claude_integration_with_an_absolute_command(tmp_path: Path) -> None:
    """What 'tokend integrate claude' writes: an absolute path, maybe quoted."""
    folder = tmp_path / "my bin"
    folder.mkdir()
    exe = folder / "tokend"
    exe.write_text("#!/bin/sh\n")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"statusLine": {"command": f"'{exe}' statusline"}}))
    assert check_claude_integration([settings], None).status == "ok"
    exe.unlink()
    gone = check_claude_integration([settings], None)
    assert gone.status == "warn" and str(exe) in gone.summary


def test_claude_integration_absent_and_broken(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    absent = check_claude_integration([settings], None)
    assert absent.status == "info" and absent.fix == "tokend integrate claude"
    settings.write_text(json.dumps({"statusLine": {"command": "ccusage statusline"}}))
    assert check_claude_integration([settings], None).status == "info"
    settings.write_text("{ not json")
    assert check_claude_integration([settings], None).status == "warn"


def test_claude_settings_files(tmp_path: Path) -> None:
    assert claude_settings_files({}, tmp_path) == [tmp_path / ".claude" / "settings.json"]
    env = {"CLAUDE_CONFIG_DIR": "~/work, /srv/claude/projects"}
    assert claude_settings_files(env, tmp_path) == [
        tmp_path / "work" / "settings.json", Path("/srv/claude/settings.json")]


# -- pricing ---------------------------------------------------------------------------


def test_pricing_states(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    today = date(2026, 11, 23)
    assert check_pricing(date(2026, 11, 1), [], today, prices).status == "ok"
    old = check_pricing(date(2026, 1, 1), [], today, prices)
    assert old.status == "warn" and "days old" in old.summary
    unpriced = check_pricing(date(2026, 11, 1), ["gpt-9"], today, prices)
    assert unpriced.status == "warn" and str(prices) in unpriced.fix
    assert unpriced.details["unpriced_models"] == ["gpt-9"]


# -- exit status, wiring, CLI ----------------------------------------------------------


def test_exit_status_errors_vs_warnings() -> None:
    warn = Finding("x", "warn", "w")
    error = Finding("y", "error", "e")
    fine = Finding("z", "ok", "o")
    assert exit_status([fine, warn]) == 0
    assert exit_status([fine, warn], strict=True) == 1
    assert exit_status([fine, error]) == 1
    assert exit_status([fine, Finding("i", "info", "i")], strict=True) == 0


def _context(tmp_path: Path, **extra: str) -> Context:
    env = {"TOKEND_HOME": str(tmp_path / "th"), "HOME": str(tmp_path), "PATH": os.defpath,
           "DISPLAY": ":9", **extra}
    return Context(env=env, home=tmp_path, clock=lambda: NOW)


def test_run_checks_covers_every_area(tmp_path: Path) -> None:
    runner = Runner({"pystray": (0, "appindicator"), "is-active": (3, "inactive")})
    findings = run_checks(_context(tmp_path), runner=runner,
                          bus=bus_with(StatusNotifierWatcher="owned", Notifications="owned"),
                          platform="linux", tray_probe=lambda env: (True, "appindicator"))
    checks = {f.check for f in findings}
    assert {"config", "claude", "codex", "gemini", "store", "daemon", "tray", "notifications",
            "autostart", "claude-integration", "pricing"} <= checks
    by = {f.check: f for f in findings}
    assert by["tray"].status == "ok" and by["notifications"].status == "ok"
    assert by["store"].status == "warn"  # no store yet
    assert exit_status(findings) == 0
    assert all(f.fix for f in findings if f.status in ("warn", "error"))
    json.dumps([f.to_dict() for f in findings])  # --json must not choke on any detail


def test_run_checks_reports_a_broken_config_as_an_error(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    ctx.paths.config_dir.mkdir(parents=True)
    ctx.paths.config_file.write_text("this is = = not toml")
    findings = run_checks(ctx, runner=Runner(), bus=bus_with(), platform="linux",
                          tray_probe=lambda env: (False, "no display"))
    assert findings[0].check == "config" and findings[0].status == "error"
    assert exit_status(findings) == 1
    assert all(f.fix for f in findings if f.status in ("warn", "error"))


def test_cli_doctor_json_and_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from tokend.cli import main

    for key in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "CLAUDE_CONFIG_DIR",
                "CODEX_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TOKEND_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("HOME", str(tmp_path))
    store = Paths.from_env({"TOKEND_HOME": str(tmp_path / "th")}).store
    store.parent.mkdir(parents=True)
    store.write_bytes(b"garbage" * 1000)
    assert main(["doctor", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    bad = [f for f in out["findings"] if f["status"] == "error"]
    assert [f["check"] for f in bad] == ["store"] and bad[0]["fix"]
    store.unlink()
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "fix: tokend scan" in text and text.rstrip().endswith("warnings")
    assert main(["doctor", "--strict"]) == 1


def test_run_checks_reports_a_broken_price_file(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    ctx.paths.config_dir.mkdir(parents=True)
    ctx.paths.prices_file.write_text("[models.x]\ninput = 'cheap'\n")
    findings = run_checks(ctx, runner=Runner(), bus=bus_with(), platform="linux",
                          tray_probe=lambda env: (False, "no display"))
    pricing = next(f for f in findings if f.check == "pricing")
    assert pricing.status == "error" and pricing.fix
    assert exit_status(findings) == 1

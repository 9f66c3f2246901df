"""Helpers of the desktop tests: start Xvfb, poll, build a demo snapshot, a demo tray handle.

Kept out of conftest.py so test modules can import them by a unique name
(several conftest.py files in one run would shadow each other as ``conftest``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_harness import stop_process
from tokend.snapshot import AgentState, Snapshot, WindowState

REPO = Path(__file__).resolve().parents[2]

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
"""No <servicedir>: nothing is ever auto-activated (no dunst, no at-spi leaking out)."""


def need(*tools: str) -> None:
    """Fail (never skip) when a desktop tool is missing: CI installs them all."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run .ci/run (apt-get install xvfb trayer "
                    "xdotool dbus imagemagick) to get the desktop test tools")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


def start_xvfb_process(size: str = "800x600x24") -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a free display number; return the process and ``":N"``.

    ``-displayfd`` makes Xvfb pick the number and write it to a pipe when it is ready.
    The pipe must be read up to the newline: Xvfb may write the digits and the
    newline separately, and closing the pipe early kills it ("Cannot write display
    number").
    """
    need("Xvfb")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            chunk = os.read(read_fd, 16)
            if not chunk:
                stop_process(proc)
                pytest.fail("Xvfb exited before reporting its display number")
            buf += chunk
    finally:
        os.close(read_fd)
    return proc, ":" + buf.decode().strip()


# -- the tray menu -------------------------------------------------------------------

MENU_ACTIONS = [
    "---",
    "Refresh now",
    "Pause alerts",
    "  For 1 hour",
    "  Until tomorrow 08:00",
    "  Resume alerts",
    "Open report",
    "Open config file",
    "Start at login",
    "---",
    "Quit",
]
"""The tray menu below the agents' lines, as a panel lists it (``---``: a separator)."""


# -- the demo tray -------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 12, 15, tzinfo=timezone.utc)


def demo_snapshot(percent: float = 83.0, provenance: str = "official") -> Snapshot:
    """Claude at ``percent`` of its 5-hour window (resets 14:30 UTC), Codex at 12 %."""
    claude = AgentState(
        agent="claude", account="~/.claude/projects", root="/home/u/.claude/projects",
        windows=(
            WindowState(
                kind="5h", start=NOW - timedelta(hours=2, minutes=45),
                resets_at=NOW + timedelta(hours=2, minutes=15), used_tokens=1_234_000,
                used_cost=4.2, requests=120, percent=percent, provenance=provenance,  # type: ignore[arg-type]
                observed_at=NOW, burn_tokens_per_min=1200.0,
                runs_out_at=NOW + timedelta(hours=1, minutes=35),
            ),
            WindowState(
                kind="weekly", start=NOW - timedelta(days=4), resets_at=NOW + timedelta(days=3),
                used_tokens=9_000_000, used_cost=40.0, requests=900, percent=41.0,
                provenance=provenance, observed_at=NOW,  # type: ignore[arg-type]
            ),
        ),
        last_activity=NOW,
    )
    codex = AgentState(
        agent="codex", account="~/.codex", root="/home/u/.codex",
        windows=(
            WindowState(
                kind="5h", start=NOW - timedelta(hours=1), resets_at=NOW + timedelta(hours=4),
                used_tokens=50_000, used_cost=0.3, requests=8, percent=12.0,
                provenance="official", observed_at=NOW,
            ),
        ),
        last_activity=NOW,
    )
    return Snapshot(generated_at=NOW, agents=(claude, codex))


@dataclass
class DemoTray:
    """A running ``python -m tokend.tray --demo`` process and the file of its actions."""

    proc: subprocess.Popen[str]
    record: Path
    log: Path
    backend: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return self.record.read_text(encoding="utf-8").splitlines() if self.record.exists() else []

    def wait_for(self, prefix: str, timeout: float = 10.0) -> str:
        """The first recorded action line starting with ``prefix``."""
        def find() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo tray exited {self.proc.returncode}: "
                                     f"{self.log.read_text(encoding='utf-8')}")
            return next((line for line in self.lines() if line.startswith(prefix)), None)
        try:
            return str(wait_until(find, timeout, f"action {prefix!r} in {self.record}"))
        except AssertionError as exc:
            if self.proc.poll() is None:  # ask for a stack dump of every thread
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
            log = self.log.read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"{exc}\n--- demo tray output:\n{log}") from None




# -- XEmbed tray windows -------------------------------------------------------------


def x_windows(root: Any, wm_class: str) -> list[Any]:
    """Every window below ``root`` with ``wm_class``; windows may vanish mid-walk."""
    import Xlib.error

    try:
        children = root.query_tree().children
    except Xlib.error.BadWindow:
        return []
    found = []
    for child in children:
        try:
            cls = child.get_wm_class()
        except Xlib.error.BadWindow:
            continue
        if cls and wm_class in cls:
            found.append(child)
        found += x_windows(child, wm_class)
    return found


def docked_windows(display: Any, wm_class: str) -> list[Any]:
    """The windows of class ``wm_class`` a tray host has reparented (docked) right now."""
    import Xlib.error

    root = display.screen().root
    # A window reparented while the tree is walked can be met twice: once per parent.
    found = list({w.id: w for w in x_windows(root, wm_class)}.values())
    ours = {w.id for w in found}
    out = []
    for win in found:
        try:
            parent = win.query_tree().parent.id
        except Xlib.error.BadWindow:
            continue
        if parent != root.id and parent not in ours:  # not a child of our own window
            out.append(win)
    return out


def window_pixels(win: Any) -> Any:
    """The window's pixels as a PIL image; raises Xlib.error.BadMatch while unmapped."""
    import Xlib.X
    from PIL import Image

    geo = win.get_geometry()
    raw = win.get_image(0, 0, geo.width, geo.height, Xlib.X.ZPixmap, 0xFFFFFFFF)
    return Image.frombytes("RGB", (geo.width, geo.height), raw.data, "raw", "BGRX")


def count_colour(img: Any, rgb: tuple[int, int, int], tol: int = 12) -> int:
    """Opaque pixels of the PIL image ``img`` within ``tol`` of ``rgb``: how the tests
    tell which face (neutral, amber, red, hollow) a gauge was drawn with."""
    rgba: Any = img.convert("RGBA")
    return sum(
        1
        for p in rgba.get_flattened_data()
        if p[3] > 200 and all(abs(p[i] - rgb[i]) <= tol for i in range(3))
    )

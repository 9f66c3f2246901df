"""A ``Tray.stop()`` that lands while pystray is still starting must end ``Tray.run``.

pystray ignores ``Icon.stop`` until the backend marks the icon ready, and its GTK
backends mark it ready before their GLib loop runs (a ``quit`` then is forgotten).
The script below runs a real :class:`tokend.tray.Tray` with a real backend and
calls ``stop()`` exactly in those two gaps, through a hook on the backend's
``_mark_ready``; without the fix ``run()`` never returns.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from desktop_fakes import FakeStatusNotifierWatcher
from desktop_harness import REPO

pytestmark = pytest.mark.desktop

SCRIPT = r"""
import sys, threading, time
from datetime import datetime, timezone
import pystray
from tokend.config import Settings
from tokend.tray import Tray

when = sys.argv[1]

class Actions:
    def refresh(self): pass
    def pause_alerts(self, until): pass
    def open_report(self): pass
    def open_config(self): pass
    def autostart_enabled(self): return None
    def set_autostart(self, enabled): pass
    def quit(self): pass

tray = Tray(Actions(), Settings(), lambda: datetime(2026, 11, 23, 12, tzinfo=timezone.utc))
cls = pystray.Icon
original = cls._mark_ready

def mark_ready(self):
    if when == "before":
        tray.stop()  # the icon exists, pystray does not count it as running yet
        original(self)
    else:
        original(self)
        tray.stop()  # running for pystray, but the toolkit loop has not started
    tray.stop()  # repeated stops (the daemon's fallback loop) are harmless

cls._mark_ready = mark_ready
setups = []
threading.Timer(8.0, lambda: (print("HUNG", flush=True), __import__("os")._exit(3))).start()
started = time.monotonic()
tray.run(lambda: setups.append(1))
took = time.monotonic() - started
print(f"returned {type(tray._icon).__module__} {took:.2f} setup={len(setups)}", flush=True)
import os
os._exit(0)
"""


def _run(env: dict[str, str], backend: str, when: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, when], env=dict(env, PYSTRAY_BACKEND=backend),
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    assert f"returned pystray._{backend}" in done.stdout
    assert "setup=0" in done.stdout  # a stopped tray never calls the daemon's setup
    return done.stdout


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("backend", ["xorg", "gtk"])
def test_stop_while_the_xembed_icon_starts(
    tray_host: Any, desktop_env: dict[str, str], backend: str, when: str
) -> None:
    _run(desktop_env, backend, when)


@pytest.mark.parametrize("when", ["before", "after"])
def test_stop_while_the_appindicator_icon_starts(
    sni_watcher: FakeStatusNotifierWatcher, desktop_env: dict[str, str], when: str
) -> None:
    _run(desktop_env, "appindicator", when)

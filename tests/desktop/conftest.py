"""Fixtures for tests that need a desktop: an X display, a tray host, a session bus.

Everything is private to the test run and torn down after it. Nothing from the
real session leaks in, and nothing leaks out: ``DISPLAY`` and
``DBUS_SESSION_BUS_ADDRESS`` are set (with monkeypatch) only for the duration of
each test that asks for the display or the bus, so later unit tests still see the
environment they started with. A missing tool FAILS the test: CI
installs them all (``.ci/run``), and a skipped desktop test would hide a broken tray.

Reusable fixtures (the daemon end-to-end tests should live in ``tests/desktop/``
and use them):

``xdisplay``           session: an Xvfb display (``":N"``), started with ``-displayfd``;
                       during each test that uses it, ``DISPLAY`` points at it.
``tray_host``          session: ``trayer`` owning ``_NET_SYSTEM_TRAY_S0`` on that display
                       (the XEmbed host for the gtk/xorg backends); yields an Xlib Display.
``session_bus``        session: address of a private ``dbus-daemon`` without service
                       activation; during each test that uses it,
                       ``DBUS_SESSION_BUS_ADDRESS`` points at it (and ``NO_AT_BRIDGE=1``).
``notifyd``            session: :class:`desktop_fakes.FakeNotificationServer` on that bus.
``notifications``      function: the same server, emptied before the test.
``sni_watcher``        function: a fresh :class:`desktop_fakes.FakeStatusNotifierWatcher` (panel).
``desktop_env``        function: an environment dict for subprocesses (display, bus,
                       ``TZ=UTC``, ``NO_AT_BRIDGE=1``, ``TOKEND_HOME`` in tmp_path).
``run_tray``           function: factory ``run_tray(snapshot, backend) -> DemoTray``
                       running ``python -m tokend.tray --demo`` as a real process.
``start_xvfb``         function: factory for an extra, bare display (no tray host).

For a daemon test: take ``desktop_env`` (plus ``tray_host`` or ``sni_watcher``), start
``tokend run`` with it, append log lines, then ``notifications.wait_for(n)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from desktop_fakes import FakeNotificationServer, FakeStatusNotifierWatcher
from desktop_harness import (
    BUS_CONFIG,
    REPO,
    DemoTray,
    need,
    start_xvfb_process,
    wait_until,
)

from tests.daemon_harness import stop_process
from tokend.snapshot import Snapshot


@pytest.fixture(scope="session")
def xdisplay() -> Iterator[str]:
    proc, display = start_xvfb_process()
    yield display
    stop_process(proc)


@pytest.fixture(autouse=True)
def _desktop_environ(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point DISPLAY / the session bus at ours for this test only (see module doc)."""
    if "xdisplay" in request.fixturenames:
        monkeypatch.setenv("DISPLAY", request.getfixturevalue("xdisplay"))
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if "session_bus" in request.fixturenames:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", request.getfixturevalue("session_bus"))
        monkeypatch.setenv("NO_AT_BRIDGE", "1")  # keeps GTK from spawning at-spi processes


@pytest.fixture
def start_xvfb() -> Iterator[Callable[[], str]]:
    """Factory for extra bare displays (no tray host), stopped after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        proc, display = start_xvfb_process()
        procs.append(proc)
        return display

    yield start
    for proc in procs:
        stop_process(proc)


@pytest.fixture(scope="session")
def tray_host(xdisplay: str) -> Iterator[Any]:
    """trayer as the XEmbed system tray; yields an Xlib Display for inspecting windows."""
    need("trayer")
    import Xlib.display

    proc = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "left", "--widthtype", "request",
         "--height", "26", "--SetDockType", "false", "--SetPartialStrut", "false",
         "--transparent", "false", "--tint", "0x2b3038"],
        env=dict(os.environ, DISPLAY=xdisplay),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    display = Xlib.display.Display(xdisplay)
    atom = display.intern_atom("_NET_SYSTEM_TRAY_S0")
    wait_until(lambda: display.get_selection_owner(atom) not in (0, None)
               and display.get_selection_owner(atom).id != 0,
               5.0, "trayer to own the system tray selection")
    # trayer takes the selection before its panel is up; a dock request sent in
    # between is lost, so wait for the mapped panel as well.
    wait_until(lambda: _panel_mapped(display), 5.0, "trayer's panel to be mapped")
    time.sleep(0.2)
    yield display
    display.close()
    stop_process(proc)


def _panel_mapped(display: Any) -> bool:
    import Xlib.error
    import Xlib.X

    for win in display.screen().root.query_tree().children:
        try:
            if win.get_wm_class() == ("panel", "trayer"):
                return bool(win.get_attributes().map_state == Xlib.X.IsViewable)
        except Xlib.error.BadWindow:
            continue
    return False


@pytest.fixture(scope="session")
def session_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need("dbus-daemon")
    folder = tmp_path_factory.mktemp("bus")
    config = folder / "bus.conf"
    config.write_text(BUS_CONFIG.format(dir=folder), encoding="utf-8")
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    if not address:
        stop_process(proc)
        pytest.fail("dbus-daemon did not print its address")
    yield address
    stop_process(proc)


@pytest.fixture(scope="session")
def notifyd(session_bus: str) -> Iterator[FakeNotificationServer]:
    server = FakeNotificationServer(session_bus).start()
    yield server
    server.stop()


@pytest.fixture
def notifications(notifyd: FakeNotificationServer) -> FakeNotificationServer:
    notifyd.clear()
    return notifyd


@pytest.fixture
def sni_watcher(session_bus: str) -> Iterator[FakeStatusNotifierWatcher]:
    watcher = FakeStatusNotifierWatcher(session_bus).start()
    yield watcher
    watcher.stop()


@pytest.fixture
def desktop_env(xdisplay: str, session_bus: str, notifyd: FakeNotificationServer,
                tmp_path: Path) -> dict[str, str]:
    """The environment of a process under test: our display and bus only, UTC clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRAY_", "TOKEND_"))}
    env.update(
        DISPLAY=xdisplay,
        DBUS_SESSION_BUS_ADDRESS=session_bus,
        NO_AT_BRIDGE="1",
        TZ="UTC",
        TOKEND_HOME=str(tmp_path / "tokend-home"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    env.pop("WAYLAND_DISPLAY", None)
    return env


@pytest.fixture
def run_tray(desktop_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., DemoTray]]:
    """Factory: start the demo tray over a snapshot with a pystray backend; wait until up."""
    running: list[DemoTray] = []

    def start(snapshot: Snapshot, backend: str, *args: str) -> DemoTray:
        n = len(running)
        snap = tmp_path / f"snapshot{n}.json"
        snap.write_text(json.dumps(snapshot.to_dict()), encoding="utf-8")
        record = tmp_path / f"actions{n}.txt"
        log = tmp_path / f"tray{n}.log"
        env = dict(desktop_env, PYSTRAY_BACKEND=backend)
        with log.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tokend.tray", "--demo", str(snap), "--record",
                 str(record), *args],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
            )
        tray = DemoTray(proc, record, log)
        running.append(tray)
        tray.backend = tray.wait_for("ready", 15.0).split(" ", 1)[1]
        return tray

    yield start
    for tray in running:
        stop_process(tray.proc)

"""``tokend doctor``'s D-Bus checks against a real, private ``dbus-daemon``.

Each test gets its own bus (no service activation unless the test adds a service
file), so "nobody owns the name" is as testable as "a panel owns it". Names are
owned with dbus-fast from a background loop, like a tray host or a notification
daemon would.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus
from desktop_harness import BUS_CONFIG, need, stop_process

from tokend.doctor import (
    NOTIFICATIONS,
    SNI_WATCHER,
    check_notifications,
    check_tray,
    query_session_bus,
    session_bus_address,
)

pytestmark = pytest.mark.desktop

X11 = {"DISPLAY": ":5"}


class NameOwner:
    """A D-Bus client on its own loop thread that owns well-known names on request."""

    def __init__(self, address: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def connect() -> MessageBus:  # MessageBus() must be built inside its loop
            return await MessageBus(bus_address=address).connect()

        self.bus = asyncio.run_coroutine_threadsafe(connect(), self.loop).result(5)

    def own(self, name: str) -> None:
        asyncio.run_coroutine_threadsafe(self.bus.request_name(name), self.loop).result(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.bus.disconnect)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _start_bus(folder: Path, service_dir: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    config = BUS_CONFIG.format(dir=folder)
    if service_dir is not None:
        config = config.replace("<auth>", f"<servicedir>{service_dir}</servicedir>\n  <auth>")
    (folder / "bus.conf").write_text(config, encoding="utf-8")
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={folder / 'bus.conf'}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address, "dbus-daemon did not print its address"
    return proc, address


@pytest.fixture
def private_bus(tmp_path: Path) -> Iterator[str]:
    need("dbus-daemon")
    proc, address = _start_bus(tmp_path)
    yield address
    stop_process(proc)


@pytest.fixture
def owner(private_bus: str) -> Iterator[NameOwner]:
    client = NameOwner(private_bus)
    yield client
    client.stop()


def test_nobody_owns_anything(private_bus: str) -> None:
    query = query_session_bus(private_bus)
    assert query([SNI_WATCHER, NOTIFICATIONS]) == {SNI_WATCHER: "absent", NOTIFICATIONS: "absent"}
    tray = check_tray(X11, "linux", True, None, ("appindicator", ""), query)
    assert tray.status == "warn" and "gnome-extensions" in tray.fix
    assert check_notifications("linux", query).status == "warn"


def test_a_panel_and_a_notification_server(private_bus: str, owner: NameOwner) -> None:
    owner.own(SNI_WATCHER)
    owner.own(NOTIFICATIONS)
    query = query_session_bus(private_bus)
    assert query([SNI_WATCHER, NOTIFICATIONS]) == {SNI_WATCHER: "owned", NOTIFICATIONS: "owned"}
    assert check_tray(X11, "linux", True, None, ("appindicator", ""), query).status == "ok"
    assert check_notifications("linux", query).status == "ok"


def test_watcher_that_goes_away(private_bus: str) -> None:
    client = NameOwner(private_bus)
    client.own(SNI_WATCHER)
    query = query_session_bus(private_bus)
    assert query([SNI_WATCHER])[SNI_WATCHER] == "owned"
    client.stop()  # the panel crashed: its name is released with its connection
    assert query([SNI_WATCHER])[SNI_WATCHER] == "absent"


def test_activatable_notification_server(tmp_path: Path) -> None:
    need("dbus-daemon")
    services = tmp_path / "services"
    services.mkdir()
    (services / "notifyd.service").write_text(
        f"[D-BUS Service]\nName={NOTIFICATIONS}\nExec=/bin/false\n", encoding="utf-8"
    )
    bus_dir = tmp_path / "bus"
    bus_dir.mkdir()
    proc, address = _start_bus(bus_dir, services)
    try:
        query = query_session_bus(address)
        assert query([NOTIFICATIONS])[NOTIFICATIONS] == "activatable"
        finding = check_notifications("linux", query)
        assert finding.status == "ok" and "on demand" in finding.summary
    finally:
        stop_process(proc)


def test_unreachable_bus_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    query = query_session_bus(f"unix:path={tmp_path / 'no-such-socket'}", timeout=1)
    with pytest.raises(OSError):
        query([NOTIFICATIONS])
    assert check_notifications("linux", query).status == "warn"
    assert check_tray(X11, "linux", True, None, ("appindicator", ""), query).status == "warn"


def test_session_bus_address(tmp_path: Path) -> None:
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
    (tmp_path / "bus").touch()
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix:path={tmp_path}/bus"


def test_doctor_end_to_end_in_a_desktop(desktop_env: dict[str, str], sni_watcher: object,
                                        tmp_path: Path) -> None:
    """The real chain: tray.tray_available, pystray's pick in a subprocess, our bus query."""
    import json
    import sys

    env = {**desktop_env, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    proc = subprocess.run([sys.executable, "-m", "tokend", "doctor", "--json"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by = {f["check"]: f for f in json.loads(proc.stdout)["findings"]}
    assert by["tray"]["status"] == "ok", by["tray"]
    assert by["tray"]["details"]["backend"] == "appindicator"
    assert by["notifications"]["status"] == "ok", by["notifications"]

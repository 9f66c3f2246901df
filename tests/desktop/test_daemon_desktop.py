"""``tokend run`` on a real (private) desktop: tray icon, notifications, clean stop.

Xvfb with trayer as the tray host, a private session bus with a fake notification
server: the daemon must pick the tray (on its main thread), publish that in
``status.json``, notify once when Claude's 5-hour window crosses a threshold of the
configured limit, and stop within 2 s on SIGTERM with the tray up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from desktop_fakes import FakeNotificationServer

from tests.daemon_harness import FakeMachine, append, claude_line, fake_machine

pytestmark = pytest.mark.desktop


@pytest.fixture
def machine() -> Iterator[FakeMachine]:
    with fake_machine(FakeMachine, "tkx") as m:
        yield m


def test_daemon_with_tray_and_notifications(
    desktop_env: dict[str, str], tray_host: Any, notifications: FakeNotificationServer,
    machine: FakeMachine,
) -> None:
    log = machine.claude / "projects" / "-w" / "s1.jsonl"
    append(log, claude_line(100, output_tokens=0))
    env = machine.environment(desktop_env, TOKEND_CLAUDE__FIVE_HOUR_TOKENS="1000")
    proc = machine.start(env=env,
                         ready=lambda data: data["agents"] and data["agents"][0]["windows"])
    data = machine.read_status()
    assert data is not None
    tray = data["daemon"]["tray"]
    assert tray and tray != "off" and not tray.startswith("headless"), tray
    append(log, claude_line(750, output_tokens=0))  # 85 % of the configured 1000 tokens
    received = notifications.wait_for(1, timeout=15)
    assert received[0].app_name == "tokend"
    assert "80" in received[0].summary + received[0].body
    started = time.monotonic()
    assert machine.stop(proc) == 0
    assert time.monotonic() - started < 2.0
    time.sleep(0.5)
    assert len(notifications.received) == 1  # one alert per threshold and window

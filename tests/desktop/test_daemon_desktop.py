"""``tokend run`` on a real (private) desktop: tray icon, notifications, clean stop.

Xvfb with trayer as the tray host, a private session bus with a fake notification
server: the daemon must pick the tray (on its main thread), publish that in
``status.json``, notify once when Claude's 5-hour window crosses a threshold of the
configured limit, and stop within 2 s on SIGTERM with the tray up.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from desktop_fakes import FakeNotificationServer

pytestmark = pytest.mark.desktop


def _line(tokens: int) -> str:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({
        "parentUuid": None, "isSidechain": False, "userType": "external", "cwd": "/w",
        "sessionId": "s1", "version": "2.1.240", "type": "assistant",
        "requestId": f"req_{uuid.uuid4().hex}",
        "message": {"model": "claude-sonnet-4-5-20250929", "id": f"msg_{uuid.uuid4().hex}",
                    "type": "message", "role": "assistant", "content": [],
                    "usage": {"input_tokens": tokens, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0, "output_tokens": 0}},
        "uuid": str(uuid.uuid4()), "timestamp": now,
    }) + "\n"


@pytest.fixture
def short_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="tkx", dir="/tmp"))  # socket paths stay short
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _log(base: Path) -> str:
    try:
        return (base / "t" / "log" / "tokend.log").read_text()[-4000:]
    except OSError:
        return "(no log)"


def _status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def test_daemon_with_tray_and_notifications(
    desktop_env: dict[str, str], tray_host: Any, notifications: FakeNotificationServer,
    short_base: Path,
) -> None:
    log = short_base / "claude" / "projects" / "-w" / "s1.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(_line(100))
    env = dict(desktop_env, HOME=str(short_base), TOKEND_HOME=str(short_base / "t"),
               CLAUDE_CONFIG_DIR=str(short_base / "claude"),
               CODEX_HOME=str(short_base / "codex"), GEMINI_CLI_HOME=str(short_base / "gem"),
               TOKEND_CLAUDE__FIVE_HOUR_TOKENS="1000", TOKEND_DAEMON__DEBOUNCE_MS="20")
    status = short_base / "t" / "run" / "status.json"
    proc = subprocess.Popen([sys.executable, "-m", "tokend", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            data = _status(status)
            if data and data["agents"] and data["agents"][0]["windows"]:
                break
            time.sleep(0.05)
        data = _status(status)
        assert data is not None, _log(short_base)
        tray = data["daemon"]["tray"]
        assert tray and tray != "off" and not tray.startswith("headless"), tray
        with log.open("a") as handle:
            handle.write(_line(750))  # 85 % of the configured 1000 tokens
        received = notifications.wait_for(1, timeout=15)
        assert received[0].app_name == "tokend"
        assert "80" in received[0].summary + received[0].body
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler-less stack: the log says where
            raise AssertionError(_log(short_base)) from None
        assert code == 0
        assert time.monotonic() - started < 2.0
        time.sleep(0.5)
        assert len(notifications.received) == 1  # one alert per threshold and window
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        assert proc.stderr is not None
        proc.stderr.close()

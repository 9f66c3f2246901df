"""Auto-checkpoint end to end: the daemon sees a window cross 80 % and saves the session.

A real ``tokend run --no-tray`` over a temp TOKEND_HOME and a fake CODEX_HOME. A
Codex rollout is appended line by line the way Codex writes it; its
``rate_limits`` (the official percent) move the 5-hour window from 40 % to 85 %.
The checkpoint file must then appear in the session's folder with the session's
goal, command and figures (and its secret redacted), ``tokend checkpoint list``
must find it, and the resume hook must announce it once. The second test adds a
private D-Bus session bus with a fake notification server (the recipe of
``tests/desktop/``) and expects the "Checkpoint saved" notification.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_harness import (
    CodexRollout,
    FakeMachine,
    agent_window,
    fake_machine,
    stop_process,
    wait_for,
)

DESKTOP = Path(__file__).resolve().parents[1] / "desktop"
SECRET = "ghp_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"


class Machine(FakeMachine):
    """A fake machine with a project folder and a Codex session working in it."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.project = base / "acme-api"
        self.project.mkdir()
        self.rollout = CodexRollout(self.codex)
        self.session = self.rollout.session
        self.extra_env: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        inherit = {k: v for k, v in os.environ.items()
                   if not k.startswith("DBUS_") and k != "DISPLAY"}
        return self.environment(inherit, **self.extra_env)

    @property
    def checkpoint(self) -> Path:
        return self.project / ".tokend" / "checkpoints" / f"{self.session}.md"

    def token_count(self, tokens: int, five_hour: float) -> dict[str, Any]:
        return self.rollout.token_count(tokens, five_hour, time.time() + 2 * 3600)

    def start_session(self) -> None:
        r = self.rollout
        r.append(
            *r.head(str(self.project)),
            r.line("event_msg", {"type": "user_message",
                                 "message": "add retries to the uploader"}),
            r.line("response_item", {
                "type": "function_call", "name": "exec_command", "call_id": "c1",
                "arguments": json.dumps({"cmd": f"GITHUB_TOKEN={SECRET} gh pr list"})}),
            self.token_count(12_000, 40.0),
        )

    def push_over_80(self) -> None:
        self.rollout.append(
            self.rollout.line("event_msg", {"type": "agent_message",
                                            "message": "Retries are in."}),
            self.token_count(13_000, 85.0),
        )

    def run_daemon(self, *flags: str) -> None:
        self.start("--no-tray", *flags, timeout=30,
                   ready=lambda data: agent_window(data, "codex").get("percent") == 40.0)


@pytest.fixture
def machine() -> Iterator[Machine]:
    with fake_machine(Machine, "tkc") as m:
        yield m


def check_checkpoint(m: Machine) -> None:
    text = wait_for(lambda: m.checkpoint.is_file() and m.checkpoint.read_text(), 20,
                    lambda: f"no checkpoint at {m.checkpoint}; {m.log()}")
    assert text.startswith("<!-- tokend checkpoint")
    assert "because the codex 5-hour window is at 85 %" in text
    assert "> add retries to the uploader" in text
    assert "- 5-hour window: 85 % (official)" in text
    assert "GITHUB_TOKEN=[REDACTED] gh pr list" in text
    assert SECRET not in text
    assert "> Retries are in." in text


def test_daemon_writes_the_checkpoint_when_the_window_crosses_80(machine: Machine) -> None:
    m = machine
    m.start_session()
    m.run_daemon("--no-notify")
    time.sleep(0.5)
    assert not m.checkpoint.exists()  # 40 %: nothing to save yet
    m.push_over_80()
    check_checkpoint(m)

    listed = m.cli("checkpoint", "list", "--cwd", str(m.project))
    assert listed.returncode == 0 and str(m.checkpoint) in listed.stdout

    start = {"session_id": "next-session", "transcript_path": "/x.jsonl",
             "cwd": str(m.project), "hook_event_name": "SessionStart", "source": "startup"}
    told = m.cli("hook", stdin=json.dumps(start))
    assert told.returncode == 0
    context = json.loads(told.stdout)["hookSpecificOutput"]
    assert context["hookEventName"] == "SessionStart"
    assert str(m.checkpoint) in context["additionalContext"]
    again = m.cli("hook", stdin=json.dumps({**start, "hook_event_name": "UserPromptSubmit",
                                               "prompt": "hi"}))
    assert (again.returncode, again.stdout) == (0, "")


def test_checkpoint_saved_notification(machine: Machine) -> None:
    sys.path.insert(0, str(DESKTOP))
    from desktop_fakes import FakeNotificationServer  # type: ignore[import-not-found]
    from desktop_harness import BUS_CONFIG, need  # type: ignore[import-not-found]

    need("dbus-daemon")
    m = machine
    config = m.base / "bus.conf"
    config.write_text(BUS_CONFIG.format(dir=m.base), encoding="utf-8")
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    server: FakeNotificationServer | None = None
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        server = FakeNotificationServer(address).start()
        m.extra_env = {"DBUS_SESSION_BUS_ADDRESS": address, "NO_AT_BRIDGE": "1"}
        m.start_session()
        m.run_daemon()
        m.push_over_80()
        check_checkpoint(m)
        sent = wait_for(
            lambda: [n for n in server.received if n.summary == "Checkpoint saved"], 10,
            lambda: f"notifications: {server.received if server else None}; {m.log()}")
        assert len(sent) == 1
        assert str(m.project) in sent[0].body
        time.sleep(1.0)  # later recomputes must not repeat it
        assert len([n for n in server.received if n.summary == "Checkpoint saved"]) == 1
    finally:
        m.close()
        if server is not None:
            server.stop()
        stop_process(bus)
        if bus.stdout is not None:
            bus.stdout.close()

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
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DESKTOP = REPO / "tests" / "desktop"
SECRET = "ghp_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def wait_for(pred: Callable[[], Any], timeout: float, why: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {why()}")


class Machine:
    """TOKEND_HOME, a fake HOME and CODEX_HOME, a project folder, and the daemon."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "h"
        self.tokend = base / "t"
        self.codex = base / "codex"
        self.project = base / "acme-api"
        for folder in (self.home, self.project):
            folder.mkdir()
        self.session = str(uuid.uuid4())
        day = datetime.now(timezone.utc)
        self.rollout = self.codex / "sessions" / f"{day:%Y/%m/%d}" / (
            f"rollout-{day:%Y-%m-%dT%H-%M-%S}-{self.session}.jsonl")
        self.extra_env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.total = 0

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TOKEND_", "XDG_", "DBUS_", "CLAUDE_", "CODEX_"))}
        env.pop("DISPLAY", None)
        env.update(
            HOME=str(self.home), TOKEND_HOME=str(self.tokend), CODEX_HOME=str(self.codex),
            CLAUDE_CONFIG_DIR=str(self.base / "claude"), GEMINI_CLI_HOME=str(self.base / "gem"),
            PYTHONPATH=str(REPO), TOKEND_DAEMON__DEBOUNCE_MS="20", TZ="UTC",
            **self.extra_env,
        )
        return env

    @property
    def checkpoint(self) -> Path:
        return self.project / ".tokend" / "checkpoints" / f"{self.session}.md"

    def append(self, *lines: dict[str, Any]) -> None:
        self.rollout.parent.mkdir(parents=True, exist_ok=True)
        with open(self.rollout, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(line) + "\n" for line in lines))

    def line(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": now_iso(), "type": kind, "payload": payload}

    def token_count(self, tokens: int, five_hour: float) -> dict[str, Any]:
        self.total += tokens
        resets = int(time.time()) + 2 * 3600

        def usage(n: int) -> dict[str, int]:
            return {"input_tokens": n, "cached_input_tokens": 0, "output_tokens": 0,
                    "reasoning_output_tokens": 0, "total_tokens": n}

        return self.line("event_msg", {
            "type": "token_count",
            "info": {"total_token_usage": usage(self.total), "last_token_usage": usage(tokens),
                     "model_context_window": 272000},
            "rate_limits": {
                "limit_id": "codex", "limit_name": None,
                "primary": {"used_percent": five_hour, "window_minutes": 300,
                            "resets_at": resets},
                "secondary": {"used_percent": 20.0, "window_minutes": 10080,
                              "resets_at": resets + 3 * 86400},
                "credits": None, "plan_type": "plus", "rate_limit_reached_type": None,
            },
        })

    def start_session(self) -> None:
        cwd = str(self.project)
        self.append(
            self.line("session_meta", {"id": self.session, "timestamp": now_iso(), "cwd": cwd,
                                       "originator": "codex_cli_rs", "cli_version": "0.153.4"}),
            self.line("turn_context", {"cwd": cwd, "model": "gpt-5.3-codex"}),
            self.line("event_msg", {"type": "user_message",
                                    "message": "add retries to the uploader"}),
            self.line("response_item", {
                "type": "function_call", "name": "exec_command", "call_id": "c1",
                "arguments": json.dumps({"cmd": f"GITHUB_TOKEN={SECRET} gh pr list"})}),
            self.token_count(12_000, 40.0),
        )

    def push_over_80(self) -> None:
        self.append(
            self.line("event_msg", {"type": "agent_message", "message": "Retries are in."}),
            self.token_count(13_000, 85.0),
        )

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tokend", *args], env=self.env, capture_output=True,
            text=True, input=stdin, timeout=30, cwd=self.base, check=False,
        )

    def run_daemon(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokend", "run", "--no-tray", *flags],
            env=self.env, cwd=self.base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        status = self.tokend / "run" / "status.json"
        wait_for(lambda: self.five_hour_percent(status) == 40.0, 30,
                 lambda: f"the daemon did not publish 40 %; {self.stderr()}")

    def five_hour_percent(self, status: Path) -> float | None:
        try:
            data = json.loads(status.read_text())
        except (OSError, ValueError):
            return None
        for agent in data.get("agents", []):
            for window in agent.get("windows", []):
                if agent.get("agent") == "codex" and window.get("kind") == "5h":
                    return window.get("percent")  # type: ignore[no-any-return]
        return None

    def stderr(self) -> str:
        if self.proc is None or self.proc.poll() is None or self.proc.stderr is None:
            log = self.tokend / "log" / "tokend.log"
            return log.read_text()[-3000:] if log.exists() else "(daemon still running)"
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()


@pytest.fixture
def machine() -> Iterator[Machine]:
    # a short base path: the control socket's path must stay under ~100 bytes
    base = Path(tempfile.mkdtemp(prefix="tkc", dir="/tmp"))
    m = Machine(base)
    try:
        yield m
    finally:
        m.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def check_checkpoint(m: Machine) -> None:
    text = wait_for(lambda: m.checkpoint.is_file() and m.checkpoint.read_text(), 20,
                    lambda: f"no checkpoint at {m.checkpoint}; daemon log: {m.stderr()}")
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
    from desktop_harness import (  # type: ignore[import-not-found]
        BUS_CONFIG,
        need,
        stop_process,
    )

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
            lambda: f"notifications: {server.received if server else None}; {m.stderr()}")
        assert len(sent) == 1
        assert str(m.project) in sent[0].body
        time.sleep(1.0)  # later recomputes must not repeat it
        assert len([n for n in server.received if n.summary == "Checkpoint saved"]) == 1
    finally:
        m.stop()
        if server is not None:
            server.stop()
        stop_process(bus)
        if bus.stdout is not None:
            bus.stdout.close()

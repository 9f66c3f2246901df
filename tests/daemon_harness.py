"""The daemon under test: a fake machine, ``tokend run`` as a real process, stand-in adapters.

Shared by the daemon tests of ``tests/integration`` and ``tests/desktop``, which all
need the same things: a short temp base (a unix socket path must stay under ~100
bytes, which pytest's ``tmp_path`` does not promise) holding TOKEND_HOME, HOME and
the agent homes; an environment in which none of the real machine's homes leak in;
a daemon started as ``python -m tokend run`` and known to be up only once it has
published a ``status.json`` with its own pid; a stop that says why when it hangs;
and log lines in the agents' formats. Import it as ``tests.daemon_harness`` (the
suite runs with ``pythonpath=["."]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]

_AGENT_VARS = ("TOKEND_", "XDG_", "CLAUDE_", "CODEX_", "GEMINI_")
"""Variables of the real machine that would point tokend at real homes."""


def wait_for(pred: Callable[[], Any], timeout: float = 10.0,
             why: Callable[[], str] = lambda: "") -> Any:
    """Poll ``pred`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s {why()}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 5 s: whatever a test started must not outlive it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- log lines ------------------------------------------------------------------------


def now_iso(epoch: float | None = None) -> str:
    """A timestamp as the agents write it (UTC, milliseconds, ``Z``); default now."""
    when = datetime.now(timezone.utc) if epoch is None else datetime.fromtimestamp(
        epoch, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(text)


def claude_line(tokens: int = 100, session: str = "s1", *, output_tokens: int = 10,
                **over: Any) -> str:
    """An assistant line as Claude Code writes it (one API response), newline included."""
    line = {
        "parentUuid": None, "isSidechain": False, "userType": "external",
        "cwd": "/home/dev/acme", "sessionId": session, "version": "2.1.240",
        "gitBranch": "main", "type": "assistant", "requestId": f"req_{uuid.uuid4().hex}",
        "message": {
            "model": "claude-sonnet-4-5-20250929", "id": f"msg_{uuid.uuid4().hex}",
            "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
            "usage": {
                "input_tokens": tokens, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        },
        "uuid": str(uuid.uuid4()), "timestamp": now_iso(),
    }
    line.update(over)
    return json.dumps(line) + "\n"


class CodexRollout:
    """A Codex rollout file, appended line by line the way Codex CLI writes it.

    Its ``token_count`` events carry ``rate_limits``, the official percent: the
    simplest way to put a window at an exact percent.
    """

    def __init__(self, codex_home: Path) -> None:
        self.session = str(uuid.uuid4())
        day = datetime.now(timezone.utc)
        self.path = codex_home / "sessions" / f"{day:%Y/%m/%d}" / (
            f"rollout-{day:%Y-%m-%dT%H-%M-%S}-{self.session}.jsonl")
        self.total = 0

    def append(self, *lines: dict[str, Any]) -> None:
        append(self.path, "".join(json.dumps(line) + "\n" for line in lines))

    def line(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": now_iso(), "type": kind, "payload": payload}

    def head(self, cwd: str) -> list[dict[str, Any]]:
        """The lines a session starts with: ``session_meta`` and ``turn_context``."""
        return [
            self.line("session_meta", {"id": self.session, "timestamp": now_iso(), "cwd": cwd,
                                       "originator": "codex_cli_rs", "cli_version": "0.153.4"}),
            self.line("turn_context", {"cwd": cwd, "model": "gpt-5.3-codex"}),
        ]

    def token_count(self, tokens: int, five_hour: float, resets_at: float, *,
                    weekly: float = 20.0, weekly_resets_at: float | None = None
                    ) -> dict[str, Any]:
        """A ``token_count`` event: the 5-hour window at ``five_hour`` %."""
        self.total += tokens

        def usage(n: int) -> dict[str, int]:
            return {"input_tokens": n, "cached_input_tokens": 0, "output_tokens": 0,
                    "reasoning_output_tokens": 0, "total_tokens": n}

        week_reset = resets_at + 3 * 86400 if weekly_resets_at is None else weekly_resets_at
        return self.line("event_msg", {
            "type": "token_count",
            "info": {"total_token_usage": usage(self.total), "last_token_usage": usage(tokens),
                     "model_context_window": 272000},
            "rate_limits": {
                "limit_id": "codex", "limit_name": None,
                "primary": {"used_percent": five_hour, "window_minutes": 300,
                            "resets_at": int(resets_at)},
                "secondary": {"used_percent": weekly, "window_minutes": 10080,
                              "resets_at": int(week_reset)},
                "credits": None, "plan_type": "plus", "rate_limit_reached_type": None,
            },
        })


# -- what the daemon publishes ----------------------------------------------------------


def read_status(path: Path) -> dict[str, Any] | None:
    """``status.json``, or ``None`` while there is none (or, never, half of one)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def agent_window(data: dict[str, Any] | None, agent: str, kind: str = "5h") -> dict[str, Any]:
    """The window of the first found root of ``agent`` (empty dict when absent)."""
    for entry in (data or {}).get("agents", []):
        if entry["agent"] == agent and entry.get("found", True):
            for w in entry["windows"]:
                if w["kind"] == kind:
                    return w  # type: ignore[no-any-return]
    return {}


# -- the fake machine and its daemons ----------------------------------------------------


class FakeMachine:
    """TOKEND_HOME, HOME and the agent homes under one short base, and the daemons run there."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "h"
        self.tokend = base / "t"
        self.claude = base / "claude"  # CLAUDE_CONFIG_DIR
        self.codex = base / "codex"  # CODEX_HOME
        self.gemini = base / "gem"  # GEMINI_CLI_HOME
        self.home.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    def environment(self, inherit: Mapping[str, str], **extra: str) -> dict[str, str]:
        """``inherit`` with this machine's homes in place of the real ones, UTC, and a
        20 ms debounce (the tests wait for what the daemon publishes)."""
        env = {k: v for k, v in inherit.items() if not k.startswith(_AGENT_VARS)}
        env.update(
            HOME=str(self.home), TOKEND_HOME=str(self.tokend),
            CLAUDE_CONFIG_DIR=str(self.claude), CODEX_HOME=str(self.codex),
            GEMINI_CLI_HOME=str(self.gemini), TOKEND_DAEMON__DEBOUNCE_MS="20", TZ="UTC",
            PYTHONPATH=os.pathsep.join([str(REPO), *(
                p for p in inherit.get("PYTHONPATH", "").split(os.pathsep)
                if p and p != str(REPO))]),
        )
        env.update(extra)
        return env

    @property
    def env(self) -> dict[str, str]:
        """The environment of this machine's processes; subclasses pick what it inherits."""
        return self.environment(os.environ)

    @property
    def run_dir(self) -> Path:
        return self.tokend / "run"

    @property
    def status_json(self) -> Path:
        return self.run_dir / "status.json"

    @property
    def socket(self) -> Path:
        return self.run_dir / "tokend.sock"

    def config(self, text: str) -> None:
        path = self.tokend / "config" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def read_status(self) -> dict[str, Any] | None:
        return read_status(self.status_json)

    def request(self, cmd: str, *, timeout: float = 15, **fields: Any) -> Any:
        from tokend import ipc

        return ipc.request(self.socket, cmd, timeout=timeout, **fields)

    def cli(self, *args: str, stdin: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``tokend ARGS`` on this machine, to completion."""
        return subprocess.run(
            [sys.executable, "-m", "tokend", *args], env=self.env, capture_output=True,
            text=True, input=stdin, timeout=timeout, cwd=self.base, check=False,
        )

    def spawn(self, *flags: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``tokend run FLAGS`` and return at once; its stderr goes to a file of
        its own (a pipe nobody reads would block a daemon that logs a lot)."""
        with open(self.base / f"stderr-{len(self.procs)}.txt", "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tokend", "run", *flags],
                env=dict(env if env is not None else self.env), cwd=self.base,
                stdout=subprocess.DEVNULL, stderr=stderr,
            )
        self.procs.append(proc)
        return proc

    def start(self, *flags: str, env: Mapping[str, str] | None = None, timeout: float = 20.0,
              ready: Callable[[dict[str, Any]], Any] | None = None) -> subprocess.Popen[bytes]:
        """Start ``tokend run FLAGS``; return once it has published a snapshot of its own
        (and one that ``ready`` accepts, when given)."""
        proc = self.spawn(*flags, env=env)

        def published() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"tokend run exited {proc.returncode}\n{self.log()}")
            data = self.read_status()
            return bool(data and data.get("daemon", {}).get("pid") == proc.pid
                        and (ready is None or ready(data)))

        wait_for(published, timeout, lambda: f"for the daemon to publish\n{self.log()}")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
        """SIGTERM, and the exit code (a clean stop is well under the 5 s allowed)."""
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tokend did not stop on SIGTERM\n{self.log()}") from None

    def log(self) -> str:
        """The tails of the daemon's log file and of the last daemon's stderr."""
        parts = []
        for name, path in (("daemon log", self.tokend / "log" / "tokend.log"),
                           ("stderr", self.base / f"stderr-{len(self.procs) - 1}.txt")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            parts.append(f"--- {name} (tail):\n{text[-3000:]}")
        return "\n".join(parts) or "(no daemon log)"

    def close(self) -> None:
        """Stop whatever still runs."""
        for proc in self.procs:
            stop_process(proc)


M = TypeVar("M", bound=FakeMachine)


@contextlib.contextmanager
def fake_machine(factory: Callable[[Path], M], prefix: str = "tkd") -> Iterator[M]:
    """A machine in a fresh short base under /tmp; its daemons stopped and the base
    removed afterwards (the body of the tests' machine fixtures)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    machine = factory(base)
    try:
        yield machine
    finally:
        machine.close()
        shutil.rmtree(base, ignore_errors=True)


# -- the daemon in this process -----------------------------------------------------------


class FakeNotifier:
    """A stand-in :class:`tokend.notify.Notifier`: records ``(title, body, urgency, on_click)``."""

    sent: ClassVar[list[tuple[str, str, str, Any]]] = []
    """Class-wide: the daemon makes its own instance."""

    def __init__(self, app_name: str = "tokend", icon: Path | None = None) -> None:
        pass

    def send(self, title: str, body: str, urgency: str = "normal", on_click: Any = None) -> None:
        FakeNotifier.sent.append((title, body, urgency, on_click))

    def close(self) -> None:
        pass


@contextlib.contextmanager
def stand_in_adapters(monkeypatch: pytest.MonkeyPatch, tray: type) -> Iterator[None]:
    """Run an in-process daemon with ``tray`` as its tray and :class:`FakeNotifier`.

    ``from tokend import tray`` looks at the package attribute before sys.modules,
    and another test may have imported the real modules already, so both are
    replaced. The daemon installs signal handlers (or a signal mask) for SIGINT,
    SIGTERM and SIGHUP: they are put back afterwards.
    """
    import tokend

    tray_module = types.ModuleType("tokend.tray")
    tray_module.tray_available = lambda env: (True, "stand-in")  # type: ignore[attr-defined]
    tray_module.Tray = tray  # type: ignore[attr-defined]
    notify = types.ModuleType("tokend.notify")
    notify.Notifier = FakeNotifier  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokend.tray", tray_module)
    monkeypatch.setitem(sys.modules, "tokend.notify", notify)
    monkeypatch.setattr(tokend, "tray", tray_module, raising=False)
    monkeypatch.setattr(tokend, "notify", notify, raising=False)
    FakeNotifier.sent.clear()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)

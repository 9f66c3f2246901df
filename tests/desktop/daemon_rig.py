"""A fake machine for ``tokend run`` end to end on the private desktop.

:class:`DaemonRig` owns a short temp base (unix socket paths must stay under ~100
bytes) holding TOKEND_HOME, HOME and the agent homes, writes a Codex rollout the
way Codex CLI does (``token_count`` events whose ``rate_limits`` carry the official
percent: the simplest way to put a window at an exact percent), writes
``config.toml``, and starts / stops ``python -m tokend run`` as a real process in
the environment of the ``desktop_env`` fixture (our Xvfb display, our bus).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from desktop_harness import REPO, stop_process, wait_until

from tokend import ipc


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def hhmm(epoch: float) -> str:
    """What the daemon (TZ=UTC) prints for a reset time later today."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M")


class DaemonRig:
    """TOKEND_HOME, a fake HOME and CODEX_HOME, and the daemon processes started."""

    def __init__(self, base: Path, desktop_env: dict[str, str]) -> None:
        self.base = base
        self.home = base / "h"
        self.tokend = base / "t"
        self.codex = base / "codex"
        self.home.mkdir()
        self.session = str(uuid.uuid4())
        day = datetime.now(timezone.utc)
        self.rollout = self.codex / "sessions" / f"{day:%Y/%m/%d}" / (
            f"rollout-{day:%Y-%m-%dT%H-%M-%S}-{self.session}.jsonl")
        env = {k: v for k, v in desktop_env.items()
               if not k.startswith(("XDG_", "CLAUDE_", "CODEX_", "GEMINI_", "TOKEND_"))}
        env.update(
            HOME=str(self.home), TOKEND_HOME=str(self.tokend), CODEX_HOME=str(self.codex),
            CLAUDE_CONFIG_DIR=str(base / "claude"), GEMINI_CLI_HOME=str(base / "gem"),
            TOKEND_DAEMON__DEBOUNCE_MS="20", TZ="UTC",
        )
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.total = 0

    # -- files ------------------------------------------------------------------------

    @property
    def status_path(self) -> Path:
        return self.tokend / "run" / "status.json"

    @property
    def socket(self) -> Path:
        return self.tokend / "run" / "tokend.sock"

    def config(self, text: str) -> None:
        path = self.tokend / "config" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def _append(self, *lines: dict[str, Any]) -> None:
        self.rollout.parent.mkdir(parents=True, exist_ok=True)
        with open(self.rollout, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(line) + "\n" for line in lines))

    def _line(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": iso(time.time()), "type": kind, "payload": payload}

    def start_session(self) -> None:
        cwd = str(self.base)
        self._append(
            self._line("session_meta", {"id": self.session, "timestamp": iso(time.time()),
                                        "cwd": cwd, "originator": "codex_cli_rs",
                                        "cli_version": "0.153.4"}),
            self._line("turn_context", {"cwd": cwd, "model": "gpt-5.3-codex"}),
        )

    def codex_usage(self, five_hour: float, resets_at: float, *, weekly: float = 20.0,
                    weekly_resets_at: float | None = None, tokens: int = 10_000) -> None:
        """One ``token_count`` event: Codex's 5-hour window at ``five_hour`` %."""
        self.total += tokens

        def usage(n: int) -> dict[str, int]:
            return {"input_tokens": n, "cached_input_tokens": 0, "output_tokens": 0,
                    "reasoning_output_tokens": 0, "total_tokens": n}

        week_reset = weekly_resets_at if weekly_resets_at is not None else (
            resets_at + 3 * 86400)
        self._append(self._line("event_msg", {
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
        }))

    # -- the daemon ---------------------------------------------------------------------

    def start(self, *flags: str, env: dict[str, str] | None = None,
              timeout: float = 20.0) -> subprocess.Popen[bytes]:
        """Start ``tokend run``; return once it has published a snapshot of its own."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokend", "run", *flags], env=env or self.env,
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)

        def published() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"tokend run exited {proc.returncode}:\n{self.log()}")
            data = self.status()
            return bool(data and data.get("daemon", {}).get("pid") == proc.pid)

        try:
            wait_until(published, timeout, "the daemon to publish status.json")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM, and the exit code (a clean stop is well under the 5 s allowed)."""
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tokend did not stop on SIGTERM:\n{self.log()}") from None

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def codex_percent(self, kind: str = "5h") -> float | None:
        for agent in (self.status() or {}).get("agents", []):
            if agent.get("agent") != "codex":
                continue
            for window in agent.get("windows", []):
                if window.get("kind") == kind:
                    return window.get("percent")  # type: ignore[no-any-return]
        return None

    def wait_percent(self, percent: float, timeout: float = 15.0) -> None:
        try:
            wait_until(lambda: self.codex_percent() == percent, timeout,
                       f"the daemon to publish Codex 5h at {percent} %")
        except AssertionError as exc:
            raise AssertionError(f"{exc} (now {self.codex_percent()})\n{self.log()}") from None

    def request(self, cmd: str, **fields: Any) -> Any:
        return ipc.request(self.socket, cmd, timeout=15, **fields)

    def refresh(self) -> None:
        """Rescan and recompute now, and wait until done (alerts are decided by then)."""
        # (the daemon waits up to 30 s for the rescan; the socket timeout is ours)
        assert ipc.request(self.socket, "refresh", timeout=35) == {"done": True}

    def log(self) -> str:
        try:
            text = (self.tokend / "log" / "tokend.log").read_text(encoding="utf-8",
                                                                   errors="replace")
        except OSError:
            return "(no daemon log)"
        return "--- daemon log (tail):\n" + text[-4000:]

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc)

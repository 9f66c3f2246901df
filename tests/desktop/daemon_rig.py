"""A fake machine for ``tokend run`` end to end on the private desktop.

:class:`DaemonRig` is the shared :class:`tests.daemon_harness.FakeMachine` (a short
temp base holding TOKEND_HOME, HOME and the agent homes; ``python -m tokend run``
started and stopped as a real process) in the environment of the ``desktop_env``
fixture: our Xvfb display, our bus. It adds one Codex session whose ``token_count``
events carry ``rate_limits`` (the official percent: the simplest way to put a
window at an exact percent), and the waits the desktop tests are written in.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tests.daemon_harness import CodexRollout, FakeMachine, agent_window, wait_for


def hhmm(epoch: float) -> str:
    """What the daemon (TZ=UTC) prints for a reset time: ``14:30`` later today, ``Tue
    00:08`` tomorrow (a test run at 22:00 UTC sets a reset two hours ahead)."""
    when = datetime.fromtimestamp(epoch, timezone.utc)
    today = datetime.now(timezone.utc).date()
    return when.strftime("%H:%M" if when.date() == today else "%a %H:%M")


class DaemonRig(FakeMachine):
    """TOKEND_HOME, a fake HOME and CODEX_HOME, one Codex session, and the daemons started."""

    def __init__(self, base: Path, desktop_env: dict[str, str]) -> None:
        super().__init__(base)
        self.desktop_env = desktop_env
        self.rollout = CodexRollout(self.codex)

    @property
    def env(self) -> dict[str, str]:
        return self.environment(self.desktop_env)

    # -- the Codex session --------------------------------------------------------------

    def start_session(self) -> None:
        self.rollout.append(*self.rollout.head(str(self.base)))

    def codex_usage(self, five_hour: float, resets_at: float, *, weekly: float = 20.0,
                    weekly_resets_at: float | None = None, tokens: int = 10_000) -> None:
        """One ``token_count`` event: Codex's 5-hour window at ``five_hour`` %."""
        self.rollout.append(self.rollout.token_count(
            tokens, five_hour, resets_at, weekly=weekly, weekly_resets_at=weekly_resets_at))

    # -- what the daemon publishes ----------------------------------------------------------

    def codex_percent(self, kind: str = "5h") -> float | None:
        return agent_window(self.read_status(), "codex", kind).get("percent")

    def wait_percent(self, percent: float, timeout: float = 15.0) -> None:
        wait_for(lambda: self.codex_percent() == percent, timeout,
                 lambda: f"for the daemon to publish Codex 5h at {percent} % "
                 f"(now {self.codex_percent()})\n{self.log()}")

    def refresh(self) -> None:
        """Rescan and recompute now, and wait until done (alerts are decided by then)."""
        # (the daemon waits up to 30 s for the rescan; the socket timeout is ours)
        assert self.request("refresh", timeout=35) == {"done": True}

"""The Snapshot: everything the tray, the notifications and the statusline show.

One immutable object built by :mod:`tokend.state` for "now" and published by the
daemon as ``status.json``. Its JSON form is versioned (``version``) and read back by
:meth:`Snapshot.from_dict`; ``tokend statusline`` reads the same JSON with the
standard library only, so field names here are a public contract: add, never rename.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "PROVENANCES",
    "SNAPSHOT_VERSION",
    "AgentState",
    "DaemonInfo",
    "Drift",
    "Provenance",
    "Snapshot",
    "WindowKind",
    "WindowState",
]

SNAPSHOT_VERSION = 1

WindowKind = Literal["5h", "weekly", "daily"]
Provenance = Literal["official", "calibrated", "plan", "learned", "unknown"]
PROVENANCES: tuple[Provenance, ...] = ("official", "calibrated", "plan", "learned", "unknown")
"""Strongest first: a source earlier in this tuple beats a later one."""


@dataclass(frozen=True)
class Drift:
    """For a rolling window: when the oldest usage rolls off and how much frees up."""

    at: datetime
    frees_percent: float | None
    frees_tokens: int


@dataclass(frozen=True)
class WindowState:
    """One usage window of one agent account at one moment.

    ``percent`` is ``None`` when nothing says what 100 % is (``provenance`` is then
    ``"unknown"``): never shown as 0 %. ``observed_at`` is when an official figure
    was taken, so its age can be shown. ``pace`` is used % minus elapsed % of the
    window; ``runs_out_at`` is set only when the projection hits 100 % before reset.
    """

    kind: WindowKind
    start: datetime | None
    resets_at: datetime | None
    used_tokens: int
    used_cost: float | None
    requests: int
    percent: float | None
    provenance: Provenance
    observed_at: datetime | None = None
    limit_tokens: int | None = None
    basis: str = ""
    """Human words for where the 100 % comes from, e.g. ``"plan max5 (community estimate)"``."""
    burn_tokens_per_min: float = 0.0
    burn_usd_per_hour: float | None = None
    projected_percent: float | None = None
    runs_out_at: datetime | None = None
    pace: float | None = None
    rolling: bool = False
    drift: Drift | None = None
    unit: str = "tokens"
    """What 100 % counts: ``tokens`` (every type), ``io_tokens`` (input + output, the
    community Claude presets) or ``requests`` (Gemini's daily quota)."""
    limit_requests: int | None = None
    """100 % in requests, for a ``requests`` window (``limit_tokens`` is then ``None``)."""


@dataclass(frozen=True)
class AgentState:
    """The windows of one agent account (one root)."""

    agent: str
    account: str
    root: str
    windows: tuple[WindowState, ...]
    last_activity: datetime | None = None
    found: bool = True
    """False when the root does not exist: the agent was looked for, not measured."""


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    started_at: datetime
    last_ingest_at: datetime | None = None
    tray: str = ""
    """Tray state in words: ``"appindicator"``, ``"headless: no display"``..."""


@dataclass(frozen=True)
class Snapshot:
    """Every agent's windows at ``generated_at``."""

    generated_at: datetime
    agents: tuple[AgentState, ...]
    daemon: DaemonInfo | None = None
    alerts_paused_until: datetime | None = None
    version: int = SNAPSHOT_VERSION
    roots_looked_at: tuple[str, ...] = field(default_factory=tuple)

    def most_constrained(self, pin: str | None = None) -> tuple[AgentState, WindowState] | None:
        """The window the tray gauge shows: the highest known percent, or ``pin``.

        ``pin`` is ``"agent"`` or ``"agent:kind"``. Windows with an unknown percent
        lose to any known one.
        """
        best: tuple[AgentState, WindowState] | None = None
        for agent in self.agents:
            for window in agent.windows:
                if pin and not _pinned(pin, agent, window):
                    continue
                if best is None or _key(window) > _key(best[1]):
                    best = (agent, window)
        return best

    def to_dict(self) -> dict[str, Any]:
        encoded: dict[str, Any] = _encode(asdict(self))
        return encoded

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}")
        agents = tuple(
            AgentState(
                agent=a["agent"], account=a["account"], root=a["root"],
                windows=tuple(_window(w) for w in a["windows"]),
                last_activity=_dt(a.get("last_activity")), found=a.get("found", True),
            )
            for a in data["agents"]
        )
        daemon = data.get("daemon")
        return cls(
            generated_at=_req_dt(data["generated_at"]),
            agents=agents,
            daemon=DaemonInfo(
                pid=daemon["pid"], started_at=_req_dt(daemon["started_at"]),
                last_ingest_at=_dt(daemon.get("last_ingest_at")), tray=daemon.get("tray", ""),
            )
            if daemon
            else None,
            alerts_paused_until=_dt(data.get("alerts_paused_until")),
            roots_looked_at=tuple(data.get("roots_looked_at", ())),
        )


def _pinned(pin: str, agent: AgentState, window: WindowState) -> bool:
    name, _, kind = pin.partition(":")
    return agent.agent == name and (not kind or window.kind == kind)


def _key(window: WindowState) -> tuple[int, float]:
    return (0, 0.0) if window.percent is None else (1, window.percent)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _req_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _window(data: dict[str, Any]) -> WindowState:
    names = {f.name for f in fields(WindowState)}
    values = {k: v for k, v in data.items() if k in names}
    for key in ("start", "resets_at", "observed_at", "runs_out_at"):
        values[key] = _dt(values.get(key))
    drift = values.get("drift")
    if drift:
        values["drift"] = Drift(
            at=_req_dt(drift["at"]), frees_percent=drift.get("frees_percent"),
            frees_tokens=drift["frees_tokens"],
        )
    return WindowState(**values)

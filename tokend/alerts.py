"""Which notifications are due: threshold, reset and predictive alerts.

The rules are pure functions of the Snapshot, the settings, the clock and what was
already sent; "what was sent" lives in the store's ``alerts`` table so that a
restart of the daemon never repeats a notification. The daemon calls
:func:`due_alerts`, hands the result to the notifier and then :func:`record_sent`.

Rules (and why):

- **Thresholds** (default 60/80/95 %, per window kind) fire once per agent account,
  window kind and *window instance*. An instance is identified by its reset time.
  Official reset times jitter by seconds between observations, and an estimated
  reset (local 5-hour block) may differ from the official one by up to an hour,
  while two real instances are at least one window length apart: so two reset
  times closer than half the window length are the same instance. A rolling window
  has no fixed reset: its threshold re-arms once usage falls 5 points below it.
- When several thresholds are crossed at once only the **highest** is sent, and a
  lower one is never sent after a higher one in the same instance.
- A higher threshold is **never held back** by the rate limit; the other kinds
  (reset, predictive, checkpoint) are sent at most once per agent per
  ``min_interval_minutes``, counting every notification sent for that agent.
- **Pause** and **quiet hours** hold everything back. Held alerts are not dropped:
  if the window instance is still live when the pause ends, its highest crossed
  threshold is sent then (one notification, not the backlog).
- **Reset** ("full budget again"): by default only for an instance in which a
  threshold alert was sent (``reset = "after-warning"``), or for every instance
  seen (``"always"``), and only within two hours of the reset (older news is noise).
- **Predictive** (opt-in): once per instance when the projection says the limit is
  reached before the reset.

The formatting helpers (:func:`format_clock`, :func:`format_duration`,
:func:`agent_label`, :func:`window_name`) are shared with the tray menu, so the
menu and the notifications use the same words.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

from tokend.models import utc_from_ms, utc_ms

if TYPE_CHECKING:
    from tokend.config import AlertSettings, Settings
    from tokend.snapshot import AgentState, Snapshot, WindowKind, WindowState
    from tokend.store import Store

__all__ = [
    "AGENT_NAMES",
    "Alert",
    "AlertKind",
    "agent_label",
    "allowed",
    "due_alerts",
    "format_clock",
    "format_duration",
    "format_percent",
    "in_quiet_hours",
    "provenance_words",
    "record_sent",
    "thresholds_for",
    "window_name",
]

AlertKind = Literal["threshold", "reset", "predictive", "checkpoint"]

AGENT_NAMES = {"claude": "Claude", "codex": "Codex", "gemini": "Gemini"}

WINDOW_MINUTES: dict[str, int] = {"5h": 300, "weekly": 7 * 24 * 60, "daily": 24 * 60}
REARM_POINTS = 5.0
"""A rolling window's threshold re-arms when usage falls this many points below it."""
RESET_NEWS_MAX = timedelta(hours=2)
"""A reset older than this (the daemon was not running) is not announced."""
_SEEN_PREFIX = "alerts.window|"
"""kv rows remembering the last fixed reset time seen per agent window."""


@dataclass(frozen=True)
class Alert:
    """One notification to send. ``key`` identifies it in the ``alerts`` table."""

    key: str
    agent: str
    kind: AlertKind
    title: str
    body: str
    urgency: str
    window: str = ""
    """The window kind (``"5h"``...), empty for checkpoint alerts."""
    threshold: int | None = None
    resets_at: datetime | None = None
    """The reset time identifying the window instance; ``None`` for rolling windows."""
    ident: str = ""
    """The agent account (``agent:root``) the alert is about."""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class _Sent:
    key: str
    agent: str
    fired_at: datetime
    kind: str
    ident: str
    window: str
    threshold: int | None
    resets_at: datetime | None


# -- the rules -------------------------------------------------------------------


def due_alerts(
    snapshot: Snapshot,
    store: Store,
    settings: Settings,
    now: datetime,
    paused_until: datetime | None,
    *,
    tz: tzinfo | None = None,
) -> list[Alert]:
    """The alerts to send now, highest priority first.

    Besides reading, this keeps two small pieces of bookkeeping in the store, both
    needed whether or not anything is sent: it re-arms rolling-window alerts whose
    usage fell back, and remembers each window's latest reset time (for the reset
    notification, which must come when the window really resets).
    ``tz`` is the zone for quiet hours and the times in the texts (default: local).
    """
    cfg = settings.alerts
    sent = _load(store, now)
    thresholds_out: list[Alert] = []
    others: list[Alert] = []
    multi = _multi_account(snapshot)
    for agent in snapshot.agents:
        ident = _ident(agent)
        label = agent_label(agent, multi)
        for window in agent.windows:
            _remember(store, ident, window, now)
            if window.rolling or window.resets_at is None:
                sent = _rearm(store, sent, ident, window)
            if window.percent is None or (
                window.resets_at is not None and window.resets_at <= now
            ):
                continue
            alert = _threshold_alert(cfg, sent, agent, ident, label, window, now, tz)
            if alert is not None:
                thresholds_out.append(alert)
            if cfg.predictive:
                alert = _predictive_alert(sent, agent, ident, label, window, now, tz)
                if alert is not None:
                    others.append(alert)
        if cfg.reset != "off":
            others[:0] = _reset_alerts(cfg, store, sent, agent, ident, label, now, tz)
    if (paused_until is not None and paused_until > now) or in_quiet_hours(
        cfg.quiet_hours, now, tz
    ):
        return []
    out = list(thresholds_out)
    just_sent = {a.agent for a in thresholds_out}
    for alert in others:
        if alert.agent in just_sent and cfg.min_interval_minutes > 0:
            continue
        if _rate_ok(sent, alert.agent, now, cfg.min_interval_minutes):
            out.append(alert)
            just_sent.add(alert.agent)
    return out


def allowed(
    alert: Alert,
    store: Store,
    settings: Settings,
    now: datetime,
    paused_until: datetime | None,
    *,
    tz: tzinfo | None = None,
) -> bool:
    """Whether an alert built elsewhere (a checkpoint) may be sent now.

    The same gate :func:`due_alerts` applies: pause, quiet hours, and for every kind
    but ``threshold`` the per-agent rate limit.
    """
    cfg = settings.alerts
    if (paused_until is not None and paused_until > now) or in_quiet_hours(
        cfg.quiet_hours, now, tz
    ):
        return False
    if alert.kind == "threshold":
        return True
    return _rate_ok(_load(store, now), alert.agent, now, cfg.min_interval_minutes)


def record_sent(store: Store, alerts: Sequence[Alert], now: datetime) -> None:
    """Remember that ``alerts`` were sent at ``now`` (so neither a later call nor a
    restart repeats them), and forget rows older than 35 days."""
    now_ms = utc_ms(now)
    rows = [
        (
            a.key,
            a.agent,
            now_ms,
            json.dumps(
                {
                    "kind": a.kind,
                    "ident": a.ident,
                    "window": a.window,
                    "threshold": a.threshold,
                    "resets_at": utc_ms(a.resets_at) if a.resets_at else None,
                    **a.extra,
                },
                separators=(",", ":"),
            ),
        )
        for a in alerts
    ]
    with store.db:
        store.db.executemany(
            "INSERT INTO alerts (key, agent, fired_at, detail) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET fired_at = excluded.fired_at, "
            "detail = excluded.detail",
            rows,
        )
        store.db.execute(
            "DELETE FROM alerts WHERE fired_at < ?",
            (now_ms - int(timedelta(days=35).total_seconds() * 1000),),
        )


def thresholds_for(cfg: AlertSettings, kind: WindowKind) -> tuple[int, ...]:
    """The thresholds of one window kind: its own list if configured, else the common one."""
    if kind == "5h" and cfg.five_hour_thresholds is not None:
        return cfg.five_hour_thresholds
    if kind == "weekly" and cfg.weekly_thresholds is not None:
        return cfg.weekly_thresholds
    return cfg.thresholds


def in_quiet_hours(spec: str, now: datetime, tz: tzinfo | None = None) -> bool:
    """Whether ``now`` falls in ``"22:00-07:00"`` (local time; ranges may wrap midnight)."""
    if not spec:
        return False
    start_s, _, end_s = spec.partition("-")
    start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
    t = now.astimezone(tz).time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end


# -- words shared with the tray --------------------------------------------------


def agent_label(agent: AgentState, multi_account: bool = False) -> str:
    """``Claude``, or ``Claude (work)`` when the user has several Claude accounts."""
    name = AGENT_NAMES.get(agent.agent, agent.agent.title())
    if multi_account and agent.account:
        return f"{name} ({agent.account})"
    return name


def window_name(kind: str) -> str:
    return {"5h": "5-hour window", "weekly": "weekly window", "daily": "daily window"}.get(
        kind, f"{kind} window"
    )


def format_percent(percent: float) -> str:
    """Whole percents, rounded down (79.6 % has not reached 80 %)."""
    return f"{int(percent)} %"


def format_duration(delta: timedelta) -> str:
    """``40 min``, ``2 h 15 m``, ``3 d 4 h``: the coarsest two units that matter."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {mins} m" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_clock(when: datetime, now: datetime, tz: tzinfo | None = None) -> str:
    """``14:30`` today, ``Mon 09:00`` within a week, else ``23 Nov 09:00`` (local time)."""
    local, today = when.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if abs((local.date() - today.date()).days) < 7:
        return local.strftime("%a %H:%M")
    return local.strftime("%d %b %H:%M")


def provenance_words(window: WindowState) -> str:
    """Where the 100 % comes from, for an estimate; empty for an official figure."""
    if window.provenance == "official":
        return ""
    basis = window.basis or {
        "calibrated": "calibrated from past official figures",
        "plan": "configured plan",
        "learned": "learned from your history",
    }.get(window.provenance, "unknown limit")
    return f"Estimate: {basis}."


def _resets_words(window: WindowState, now: datetime, tz: tzinfo | None) -> str:
    if window.resets_at is None:
        return ""
    clock = format_clock(window.resets_at, now, tz)
    return f"Resets {clock} (in {format_duration(window.resets_at - now)})."


# -- the three kinds -------------------------------------------------------------


def _threshold_alert(
    cfg: AlertSettings,
    sent: list[_Sent],
    agent: AgentState,
    ident: str,
    label: str,
    window: WindowState,
    now: datetime,
    tz: tzinfo | None,
) -> Alert | None:
    assert window.percent is not None
    thresholds = thresholds_for(cfg, window.kind)
    crossed = [t for t in thresholds if window.percent >= t]
    if not crossed:
        return None
    top = max(crossed)
    before = [
        s.threshold or 0
        for s in _same_instance(sent, ident, window, "threshold")
    ]
    if before and max(before) >= top:
        return None
    words = [_resets_words(window, now, tz)]
    if int(window.percent) != top:
        words.insert(0, f"Now {format_percent(window.percent)}.")
    if window.runs_out_at is not None:
        words.append(f"At this pace it runs out at {format_clock(window.runs_out_at, now, tz)}.")
    elif window.burn_tokens_per_min > 0 and window.resets_at is not None:
        words.append("At this pace it lasts until the reset.")
    words.append(provenance_words(window))
    return Alert(
        key=_key(ident, window, "threshold", top),
        agent=agent.agent,
        kind="threshold",
        title=f"{label}: {top} % of the {window_name(window.kind)}",
        body=" ".join(w for w in words if w),
        urgency="critical" if top == max(thresholds) else "normal",
        window=window.kind,
        threshold=top,
        resets_at=_fixed_reset(window),
        ident=ident,
    )


def _predictive_alert(
    sent: list[_Sent],
    agent: AgentState,
    ident: str,
    label: str,
    window: WindowState,
    now: datetime,
    tz: tzinfo | None,
) -> Alert | None:
    runs_out = window.runs_out_at
    if runs_out is None or runs_out <= now or (window.percent or 0) >= 100:
        return None
    if window.resets_at is not None and runs_out >= window.resets_at:
        return None
    if _same_instance(sent, ident, window, "predictive"):
        return None
    before = "before the reset"
    if window.resets_at is not None:
        before += f" ({format_clock(window.resets_at, now, tz)})"
    body = (
        f"At this pace you reach the limit in {format_duration(runs_out - now)}, {before}. "
        f"{provenance_words(window)}"
    ).strip()
    return Alert(
        key=_key(ident, window, "predictive", None),
        agent=agent.agent,
        kind="predictive",
        title=f"{label}: on pace to hit the {window_name(window.kind).replace(' window', '')}"
        " limit",
        body=body,
        urgency="normal",
        window=window.kind,
        resets_at=_fixed_reset(window),
        ident=ident,
    )


def _reset_alerts(
    cfg: AlertSettings,
    store: Store,
    sent: list[_Sent],
    agent: AgentState,
    ident: str,
    label: str,
    now: datetime,
    tz: tzinfo | None,
) -> list[Alert]:
    """Windows of this agent whose instance ended in the last two hours."""
    candidates: dict[tuple[str, int], datetime] = {}
    for s in sent:
        if s.ident == ident and s.kind == "threshold" and s.resets_at is not None:
            candidates[(s.window, utc_ms(s.resets_at))] = s.resets_at
    # The last reset time seen for each window: the freshest word on when the
    # instance ends (an official time may have replaced the estimate a warning
    # was recorded with).
    prefix = f"{_SEEN_PREFIX}{ident}|"
    for key, value in store.db.execute(
        "SELECT key, value FROM kv WHERE key LIKE ?", (f"{prefix}%",)
    ).fetchall():
        if not key.startswith(prefix):
            continue
        # "<kind>", or "<kind>|passed": the instance before it, kept by _remember
        kind, ms = key[len(prefix):].split("|", 1)[0], int(value)
        warned = any(k == kind and abs(m - ms) <= _tolerance(kind) for k, m in candidates)
        if cfg.reset == "always" or warned:
            candidates[(kind, ms)] = utc_from_ms(ms)
    out: list[Alert] = []
    done: set[tuple[str, int]] = set()
    for (kind, _ms), resets_at in sorted(candidates.items(), key=lambda kv: kv[1]):
        if not (resets_at <= now < resets_at + RESET_NEWS_MAX):
            continue
        tol = _tolerance(kind)
        if any(k == kind and abs(m - utc_ms(resets_at)) <= tol for k, m in done):
            continue
        done.add((kind, utc_ms(resets_at)))
        if any(
            s.ident == ident and s.kind == "reset" and s.window == kind
            and s.resets_at is not None and abs(utc_ms(s.resets_at) - utc_ms(resets_at)) <= tol
            for s in sent
        ):
            continue
        name = window_name(kind)
        out.append(
            Alert(
                key=f"{ident}|{kind}|{utc_ms(resets_at)}|reset",
                agent=agent.agent,
                kind="reset",
                title=f"{label} {name} reset — full budget again",
                body=f"The {name} reset at {format_clock(resets_at, now, tz)}.",
                urgency="low",
                window=kind,
                resets_at=resets_at,
                ident=ident,
            )
        )
    return out


# -- bookkeeping -----------------------------------------------------------------


def _ident(agent: AgentState) -> str:
    return f"{agent.agent}:{agent.root}"


def _multi_account(snapshot: Snapshot) -> bool:
    names = [a.agent for a in snapshot.agents if a.found]
    return len(names) != len(set(names))


def _fixed_reset(window: WindowState) -> datetime | None:
    return None if window.rolling else window.resets_at


def _tolerance(kind: str) -> int:
    """Milliseconds within which two reset times name the same window instance."""
    return WINDOW_MINUTES.get(kind, 300) * 60_000 // 2


def _key(ident: str, window: WindowState, kind: str, threshold: int | None) -> str:
    reset = _fixed_reset(window)
    instance = "rolling" if reset is None else str(utc_ms(reset))
    tail = f"|{threshold}" if threshold is not None else ""
    return f"{ident}|{window.kind}|{instance}|{kind}{tail}"


def _same_instance(sent: list[_Sent], ident: str, window: WindowState, kind: str) -> list[_Sent]:
    reset = _fixed_reset(window)
    tol = _tolerance(window.kind)
    out = []
    for s in sent:
        if s.ident != ident or s.window != window.kind or s.kind != kind:
            continue
        if reset is None:
            if s.resets_at is None:
                out.append(s)
        elif s.resets_at is not None and abs(utc_ms(s.resets_at) - utc_ms(reset)) <= tol:
            out.append(s)
    return out


def _rearm(store: Store, sent: list[_Sent], ident: str, window: WindowState) -> list[_Sent]:
    """Forget rolling-window alerts the window has fallen back from."""
    drop = [
        s
        for s in _same_instance(sent, ident, window, "threshold")
        if window.percent is not None and window.percent < (s.threshold or 0) - REARM_POINTS
    ]
    if window.runs_out_at is None:
        drop += _same_instance(sent, ident, window, "predictive")
    if not drop:
        return sent
    with store.db:
        store.db.executemany("DELETE FROM alerts WHERE key = ?", [(s.key,) for s in drop])
    keys = {s.key for s in drop}
    return [s for s in sent if s.key not in keys]


def _remember(store: Store, ident: str, window: WindowState, now: datetime) -> None:
    reset = _fixed_reset(window)
    if reset is None or reset <= now:
        return
    key = f"{_SEEN_PREFIX}{ident}|{window.kind}"
    value = str(utc_ms(reset))
    old = store.get_kv(key)
    if old == value:
        return
    if old is not None and old.isdigit() and int(old) <= utc_ms(now):
        # The snapshot already shows the next instance (a weekly window always
        # does once its official reset has passed): keep the reset of the one that
        # just ended, or reset = "always" would never announce it.
        store.set_kv(f"{key}|passed", old)
    store.set_kv(key, value)


def _rate_ok(sent: list[_Sent], agent: str, now: datetime, minutes: int) -> bool:
    if minutes <= 0:
        return True
    last = max((s.fired_at for s in sent if s.agent == agent), default=None)
    return last is None or now - last >= timedelta(minutes=minutes)


def _load(store: Store, now: datetime) -> list[_Sent]:
    since = utc_ms(now - timedelta(days=15))
    out = []
    for key, agent, fired_at, detail in store.db.execute(
        "SELECT key, agent, fired_at, detail FROM alerts WHERE fired_at >= ?", (since,)
    ):
        try:
            d = json.loads(detail) if detail else {}
        except ValueError:
            d = {}
        resets = d.get("resets_at")
        out.append(
            _Sent(
                key=key,
                agent=agent,
                fired_at=utc_from_ms(int(fired_at)),
                kind=str(d.get("kind", "")),
                ident=str(d.get("ident", "")),
                window=str(d.get("window", "")),
                threshold=d.get("threshold"),
                resets_at=utc_from_ms(int(resets)) if resets is not None else None,
            )
        )
    return out

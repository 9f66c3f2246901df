"""What 100 % means for a window, and where that figure comes from.

Every percent tokend shows carries its provenance, strongest first:

``official``
    The agent itself said so: Codex ``rate_limits`` in its logs, Claude Code's
    statusLine ``rate_limits`` (source ``claude_statusline``) or a Claude
    limit-reached error line (source ``claude_limit_error``, which means 100 % until
    its reset). An official figure is shown with its age (``observed_at``) and only
    while its window has not reset: after ``resets_at`` it says nothing about the
    new window, so the next source takes over.
``calibrated``
    Local tokens divided by *tokens per percent* learned from past windows in which
    both an official percent and local tokens exist. Ratio of sums over the last
    :data:`CALIBRATION_WINDOWS` windows with at least :data:`MIN_SAMPLE_PERCENT` %:
    small percents are mostly rounding (Codex reports whole percents).
``plan``
    Explicit numbers from the config (``five_hour_tokens``, ``weekly_tokens``,
    ``daily_requests``; tokens of every type) or a plan preset. The Claude presets
    are community estimates (Claude-Code-Usage-Monitor's plan table, which counts
    input + output tokens only) and the basis says so; Anthropic publishes no token
    figure. The Gemini presets are the daily request quotas Gemini CLI documents.
``learned``
    The 90th percentile (inclusive method, so never above the largest value seen)
    of the totals of at least :data:`MIN_LEARN_WINDOWS` completed windows: "a big
    window for you", not a real limit.
``unknown``
    Nothing says what 100 % is: the percent is ``None``, never 0.

The maths is pure; :mod:`tokend.state` queries the store and calls it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tokend.config import AgentSettings
from tokend.snapshot import Provenance, WindowKind
from tokend.store import LimitRow

__all__ = [
    "CALIBRATION_WINDOWS",
    "MIN_LEARN_WINDOWS",
    "MIN_SAMPLE_PERCENT",
    "PRESETS",
    "Official",
    "PlanLimit",
    "Resolved",
    "Sample",
    "Unit",
    "current_official",
    "is_general",
    "kind_of",
    "p90",
    "plan_limit",
    "resolve",
    "tokens_per_percent",
]

Unit = Literal["tokens", "io_tokens", "requests"]
"""What a limit counts: every token type, input + output only, or requests."""

MIN_SAMPLE_PERCENT = 2.0
CALIBRATION_WINDOWS = 10
MIN_LEARN_WINDOWS = 5

FIVE_HOURS_MIN = 300
WEEK_MIN = 10080

_SOURCE_NAMES = {
    "claude_statusline": "Claude Code statusline rate_limits",
    "claude_limit_error": "Claude limit-reached message",
}


def kind_of(
    window_minutes: int | None, resets_at: datetime | None, observed_at: datetime
) -> WindowKind | None:
    """Which window an official observation is about, from its length (not its slot).

    Codex puts the weekly window in the ``primary`` slot on some plans, so the slot
    means nothing; ``window_minutes`` decides. Without a length (a bare
    limit-reached message), a reset within 5 hours means the 5-hour window.
    """
    if window_minutes:
        if window_minutes <= 12 * 60:
            return "5h"
        if window_minutes >= 5 * 1440:
            return "weekly"
        return None
    if resets_at is None or resets_at - observed_at <= timedelta(minutes=FIVE_HOURS_MIN + 1):
        return "5h"
    return "weekly"


def is_general(agent: str, limit_id: str) -> bool:
    """The all-models bucket (``codex``, ``claude``), not a model-specific weekly cap."""
    return limit_id in ("", agent)


@dataclass(frozen=True)
class Official:
    """The current official figure of one window."""

    kind: WindowKind
    percent: float
    observed_at: datetime
    resets_at: datetime | None
    window_minutes: int
    source: str
    limit_id: str = ""

    @property
    def start(self) -> datetime | None:
        if self.resets_at is None:
            return None
        return self.resets_at - timedelta(minutes=self.window_minutes)

    @property
    def label(self) -> str:
        if self.source in _SOURCE_NAMES:
            return _SOURCE_NAMES[self.source]
        return f"{self.source} rate_limits"


def current_official(
    rows: Iterable[LimitRow], agent: str, kind: WindowKind, now: datetime
) -> Official | None:
    """The newest official figure for ``kind`` whose window is still running at ``now``.

    A figure is current while ``now < resets_at``; one without a reset time is
    current for one window length after it was observed. Observations after
    ``now`` are ignored (a fake clock, or a clock that jumped back).
    """
    best: Official | None = None
    for row in rows:
        if not is_general(agent, row.limit_id) or row.observed_at > now:
            continue
        if kind_of(row.window_minutes, row.resets_at, row.observed_at) != kind:
            continue
        minutes = row.window_minutes or (FIVE_HOURS_MIN if kind == "5h" else WEEK_MIN)
        if row.resets_at is not None:
            if row.resets_at <= now:
                continue
        elif now - row.observed_at >= timedelta(minutes=minutes):
            continue
        if row.used_percent is not None:
            percent = max(0.0, float(row.used_percent))
        elif row.reached:
            percent = 100.0
        else:
            continue
        if row.reached:
            percent = max(percent, 100.0)
        cand = Official(kind, percent, row.observed_at, row.resets_at, minutes, row.source,
                        row.limit_id)
        if best is None or (cand.observed_at, cand.percent) > (best.observed_at, best.percent):
            best = cand
    return best


# -- calibration and learning ------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One past window: local tokens up to an official observation, and its percent."""

    tokens: int
    percent: float


def tokens_per_percent(samples: Sequence[Sample]) -> tuple[float, int] | None:
    """``(tokens per 1 %, windows used)`` from the newest usable samples.

    A ratio of sums, so large percents (little rounding error) weigh most.
    """
    usable = [s for s in samples if s.percent >= MIN_SAMPLE_PERCENT and s.tokens > 0]
    usable = usable[-CALIBRATION_WINDOWS:]
    if not usable:
        return None
    return sum(s.tokens for s in usable) / sum(s.percent for s in usable), len(usable)


def p90(values: Iterable[float]) -> float | None:
    """The inclusive 90th percentile of at least :data:`MIN_LEARN_WINDOWS` positive values.

    Linear interpolation between order statistics: never above the largest value,
    unlike the exclusive method, which extrapolates past it with few values.
    """
    data = sorted(v for v in values if v > 0)
    if len(data) < MIN_LEARN_WINDOWS:
        return None
    pos = 0.9 * (len(data) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    value = data[lo] + (data[hi] - data[lo]) * (pos - lo)
    return min(value, data[-1])


# -- plans -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLimit:
    amount: int
    unit: Unit
    basis: str


_CLAUDE_NOTE = (
    "community estimate of input+output tokens per 5 h (Claude-Code-Usage-Monitor's "
    "plan table), not an Anthropic figure"
)
PRESETS: dict[tuple[str, str, WindowKind], tuple[int, Unit, str]] = {
    ("claude", "pro", "5h"): (19_000, "io_tokens", _CLAUDE_NOTE),
    ("claude", "team", "5h"): (19_000, "io_tokens", _CLAUDE_NOTE + "; team is unverified"),
    ("claude", "max5", "5h"): (88_000, "io_tokens", _CLAUDE_NOTE),
    ("claude", "max20", "5h"): (220_000, "io_tokens", _CLAUDE_NOTE),
    ("gemini", "free", "daily"): (
        1000, "requests", "Gemini CLI's documented quota for a Google account (Code Assist "
        "for individuals); resets at midnight Pacific",
    ),
    ("gemini", "pro", "daily"): (
        1500, "requests", "Gemini CLI's documented quota for Google AI Pro; resets at "
        "midnight Pacific",
    ),
}
"""``(agent, plan, window) -> (amount, unit, note)``. No preset, no plan figure."""


def plan_limit(agent: str, kind: WindowKind, settings: AgentSettings) -> PlanLimit | None:
    """The configured limit of a window: explicit numbers first, then the plan preset."""
    explicit = {
        "5h": settings.five_hour_tokens,
        "weekly": settings.weekly_tokens,
        "daily": settings.daily_requests,
    }[kind]
    if explicit is not None:
        unit: Unit = "requests" if kind == "daily" else "tokens"
        key = {"5h": "five_hour_tokens", "weekly": "weekly_tokens", "daily": "daily_requests"}
        return PlanLimit(explicit, unit, f"configured {agent}.{key[kind]} = {explicit:,}")
    preset = PRESETS.get((agent, settings.plan, kind))
    if preset is None:
        return None
    amount, unit, note = preset
    return PlanLimit(amount, unit, f"plan {settings.plan}: {amount:,} {_unit_words(unit)} ({note})")


def _unit_words(unit: Unit) -> str:
    return {"tokens": "tokens", "io_tokens": "input+output tokens", "requests": "requests"}[unit]


# -- resolution ----------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """The percent of a window and everything needed to show where it came from.

    ``limit`` is 100 % in ``unit``; for an official figure it is inferred from the
    local usage behind the percent (or the calibration) so a projection can be made,
    and is ``None`` when neither says.
    """

    provenance: Provenance
    percent: float | None
    limit: float | None
    unit: Unit
    basis: str
    observed_at: datetime | None = None

    @property
    def limit_tokens(self) -> int | None:
        if self.limit is None or self.unit == "requests":
            return None
        return round(self.limit)


def resolve(
    *,
    official: Official | None,
    calibration: tuple[float, int] | None,
    plan: PlanLimit | None,
    learned: tuple[float, int] | None,
    tokens: int,
    io_tokens: int,
    requests: int,
    unit: Unit = "tokens",
    marginal: tuple[int, float] | None = None,
) -> Resolved:
    """Pick the strongest source that has something to say (see the module docstring).

    ``unit`` is what the window naturally counts (``requests`` for Gemini's daily
    quota); ``learned`` is ``(p90, completed windows)`` in that unit.

    An official percent says nothing about tokens, yet the projection needs a
    scale. Best is ``marginal``: ``(local tokens, percent gained)`` between two
    official observations of this window, which holds even when part of the
    window's usage happened elsewhere (another machine, the web app); then the
    whole window's local tokens against its percent; then the calibration.
    """
    used = {"tokens": tokens, "io_tokens": io_tokens, "requests": requests}
    if official is not None:
        limit: float | None = None
        if unit == "tokens" and marginal is not None and marginal[0] > 0 \
                and marginal[1] >= MIN_SAMPLE_PERCENT:
            limit = marginal[0] / marginal[1] * 100
        elif unit == "tokens" and tokens > 0 and official.percent >= MIN_SAMPLE_PERCENT:
            limit = tokens / official.percent * 100
        elif unit == "tokens" and calibration is not None:
            limit = calibration[0] * 100
        return Resolved(
            "official", official.percent, limit, unit,
            f"{official.label}: {official.percent:g} % (official)", official.observed_at,
        )
    if calibration is not None and unit == "tokens":
        per, n = calibration
        limit = per * 100
        return Resolved(
            "calibrated", tokens / limit * 100, limit, "tokens",
            f"local tokens / {per:,.0f} tokens per 1 %, calibrated on {n} past window"
            f"{'s' if n != 1 else ''} with official figures",
        )
    if plan is not None:
        return Resolved(
            "plan", used[plan.unit] / plan.amount * 100, float(plan.amount), plan.unit,
            plan.basis,
        )
    if learned is not None:
        value, n = learned
        return Resolved(
            "learned", used[unit] / value * 100, value, unit,
            f"P90 of {n} completed windows ({value:,.0f} {_unit_words(unit)}): learned from "
            "your history, not a real limit",
        )
    return Resolved("unknown", None, None, unit, "no official figure, plan or history")

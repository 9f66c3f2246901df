"""Pure window maths: 5-hour blocks, weekly and daily windows, burn, projection, pace, drift.

Nothing here reads a clock, a file or the store: instants come in as epoch
milliseconds (or aware datetimes for calendar arithmetic) and the caller passes
"now". That keeps every rule testable with a fake clock and lets
:mod:`tokend.state` feed the same functions from SQL aggregates.

**5-hour blocks** follow Claude Code's local rule as ccusage implements it, so
``tokend blocks`` matches ``ccusage blocks`` block for block: a block starts at its
first entry's timestamp floored to the UTC hour and lasts 5 hours; the next entry
opens a new block when it is more than 5 hours after the block start or more than
5 hours after the previous entry. A pause longer than 5 hours also yields a *gap
block* from ``last entry + 5 h`` to the next entry. A block is active while
``now - last entry < 5 h`` and ``now < end``.

**Burn rate** has one definition everywhere (status, tray, projection, alerts):
the tokens (and dollars) recorded in the *burn span*, divided by its length. The
burn span ends at ``now`` and starts at ``max(now - 30 min, window start)``; its
length, for the division, is never taken as less than 5 minutes (one burst right
after a window opens must not read as an absurd rate). Because the span ends at
``now`` and not at the last event, an idle agent's rate decays as its events slide
out of the span and is exactly zero after 30 idle minutes. ccusage's own block
burn rate (first to last entry of the block) is reproduced separately by
:func:`ccusage_burn` for ``tokend blocks``.

**Projection** extends the current burn to the window's reset, never past it:
``projected = used + burn x minutes left``. ``runs_out_at`` is set only when 100 %
is reached before the reset (now, if it already is). **Pace** is used % minus
elapsed % of the window: positive means ahead of an even spend. **Drift** is for
rolling windows, which never reset: the oldest hour of usage in the window rolls
off at ``oldest + length``, and that hour's tokens are what frees up then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Protocol

__all__ = [
    "BURN_MIN_SPAN_MS",
    "BURN_SPAN_MS",
    "DAY_MS",
    "FIVE_HOURS_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "PACIFIC",
    "WEEK_MS",
    "Block",
    "Burn",
    "CcusageBurn",
    "Entry",
    "HourBucket",
    "Projection",
    "anchored_week",
    "block_bounds",
    "block_bounds_from_hours",
    "block_totals_from_hours",
    "build_blocks",
    "burn_rate",
    "burn_since",
    "ccusage_burn",
    "ccusage_projection",
    "daily_window",
    "day_starts",
    "drift",
    "floor_hour",
    "pace",
    "parse_anchor",
    "project",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
FIVE_HOURS_MS = 5 * HOUR_MS
WEEK_MS = 7 * DAY_MS
BURN_SPAN_MS = 30 * MINUTE_MS
"""How far back the burn rate looks."""
BURN_MIN_SPAN_MS = 5 * MINUTE_MS
"""The shortest span the burn rate divides by."""

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _pacific() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # pragma: no cover - no tz database (Windows without tzdata)
        return timezone(timedelta(hours=-8), "PST")


PACIFIC = _pacific()
"""Gemini CLI's free-tier daily request quota resets at midnight Pacific time."""


def floor_hour(ms: int) -> int:
    """The UTC hour an instant falls in (epoch ms), as ccusage floors block starts."""
    return ms - ms % HOUR_MS


# -- 5-hour blocks ----------------------------------------------------------------


class Entry(Protocol):
    """What a block needs of an event; :class:`tokend.store.EventRow` is one."""

    @property
    def ts_ms(self) -> int: ...
    @property
    def input(self) -> int: ...
    @property
    def output(self) -> int: ...
    @property
    def cache_read(self) -> int: ...
    @property
    def cache_write_5m(self) -> int: ...
    @property
    def cache_write_1h(self) -> int: ...
    @property
    def cost(self) -> float | None: ...
    @property
    def model(self) -> str: ...


@dataclass(frozen=True)
class Block:
    """One 5-hour block (or the gap between two), with its totals.

    ``first_ms``/``last_ms`` are the first and last entry (``None`` for a gap);
    ``cost`` sums the priced entries only.
    """

    start_ms: int
    end_ms: int
    is_gap: bool = False
    entries: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    input: int = 0
    output: int = 0
    cache_create: int = 0
    cache_read: int = 0
    cost: float = 0.0
    models: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_create + self.cache_read

    def is_active(self, now_ms: int, duration_ms: int = FIVE_HOURS_MS) -> bool:
        """ccusage's rule: not a gap, last entry less than a block ago, not ended."""
        return (
            not self.is_gap
            and self.last_ms is not None
            and now_ms - self.last_ms < duration_ms
            and now_ms < self.end_ms
        )


class _Acc:
    """A block being filled."""

    __slots__ = ("cache_create", "cache_read", "cost", "entries", "first", "input", "last",
                 "models", "output", "start")

    def __init__(self, start: int, first: int) -> None:
        self.start = start
        self.first = first
        self.last = first
        self.entries = 0
        self.input = self.output = self.cache_create = self.cache_read = 0
        self.cost = 0.0
        self.models: dict[str, None] = {}

    def block(self, duration_ms: int) -> Block:
        return Block(
            start_ms=self.start, end_ms=self.start + duration_ms, entries=self.entries,
            first_ms=self.first, last_ms=self.last, input=self.input, output=self.output,
            cache_create=self.cache_create, cache_read=self.cache_read, cost=self.cost,
            models=tuple(self.models),
        )


def _opens_block(ts: int, start: int, last: int, duration_ms: int) -> bool:
    return ts - start > duration_ms or ts - last > duration_ms


def build_blocks(
    entries: Iterable[Entry],
    duration_ms: int = FIVE_HOURS_MS,
    label: Callable[[Entry], str] | None = None,
) -> list[Block]:
    """Blocks and gap blocks over time-ordered entries, by start time (module docstring).

    ``label`` names an entry's model in ``Block.models`` (default: ``entry.model``).
    """
    out: list[Block] = []
    acc: _Acc | None = None
    for e in entries:
        ts = e.ts_ms
        if acc is not None and _opens_block(ts, acc.start, acc.last, duration_ms):
            out.append(acc.block(duration_ms))
            if ts - acc.last > duration_ms:
                out.append(Block(start_ms=acc.last + duration_ms, end_ms=ts, is_gap=True))
            acc = None
        if acc is None:
            acc = _Acc(floor_hour(ts), ts)
        acc.last = ts
        acc.entries += 1
        acc.input += e.input
        acc.output += e.output
        acc.cache_create += e.cache_write_5m + e.cache_write_1h
        acc.cache_read += e.cache_read
        if e.cost is not None:
            acc.cost += e.cost
        acc.models[e.model if label is None else label(e)] = None
    if acc is not None:
        out.append(acc.block(duration_ms))
    # A gap starts at "last entry + 5 h", which can be after the next block's floored
    # start; ccusage lists blocks by start time, and so do we.
    out.sort(key=lambda b: b.start_ms)
    return out


def block_bounds(
    times: Iterable[int], duration_ms: int = FIVE_HOURS_MS
) -> tuple[int, int, int] | None:
    """``(start, end, last entry)`` of the last block over time-ordered instants.

    The caller must start ``times`` right after a pause longer than a block (or at
    the very first event), or the chain of block starts is not the one the whole
    history gives.
    """
    start = last = None
    for ts in times:
        if start is None or last is None or _opens_block(ts, start, last, duration_ms):
            start = floor_hour(ts)
        last = ts
    if start is None or last is None:
        return None
    return start, start + duration_ms, last


@dataclass(frozen=True)
class HourBucket:
    """The usage of one UTC hour: what SQL hands back grouped by hour."""

    hour_ms: int
    tokens: int
    requests: int
    first_ms: int
    last_ms: int


def block_totals_from_hours(
    hours: Sequence[HourBucket], duration_ms: int = FIVE_HOURS_MS
) -> list[tuple[int, int]]:
    """``(block start, tokens)`` of each block, computed from hourly totals.

    Block starts and ends fall on whole hours, so the hourly grouping gives the
    same blocks as the per-entry rule except when an entry sits exactly on a block's
    end millisecond; good enough for learning a typical block size, and a year of
    history costs a few thousand rows instead of millions.
    """
    out: list[tuple[int, int]] = []
    start = last = None
    total = 0
    for h in hours:
        if start is None or last is None or _opens_block(h.first_ms, start, last, duration_ms):
            if start is not None:
                out.append((start, total))
            start, total = floor_hour(h.first_ms), 0
        total += h.tokens
        last = h.last_ms
    if start is not None:
        out.append((start, total))
    return out


def block_bounds_from_hours(
    hours: Sequence[HourBucket], duration_ms: int = FIVE_HOURS_MS
) -> tuple[int, int, int] | None:
    """:func:`block_bounds` over hourly totals (same caveat as :func:`block_totals_from_hours`)."""
    start = last = None
    for h in hours:
        if start is None or last is None or _opens_block(h.first_ms, start, last, duration_ms):
            start = floor_hour(h.first_ms)
        last = h.last_ms
    if start is None or last is None:
        return None
    return start, start + duration_ms, last


# -- ccusage's block burn and projection --------------------------------------------


@dataclass(frozen=True)
class CcusageBurn:
    tokens_per_minute: float
    tokens_per_minute_for_indicator: float
    cost_per_hour: float


def ccusage_burn(block: Block) -> CcusageBurn | None:
    """ccusage's block burn rate: totals over first-to-last entry (none for one entry)."""
    if block.first_ms is None or block.last_ms is None:
        return None
    minutes = (block.last_ms - block.first_ms) / MINUTE_MS
    if minutes <= 0:
        return None
    return CcusageBurn(
        tokens_per_minute=block.total / minutes,
        tokens_per_minute_for_indicator=(block.input + block.output) / minutes,
        cost_per_hour=block.cost / minutes * 60,
    )


def ccusage_projection(block: Block, now_ms: int) -> tuple[int, float, int] | None:
    """``(total tokens, total cost, remaining minutes)`` at the block's end, as ccusage."""
    burn = ccusage_burn(block)
    if burn is None:
        return None
    remaining = max(0, round((block.end_ms - now_ms) / MINUTE_MS))
    tokens = round(block.total + burn.tokens_per_minute * remaining)
    cost = round(block.cost + burn.cost_per_hour / 60 * remaining, 2)
    return tokens, cost, remaining


# -- weekly and daily windows ------------------------------------------------------


def parse_anchor(anchor: str) -> tuple[int, time] | None:
    """``"mon 09:00"`` as ``(weekday 0-6, local time)``; ``None`` for ``"rolling"``."""
    text = anchor.strip().lower()
    if text == "rolling":
        return None
    day, _, clock = text.partition(" ")
    hour, _, minute = clock.strip().partition(":")
    return _WEEKDAYS.index(day), time(int(hour), int(minute))


def _local_instant(day: date, at: time, zone: tzinfo) -> datetime:
    """A wall-clock time on a day in ``zone``; a time skipped by DST moves forward."""
    naive = datetime.combine(day, at)
    value = naive.replace(tzinfo=zone)
    roundtrip = value.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    if roundtrip != naive:  # in a spring-forward gap: take the first instant after it
        value = value.astimezone(timezone.utc).astimezone(zone)
    return value.astimezone(timezone.utc)


def anchored_week(
    now: datetime, weekday: int, at: time, zone: tzinfo
) -> tuple[datetime, datetime]:
    """The calendar week containing ``now`` that starts on ``weekday`` at ``at`` in ``zone``.

    Wall-clock arithmetic: the week starts at the same local time every week, so a
    week that spans a DST change lasts 167 or 169 hours, as a user's calendar says.
    Returns UTC ``(start, end)`` with ``start <= now < end``.
    """
    local = now.astimezone(zone)
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    start = _local_instant(day, at, zone)
    if start > now:
        day -= timedelta(days=7)
        start = _local_instant(day, at, zone)
    end = _local_instant(day + timedelta(days=7), at, zone)
    return start, end


def daily_window(now: datetime, zone: tzinfo = PACIFIC) -> tuple[datetime, datetime]:
    """The local calendar day containing ``now`` in ``zone`` (UTC start, end)."""
    day = now.astimezone(zone).date()
    return (
        _local_instant(day, time(0, 0), zone),
        _local_instant(day + timedelta(days=1), time(0, 0), zone),
    )


def day_starts(since: datetime, until: datetime, zone: tzinfo = PACIFIC) -> Iterator[datetime]:
    """Local midnights in ``zone`` from the day of ``since`` through ``until``."""
    day = since.astimezone(zone).date()
    while True:
        start = _local_instant(day, time(0, 0), zone)
        if start > until:
            return
        yield start
        day += timedelta(days=1)


# -- burn, projection, pace, drift --------------------------------------------------


@dataclass(frozen=True)
class Burn:
    tokens_per_min: float
    usd_per_hour: float | None


def burn_since(now_ms: int, window_start_ms: int | None) -> int:
    """Where the burn span starts: 30 minutes back, not before the window."""
    since = now_ms - BURN_SPAN_MS
    return since if window_start_ms is None else max(since, window_start_ms)


def burn_rate(tokens: int, cost: float | None, since_ms: int, now_ms: int) -> Burn:
    """Tokens/min and $/h of the usage recorded in ``[since_ms, now_ms]``."""
    span_min = max(now_ms - since_ms, BURN_MIN_SPAN_MS) / MINUTE_MS
    return Burn(
        tokens_per_min=tokens / span_min,
        usd_per_hour=None if cost is None else cost / span_min * 60,
    )


@dataclass(frozen=True)
class Projection:
    percent: float
    """Percent used at the reset if the current burn goes on."""
    runs_out_at: datetime | None


def project(
    percent: float,
    tokens_per_min: float,
    limit_tokens: float,
    now: datetime,
    resets_at: datetime,
) -> Projection:
    """Extend the current burn to the reset (never beyond).

    ``limit_tokens`` converts tokens to percent (100 % = ``limit_tokens``).
    """
    if percent >= 100:
        return Projection(percent=max(percent, 100.0), runs_out_at=now)
    minutes_left = max(0.0, (resets_at - now).total_seconds() / 60)
    if tokens_per_min <= 0 or limit_tokens <= 0:
        return Projection(percent=percent, runs_out_at=None)
    pct_per_min = tokens_per_min / limit_tokens * 100
    projected = percent + pct_per_min * minutes_left
    runs_out: datetime | None = None
    to_full = (100 - percent) / pct_per_min
    if to_full < minutes_left:
        runs_out = now + timedelta(minutes=to_full)
    return Projection(percent=projected, runs_out_at=runs_out)


def pace(percent: float | None, start: datetime | None, end: datetime | None,
         now: datetime) -> float | None:
    """Used % minus elapsed % of the window; ``None`` when either is unknown."""
    if percent is None or start is None or end is None or end <= start:
        return None
    elapsed = (now - start) / (end - start) * 100
    return percent - min(100.0, max(0.0, elapsed))


def drift(
    oldest_ms: int | None,
    oldest_hour_tokens: int,
    window_ms: int,
    limit_tokens: float | None,
) -> tuple[int, int, float | None] | None:
    """``(when, tokens, percent)`` the oldest hour of a rolling window frees up.

    ``oldest_hour_tokens`` is the usage in ``[oldest, oldest + 1 h)``; it has all
    rolled off by ``oldest + 1 h + length``, the first of it at ``oldest + length``,
    which is the instant returned.
    """
    if oldest_ms is None:
        return None
    pct = None if not limit_tokens else oldest_hour_tokens / limit_tokens * 100
    return oldest_ms + window_ms, oldest_hour_tokens, pct

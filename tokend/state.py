"""Build the Snapshot: every agent account's windows at one instant.

The daemon calls :func:`build_snapshot` on every change, so it must stay fast
whatever the size of the history (target: under 50 ms with two million events).
Two rules make that hold:

- the live part of each window is a handful of indexed SQL range sums
  (:meth:`~tokend.store.Store.totals` and friends), never a walk over events;
- what is historical (learned P90 sizes, calibration against official figures)
  only changes when a window completes, so it is cached in memory and in the
  store's ``kv`` table, keyed by the window that is current (a new key appears
  exactly when the previous window has completed).

Windows per agent: Claude and Codex have a 5-hour and a weekly window; Gemini CLI's
quota is a daily request count that resets at midnight Pacific, so Gemini has one
``daily`` window counted in requests. Each root (account) is its own
:class:`~tokend.snapshot.AgentState`. A root without any event or official figure
has no windows at all: nothing was measured, so nothing is shown as 0 %.

The 5-hour window starts at ``resets_at - window length`` when an official reset is
known, else at the local block rule (:mod:`tokend.windows`; used for Codex too,
whose own window is also 5 hours from first use). The weekly window starts at
the official reset minus a week; after that reset has passed, a whole number of
weeks after it (the agent keeps its weekly phase; observations of the last
8 days); else at the configured anchor (weekday and time in a zone, DST-correct);
else it is the rolling last 7 days, which never resets and reports a drift
instead of a projection and pace.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from pathlib import Path
from typing import Any

from tokend import limits as lim
from tokend import windows as win
from tokend.config import AgentSettings, Settings
from tokend.errors import StoreError
from tokend.models import utc_from_ms, utc_ms
from tokend.snapshot import AgentState, DaemonInfo, Drift, Snapshot, WindowKind, WindowState
from tokend.sources.base import Root
from tokend.store import LimitRow, Store, Totals

__all__ = ["DEFAULT_CACHE", "HistoryCache", "build_snapshot", "resolve_zone"]

OFFICIAL_LOOKBACK_MS = 8 * win.DAY_MS
"""Any official figure still current was observed within one week (plus slack)."""
CALIBRATION_LOOKBACK_MS = 84 * win.DAY_MS
LEARN_BLOCKS_MS = 35 * win.DAY_MS
LEARN_WEEKS = 12
LEARN_DAYS = 30
SETTLED_MS = 6 * win.HOUR_MS
"""Rows older than this (before the current hour) are taken as settled for caching."""
CHAIN_START_MS = 12 * win.HOUR_MS
CHAIN_MAX_MS = 8 * win.DAY_MS
"""How far back the 5-hour block chain is followed; beyond it (an agent busy around
the clock for over a week) the chain restarts at the first event in range."""


def resolve_zone(name: str, env: Mapping[str, str] | None = None) -> tzinfo:
    """An IANA zone, or for ``"local"`` the machine's zone with its DST rules.

    ``$TZ`` first, then the ``/etc/localtime`` link; a fixed offset only as a last
    resort (it would make anchored weeks wrong across a DST change).
    """
    from zoneinfo import ZoneInfo

    if name != "local":
        return ZoneInfo(name)
    env = os.environ if env is None else env
    tz = env.get("TZ", "").lstrip(":")
    candidates = [tz] if tz else []
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for candidate in candidates:
        try:
            return ZoneInfo(candidate)
        except (ValueError, OSError, KeyError):
            continue
    local = datetime.now(timezone.utc).astimezone().tzinfo
    return local if local is not None else timezone.utc


class HistoryCache:
    """Historical figures per root, valid until the window they were keyed by changes.

    Kept in memory (the daemon holds one for its lifetime) and mirrored to the
    store's ``kv`` table so a one-shot command starts warm. A write failure (a
    read-only store) only costs the mirror.
    """

    def __init__(self) -> None:
        self._mem: dict[str, tuple[str, Any]] = {}
        self._last: dict[str, tuple[int, int | None]] = {}
        self._mid: dict[str, tuple[str, Totals]] = {}
        self._gen: dict[str, tuple[int, int]] = {}
        self._gen_saved: dict[str, int] = {}

    def get(self, store: Store, name: str, key: str, compute: Callable[[], Any]) -> Any:
        slot = f"{store.path}|{name}"
        hit = self._mem.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        kv_key = f"windows:{name}"
        raw = store.get_kv(kv_key)
        if raw is not None:
            try:
                saved = json.loads(raw)
                if saved.get("key") == key:
                    self._mem[slot] = (key, saved["value"])
                    return saved["value"]
            except (ValueError, AttributeError, KeyError):
                pass
        value = compute()
        self._mem[slot] = (key, value)
        if not store.readonly:
            with contextlib.suppress(sqlite3.Error, StoreError):
                store.set_kv(kv_key, json.dumps({"key": key, "value": value}))
        return value

    def last_activity(self, store: Store, agent: str, root: str) -> int | None:
        """The newest event of a root, following only rows added since the last call.

        An unbounded ``MAX(ts)`` per root would walk the whole agent index for an
        empty root; the primary key range of new rows is cheap.
        """
        slot = f"{store.path}|{root}"
        max_id = store.max_event_id()
        seen = self._last.get(slot)
        kv_key = f"windows:last:{root}"
        if seen is None:
            raw = store.get_kv(kv_key)
            try:
                saved: list[int | None] = json.loads(raw) if raw else []
                if saved and saved[0] is not None:
                    seen = (int(saved[0]), None if saved[1] is None else int(saved[1]))
            except (ValueError, TypeError, IndexError, KeyError):
                seen = None
        if seen is None or seen[0] > max_id:  # nothing known, or the store was replaced
            # A root whose files were never read has no events: skip the index walk.
            last = (
                store.last_event_ms(agent=agent, root=root)
                if store.root_has_files(root)
                else None
            )
            if not store.readonly:
                with contextlib.suppress(sqlite3.Error, StoreError):
                    store.set_kv(kv_key, json.dumps([max_id, last]))
        elif seen[0] == max_id:
            return seen[1]
        else:
            new = store.last_event_ms(agent=agent, root=root, after_id=seen[0])
            last = seen[1] if new is None else max(new, seen[1] or new)
        self._last[slot] = (max_id, last)
        return last


    def generation(self, store: Store, agent: str, root: str, now_ms: int) -> int:
        """A counter that moves when rows older than the settled horizon arrive.

        Historical figures are keyed by it as well as by the current window, so a
        backfill (an old log file read late, the daemon's first scan still running)
        recomputes them at once instead of when the window completes. Checking costs
        one primary-key range query over the rows added since the last build.
        """
        slot = f"{store.path}|{root}"
        max_id = store.max_event_id()
        kv_key = f"windows:gen:{root}"
        seen = self._gen.get(slot)
        if seen is None:
            raw = store.get_kv(kv_key)
            try:
                saved: list[int] = json.loads(raw) if raw else []
                seen = (int(saved[0]), int(saved[1])) if saved else None
            except (ValueError, TypeError, IndexError):
                seen = None
            if seen is None:
                seen = (max_id, 0)
                self._save(store, kv_key, [max_id, 0])
        checked, gen = seen
        if checked > max_id:  # the store was replaced
            checked, gen = 0, gen + 1
        if checked < max_id:
            oldest = store.first_event_after(agent=agent, root=root, after_id=checked)
            settled = win.floor_hour(now_ms) - SETTLED_MS
            if oldest is not None and oldest < settled:
                gen += 1
                self._save(store, kv_key, [max_id, gen])
            elif max_id - (self._gen_saved.get(slot) or checked) > 10_000:
                self._save(store, kv_key, [max_id, gen])
                self._gen_saved[slot] = max_id
        self._gen[slot] = (max_id, gen)
        return gen

    @staticmethod
    def _save(store: Store, key: str, value: Any) -> None:
        if not store.readonly:
            with contextlib.suppress(sqlite3.Error, StoreError):
                store.set_kv(key, json.dumps(value))

    def totals(
        self, store: Store, agent: str, root: str, since_ms: int, now_ms: int, gen: int
    ) -> Totals:
        """Sums over ``[since_ms, now_ms]``, the settled middle of a long range cached.

        The range splits into a head up to the next whole hour, a middle that ends
        :data:`SETTLED_MS` before the current hour (cached: the weekly window's week
        of rows is summed once per hour, not on every change) and a live tail. The
        middle is keyed by the history generation (a backfill recomputes it) and the
        price table; a row rewritten in place in the past with the same id (a rare
        late duplicate upgrade) is only seen when the hour moves on.
        """
        settled = win.floor_hour(now_ms) - SETTLED_MS
        head_end = -(-since_ms // win.HOUR_MS) * win.HOUR_MS
        if head_end >= settled:
            return store.totals(agent=agent, root=root, since_ms=since_ms, until_ms=now_ms + 1)
        slot = f"{store.path}|{root}|{head_end}"
        key = f"{settled}:{gen}:{store.get_kv('prices')}"
        hit = self._mid.get(slot)
        if hit is not None and hit[0] == key:
            middle = hit[1]
        else:
            middle = store.totals(agent=agent, root=root, since_ms=head_end, until_ms=settled)
            # drop this root's middles of past hours or generations (bounded memory)
            prefix = f"{store.path}|{root}|"
            self._mid = {
                k: v for k, v in self._mid.items() if not k.startswith(prefix) or v[0] == key
            }
            self._mid[slot] = (key, middle)
        head = store.totals(agent=agent, root=root, since_ms=since_ms, until_ms=head_end)
        tail = store.totals(agent=agent, root=root, since_ms=settled, until_ms=now_ms + 1)
        return _join(head, middle, tail)


def _join(*parts: Totals) -> Totals:
    costs = [p.cost for p in parts if p.requests]
    firsts = [p.first_ms for p in parts if p.first_ms is not None]
    lasts = [p.last_ms for p in parts if p.last_ms is not None]
    return Totals(
        tokens=sum(p.tokens for p in parts),
        io_tokens=sum(p.io_tokens for p in parts),
        cost=(
            None if costs and all(c is None for c in costs)
            else sum(c for c in costs if c is not None)
        ),
        requests=sum(p.requests for p in parts),
        first_ms=min(firsts) if firsts else None,
        last_ms=max(lasts) if lasts else None,
    )


DEFAULT_CACHE = HistoryCache()


def build_snapshot(
    store: Store,
    roots: Iterable[Root | tuple[Any, Root]],
    settings: Settings,
    now: datetime,
    *,
    cache: HistoryCache | None = None,
    daemon: DaemonInfo | None = None,
    alerts_paused_until: datetime | None = None,
    zone: tzinfo | None = None,
) -> Snapshot:
    """Every root's windows at ``now`` (an aware datetime; the clock is the caller's).

    ``roots`` are :class:`Root` objects or the ``(source, root)`` pairs of
    :meth:`tokend.context.Context.roots`. ``zone`` overrides the weekly anchor's
    zone (tests); otherwise ``settings.weekly.timezone`` is used.
    """
    cache = DEFAULT_CACHE if cache is None else cache
    now = now.astimezone(timezone.utc)
    week_zone = zone if zone is not None else resolve_zone(settings.weekly.timezone)
    plain = [r[1] if isinstance(r, tuple) else r for r in roots]
    agents = tuple(
        _agent_state(store, root, settings, now, cache, week_zone) for root in plain
    )
    return Snapshot(
        generated_at=now,
        agents=agents,
        daemon=daemon,
        alerts_paused_until=alerts_paused_until,
        roots_looked_at=tuple(str(r.path) for r in plain),
    )


@dataclass(frozen=True)
class _Ctx:
    store: Store
    agent: str
    root: str
    now: datetime
    now_ms: int
    cache: HistoryCache
    gen: int

    def totals(self, since_ms: int | None, until_ms: int | None = None) -> Totals:
        return self.store.totals(
            agent=self.agent, root=self.root, since_ms=since_ms,
            until_ms=self.now_ms + 1 if until_ms is None else until_ms,
        )


def _agent_state(
    store: Store, root: Root, settings: Settings, now: datetime, cache: HistoryCache,
    week_zone: tzinfo,
) -> AgentState:
    agent, key = root.agent, root.key
    now_ms = utc_ms(now)
    c = _Ctx(store, agent, key, now, now_ms, cache,
             cache.generation(store, agent, key, now_ms))
    last_ms = cache.last_activity(store, agent, key)
    found = root.path.is_dir()
    rows = (
        store.latest_limits(agent=agent, root=key, since_ms=now_ms - OFFICIAL_LOOKBACK_MS)
        if agent != "gemini"
        else []
    )
    if last_ms is None and not rows:
        return AgentState(agent, root.account, str(root.path), (), None, found)
    a_settings = settings.agent(agent)
    if agent == "gemini":
        windows: tuple[WindowState, ...] = (_daily(c, a_settings),)
    else:
        windows = (
            _five_hour(c, rows, a_settings),
            _weekly(c, rows, a_settings, settings.weekly.anchor, week_zone),
        )
    last = utc_from_ms(min(last_ms, now_ms)) if last_ms is not None else None
    return AgentState(agent, root.account, str(root.path), windows, last, found)


# -- 5-hour ----------------------------------------------------------------------------


def _block_bounds(c: _Ctx, not_before_ms: int | None = None) -> tuple[int, int, int] | None:
    """The last local 5-hour block up to now, following the chain back to a long pause.

    Works on hourly totals (a few dozen rows, whatever the traffic): block starts
    and ends are whole hours, and a pause longer than 5 hours is always between
    two hours' buckets. ``not_before_ms`` (an official reset that has passed) ends
    the chain like a pause: the agent opened a new window there, so the first
    block starts at it, or at the first use after it.
    """
    span = CHAIN_START_MS
    while True:
        since = c.now_ms - span
        capped = not_before_ms is not None and since <= not_before_ms
        if capped and not_before_ms is not None:
            since = not_before_ms  # the chain ends at the reset, whatever came before
        hours = [
            win.HourBucket(*h)
            for h in c.store.hourly(agent=c.agent, root=c.root, since_ms=since,
                                    until_ms=c.now_ms + 1)
        ]
        if not hours:
            return None
        restart = 0
        for i in range(len(hours) - 1, 0, -1):
            if hours[i].first_ms - hours[i - 1].last_ms > win.FIVE_HOURS_MS:
                restart = i
                break
        if (capped or restart or hours[0].first_ms - since > win.FIVE_HOURS_MS
                or span >= CHAIN_MAX_MS):
            break
        span *= 2
    bounds = win.block_bounds_from_hours(hours[restart:])
    if bounds is not None and not_before_ms is not None and bounds[0] < not_before_ms:
        # The first use after the reset came in the reset's own hour.
        return not_before_ms, not_before_ms + win.FIVE_HOURS_MS, bounds[2]
    return bounds


def _five_hour(c: _Ctx, rows: Sequence[LimitRow], a: AgentSettings) -> WindowState:
    official = lim.current_official(rows, c.agent, "5h", c.now)
    reset = None if official is not None else _past_reset(c, rows, "5h")
    bounds = _block_bounds(c, None if reset is None else utc_ms(reset))
    active = bounds is not None and c.now_ms < bounds[1]
    start_ms: int | None
    end_ms: int | None
    if official is not None and official.resets_at is not None and official.start is not None:
        start_ms, end_ms = utc_ms(official.start), utc_ms(official.resets_at)
    elif bounds is not None and active:
        start_ms, end_ms = bounds[0], bounds[1]
    else:
        start_ms = end_ms = None

    def learn() -> list[float] | None:
        until = bounds[0] if bounds is not None and active else c.now_ms + 1
        hours = [
            win.HourBucket(*h)
            for h in c.store.hourly(agent=c.agent, root=c.root,
                                    since_ms=c.now_ms - LEARN_BLOCKS_MS, until_ms=until)
        ]
        sizes = [t for _, t in win.block_totals_from_hours(hours)]
        value = lim.p90(sizes)
        return None if value is None else [value, len([s for s in sizes if s > 0])]

    learn_key = (
        f"a{bounds[0]}" if bounds is not None and active
        else f"i{bounds[2] if bounds is not None else 'none'}"
    )
    learned = c.cache.get(c.store, f"learn:{c.root}:5h", f"{learn_key}:{c.gen}", learn)
    return _window(c, "5h", start_ms, end_ms, official, rows, a, learned, rolling=False)


# -- weekly ------------------------------------------------------------------------------


def _weekly(
    c: _Ctx, rows: Sequence[LimitRow], a: AgentSettings, anchor: str, zone: tzinfo
) -> WindowState:
    official = lim.current_official(rows, c.agent, "weekly", c.now)
    parsed = win.parse_anchor(anchor)
    rolling = False
    past = _past_reset(c, rows, "weekly")
    if official is not None and official.resets_at is not None and official.start is not None:
        start, end = official.start, official.resets_at
        tiles = [(start - timedelta(days=7 * (k + 1)), start - timedelta(days=7 * k))
                 for k in range(LEARN_WEEKS)]
    elif past is not None:
        # The official week has reset since it was last seen: the agent's weeks
        # keep that phase, so the current one is a whole number of weeks later.
        weeks = (c.now - past) // timedelta(days=7)
        start = past + timedelta(days=7 * weeks)
        end = start + timedelta(days=7)
        tiles = [(start - timedelta(days=7 * (k + 1)), start - timedelta(days=7 * k))
                 for k in range(LEARN_WEEKS)]
    elif parsed is not None:
        start, end = win.anchored_week(c.now, parsed[0], parsed[1], zone)
        tiles = []
        edge = start
        for _ in range(LEARN_WEEKS):
            prev, _ = win.anchored_week(edge - timedelta(seconds=1), parsed[0], parsed[1], zone)
            tiles.append((prev, edge))
            edge = prev
    else:
        rolling = True
        start = c.now - timedelta(days=7)
        end = c.now
        today = c.now.replace(hour=0, minute=0, second=0, microsecond=0)
        tiles = [(today - timedelta(days=7 * (k + 2)), today - timedelta(days=7 * (k + 1)))
                 for k in range(LEARN_WEEKS)]

    def learn() -> list[float] | None:
        sizes = [c.totals(utc_ms(lo), utc_ms(hi)).tokens for lo, hi in tiles]
        value = lim.p90(sizes)
        return None if value is None else [value, len([s for s in sizes if s > 0])]

    learned = c.cache.get(c.store, f"learn:{c.root}:weekly", f"{utc_ms(tiles[0][1])}:{c.gen}",
                          learn)
    return _window(
        c, "weekly", utc_ms(start), None if rolling else utc_ms(end), official, rows, a,
        learned, rolling=rolling,
    )


def _past_reset(c: _Ctx, rows: Sequence[LimitRow], kind: WindowKind) -> datetime | None:
    """The newest official reset of a ``kind`` window that has passed (within the
    lookback)."""
    passed = [
        r.resets_at for r in rows
        if r.resets_at is not None and r.resets_at <= c.now and r.observed_at <= c.now
        and lim.is_general(c.agent, r.limit_id)
        and lim.kind_of(r.window_minutes, r.resets_at, r.observed_at) == kind
    ]
    return max(passed) if passed else None


# -- daily (Gemini) ---------------------------------------------------------------------


def _daily(c: _Ctx, a: AgentSettings) -> WindowState:
    start, end = win.daily_window(c.now)

    def learn() -> list[float] | None:
        edges = list(win.day_starts(start - timedelta(days=LEARN_DAYS), start))
        sizes = [c.totals(utc_ms(lo), utc_ms(hi)).requests for lo, hi in pairwise(edges)]
        value = lim.p90(sizes)
        return None if value is None else [value, len([s for s in sizes if s > 0])]

    learned = c.cache.get(c.store, f"learn:{c.root}:daily", f"{utc_ms(start)}:{c.gen}", learn)
    return _window(c, "daily", utc_ms(start), utc_ms(end), None, (), a, learned,
                   rolling=False, unit="requests")


# -- shared ------------------------------------------------------------------------------


def _calibration(c: _Ctx, kind: WindowKind, rows: Sequence[LimitRow]) -> list[float] | None:
    """Tokens per percent from completed official windows, cached until a new one starts."""
    resets = [
        utc_ms(r.resets_at) for r in rows
        if r.resets_at is not None and lim.is_general(c.agent, r.limit_id)
        and lim.kind_of(r.window_minutes, r.resets_at, r.observed_at) == kind
    ]
    if not resets:
        return None
    newest = max(resets)

    def compute() -> list[float] | None:
        samples: list[lim.Sample] = []
        candidates = [
            r for r in c.store.limit_windows(agent=c.agent, root=c.root,
                                             since_ms=c.now_ms - CALIBRATION_LOOKBACK_MS)
            if r.resets_at is not None and r.resets_at <= c.now
            and lim.is_general(c.agent, r.limit_id) and r.used_percent is not None
            and r.used_percent >= lim.MIN_SAMPLE_PERCENT
            and lim.kind_of(r.window_minutes, r.resets_at, r.observed_at) == kind
        ]
        for r in candidates[-lim.CALIBRATION_WINDOWS:]:
            assert r.resets_at is not None and r.used_percent is not None
            minutes = r.window_minutes or (300 if kind == "5h" else 10080)
            lo = utc_ms(r.resets_at - timedelta(minutes=minutes))
            samples.append(lim.Sample(c.totals(lo, utc_ms(r.observed_at) + 1).tokens,
                                      r.used_percent))
        got = lim.tokens_per_percent(samples)
        return None if got is None else [got[0], got[1]]

    value = c.cache.get(c.store, f"calib:{c.root}:{kind}", f"{newest}:{c.gen}", compute)
    return value if value is None else list(value)


def _marginal(c: _Ctx, official: lim.Official) -> tuple[int, float] | None:
    """``(local tokens, percent gained)`` since the window's first official observation.

    The scale between local tokens and the official percent, measured on this
    window's own recent usage (see :func:`tokend.limits.resolve`).
    """
    if official.start is None or official.observed_at > c.now:
        return None
    first = c.store.first_limit(
        agent=c.agent, root=c.root, limit_id=official.limit_id,
        window_minutes=official.window_minutes, since_ms=utc_ms(official.start),
        until_ms=utc_ms(official.observed_at),
    )
    if first is None or first.used_percent is None:
        return None
    gained = official.percent - first.used_percent
    if gained < lim.MIN_SAMPLE_PERCENT:
        return None
    t0, t1 = utc_ms(first.observed_at) + 1, utc_ms(official.observed_at) + 1
    since_t0 = c.cache.totals(c.store, c.agent, c.root, t0, c.now_ms, c.gen).tokens
    return since_t0 - c.totals(t1).tokens, gained


def _window(
    c: _Ctx,
    kind: WindowKind,
    start_ms: int | None,
    end_ms: int | None,
    official: lim.Official | None,
    rows: Sequence[LimitRow],
    a: AgentSettings,
    learned: list[float] | None,
    *,
    rolling: bool,
    unit: lim.Unit = "tokens",
) -> WindowState:
    now, now_ms = c.now, c.now_ms
    if start_ms is None:
        used = Totals(0, 0, 0.0, 0, None, None)
        burn_t = used
        since = now_ms
    else:
        used = c.cache.totals(c.store, c.agent, c.root, start_ms, now_ms, c.gen)
        since = win.burn_since(now_ms, start_ms)
        burn_t = c.totals(since)
    burn = win.burn_rate(burn_t.tokens, burn_t.cost, since, now_ms)
    calib = _calibration(c, kind, rows) if unit == "tokens" else None
    marginal = _marginal(c, official) if official is not None and unit == "tokens" else None
    resolved = lim.resolve(
        official=official,
        calibration=(calib[0], int(calib[1])) if calib else None,
        plan=lim.plan_limit(c.agent, kind, a),
        learned=(learned[0], int(learned[1])) if learned else None,
        tokens=used.tokens, io_tokens=used.io_tokens, requests=used.requests, unit=unit,
        marginal=marginal,
    )
    start = utc_from_ms(start_ms) if start_ms is not None else None
    end = utc_from_ms(end_ms) if end_ms is not None else None
    projected = runs_out = pace = None
    drift: Drift | None = None
    if resolved.percent is not None and end is not None and not rolling:
        rate = {
            "tokens": burn.tokens_per_min,
            "io_tokens": win.burn_rate(burn_t.io_tokens, None, since, now_ms).tokens_per_min,
            "requests": win.burn_rate(burn_t.requests, None, since, now_ms).tokens_per_min,
        }[resolved.unit]
        if resolved.limit is not None or resolved.percent >= 100:
            proj = win.project(resolved.percent, rate, resolved.limit or 0.0, now, end)
            projected, runs_out = proj.percent, proj.runs_out_at
        pace = win.pace(resolved.percent, start, end, now)
    if rolling and used.first_ms is not None:
        oldest = used.first_ms
        hour = c.totals(oldest, oldest + win.HOUR_MS)
        amount = {"tokens": hour.tokens, "io_tokens": hour.io_tokens,
                  "requests": hour.requests}[resolved.unit]
        got = win.drift(oldest, amount, win.WEEK_MS, resolved.limit)
        if got is not None:
            drift = Drift(at=utc_from_ms(got[0]), frees_percent=got[2], frees_tokens=hour.tokens)
    return WindowState(
        kind=kind,
        start=start,
        resets_at=end,
        used_tokens=used.tokens,
        used_cost=used.cost,
        requests=used.requests,
        percent=resolved.percent,
        provenance=resolved.provenance,
        observed_at=resolved.observed_at,
        limit_tokens=resolved.limit_tokens,
        basis=resolved.basis,
        burn_tokens_per_min=burn.tokens_per_min,
        burn_usd_per_hour=burn.usd_per_hour,
        projected_percent=projected,
        runs_out_at=runs_out,
        pace=pace,
        rolling=rolling,
        drift=drift,
        unit=resolved.unit,
        limit_requests=round(resolved.limit) if resolved.unit == "requests"
        and resolved.limit is not None else None,
    )

"""Pure window maths: blocks, calendar windows, burn, projection, pace, drift."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tokend import windows as win

UTC = timezone.utc
H = win.HOUR_MS
M = win.MINUTE_MS


@dataclass(frozen=True)
class E:
    ts_ms: int
    input: int = 10
    output: int = 5
    cache_read: int = 100
    cache_write_5m: int = 20
    cache_write_1h: int = 0
    cost: float | None = 0.01
    model: str = "m"


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def test_block_starts_floored_to_the_utc_hour_and_lasts_five_hours() -> None:
    blocks = win.build_blocks([E(ms(2026, 1, 9, 10, 17, 30)), E(ms(2026, 1, 9, 11, 2))])
    assert len(blocks) == 1
    b = blocks[0]
    assert b.start_ms == ms(2026, 1, 9, 10)
    assert b.end_ms == ms(2026, 1, 9, 15)
    assert b.first_ms == ms(2026, 1, 9, 10, 17, 30) and b.last_ms == ms(2026, 1, 9, 11, 2)
    assert b.entries == 2 and b.total == 2 * 135


def test_new_block_when_the_block_end_passes_even_without_a_pause() -> None:
    # entries every hour: the sixth hour is past start + 5 h, so a new block opens
    times = [ms(2026, 1, 9, 10, 30) + k * H for k in range(7)]
    blocks = win.build_blocks([E(t) for t in times])
    assert [b.start_ms for b in blocks] == [ms(2026, 1, 9, 10), ms(2026, 1, 9, 15)]
    assert not any(b.is_gap for b in blocks)
    assert [b.entries for b in blocks] == [5, 2]


def test_entry_exactly_at_block_end_stays_in_the_block() -> None:
    blocks = win.build_blocks([E(ms(2026, 1, 9, 10)), E(ms(2026, 1, 9, 15))])
    assert len(blocks) == 1


def test_gap_block_after_a_pause_longer_than_five_hours() -> None:
    a, b = ms(2026, 1, 9, 10, 30), ms(2026, 1, 9, 22, 45)
    blocks = win.build_blocks([E(a), E(b)])
    assert [x.is_gap for x in blocks] == [False, True, False]
    gap = blocks[1]
    assert gap.start_ms == a + 5 * H and gap.end_ms == b and gap.total == 0
    assert blocks[2].start_ms == ms(2026, 1, 9, 22)


def test_pause_of_exactly_five_hours_makes_no_gap_block() -> None:
    a = ms(2026, 1, 9, 10)
    blocks = win.build_blocks([E(a), E(a + 5 * H)])
    assert [x.is_gap for x in blocks] == [False]


def test_active_rule() -> None:
    b = win.build_blocks([E(ms(2026, 1, 9, 10, 30))])[0]
    assert b.is_active(ms(2026, 1, 9, 14, 59))
    assert not b.is_active(ms(2026, 1, 9, 15, 0))
    gap = win.Block(start_ms=0, end_ms=10 * H, is_gap=True)
    assert not gap.is_active(H)


def test_block_bounds_and_hourly_totals_agree_with_the_per_entry_rule() -> None:
    rnd = random.Random(3)
    t = ms(2026, 3, 1)
    times = []
    for _ in range(400):
        t += rnd.choice([rnd.randrange(1, 40) * M, rnd.randrange(1, 9) * H])
        times.append(t)
    entries = [E(x, input=rnd.randrange(100)) for x in times]
    blocks = [b for b in win.build_blocks(entries) if not b.is_gap]
    last = blocks[-1]
    assert win.block_bounds(times) == (last.start_ms, last.end_ms, last.last_ms)
    buckets: dict[int, list[E]] = {}
    for e in entries:
        buckets.setdefault(win.floor_hour(e.ts_ms), []).append(e)
    hours = [
        win.HourBucket(h, sum(e.input + 125 for e in es), len(es), es[0].ts_ms, es[-1].ts_ms)
        for h, es in sorted(buckets.items())
    ]
    assert win.block_totals_from_hours(hours) == [(b.start_ms, b.total) for b in blocks]


def test_ccusage_burn_and_projection() -> None:
    start = ms(2026, 1, 9, 12, 18, 44)
    block = win.build_blocks([E(start), E(start + 70 * M)])[0]
    burn = win.ccusage_burn(block)
    assert burn is not None
    assert burn.tokens_per_minute == pytest.approx(270 / 70)
    assert burn.tokens_per_minute_for_indicator == pytest.approx(30 / 70)
    proj = win.ccusage_projection(block, start + 70 * M)
    assert proj is not None and proj[2] == 211  # 17:00 - 13:28:44, rounded
    assert proj[0] == round(270 + 270 / 70 * 211)
    assert win.ccusage_burn(win.build_blocks([E(start)])[0]) is None


# -- calendar windows ----------------------------------------------------------------


def test_anchored_week_in_a_non_utc_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # Monday 2026-11-23 08:00 in Tokyo is Sunday 23:00 UTC: still the previous week
    now = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    start, end = win.anchored_week(now, 0, time(9, 0), tokyo)
    assert start == datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # Mon 09:00 JST
    assert end == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    start2, _ = win.anchored_week(end, 0, time(9, 0), tokyo)
    assert start2 == end


def test_anchored_week_across_dst_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Clocks go forward on Sunday 2026-03-29: that week is 167 hours long
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    start, end = win.anchored_week(now, 0, time(9, 0), berlin)
    assert start == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert end == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert end - start == timedelta(hours=167)
    # ... and back on 2026-10-25: 169 hours
    s2, e2 = win.anchored_week(datetime(2026, 10, 24, tzinfo=UTC), 0, time(9, 0), berlin)
    assert e2 - s2 == timedelta(hours=169)
    assert s2.astimezone(berlin).hour == 9 and e2.astimezone(berlin).hour == 9


def test_anchor_inside_the_spring_forward_gap_moves_forward() -> None:
    ny = ZoneInfo("America/New_York")
    # 02:30 does not exist on 2026-03-08 in New York
    start, _ = win.anchored_week(datetime(2026, 3, 9, tzinfo=UTC), 6, time(2, 30), ny)
    assert start == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_parse_anchor() -> None:
    assert win.parse_anchor("rolling") is None
    assert win.parse_anchor("Wed 17:45") == (2, time(17, 45))


def test_daily_window_resets_at_midnight_pacific_with_dst() -> None:
    start, end = win.daily_window(datetime(2026, 7, 1, 6, 59, tzinfo=UTC))
    assert start == datetime(2026, 6, 30, 7, 0, tzinfo=UTC)  # PDT midnight
    assert end == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    start, end = win.daily_window(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    assert start == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # PST midnight
    # the day clocks go back lasts 25 hours
    s, e = win.daily_window(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    assert e - s == timedelta(hours=25)


# -- burn, projection, pace, drift ----------------------------------------------------


def test_burn_rate_over_the_last_30_minutes_decays_when_idle() -> None:
    now = ms(2026, 1, 9, 12)
    # 3000 tokens recorded at 11:55; the window began at 10:00
    def rate(at: int) -> float:
        since = win.burn_since(at, ms(2026, 1, 9, 10))
        counted = 3000 if since <= now - 5 * M <= at else 0
        return win.burn_rate(counted, None, since, at).tokens_per_min

    assert rate(now) == pytest.approx(100.0)  # 3000 over 30 min
    assert rate(now + 20 * M) == pytest.approx(100.0)  # still inside the span
    assert rate(now + 26 * M) == 0.0  # slid out: idle for 31 min
    assert win.burn_since(now, ms(2026, 1, 9, 11, 50)) == ms(2026, 1, 9, 11, 50)


def test_burn_span_never_shorter_than_five_minutes() -> None:
    now = ms(2026, 1, 9, 12, 1)
    since = win.burn_since(now, ms(2026, 1, 9, 12))
    burn = win.burn_rate(1000, 0.5, since, now)
    assert burn.tokens_per_min == pytest.approx(200.0)
    assert burn.usd_per_hour == pytest.approx(6.0)


def test_projection_is_capped_at_the_reset() -> None:
    now = datetime(2026, 1, 9, 12, tzinfo=UTC)
    reset = now + timedelta(minutes=60)
    # 10 % used, 100 tokens/min against 100 000 tokens: +6 % by the reset
    p = win.project(10.0, 100.0, 100_000, now, reset)
    assert p.percent == pytest.approx(16.0)
    assert p.runs_out_at is None
    # a burn that would reach 100 % in 30 minutes: runs out before reset
    fast = win.project(40.0, 2000.0, 100_000, now, reset)
    assert fast.runs_out_at == now + timedelta(minutes=30)
    assert fast.percent == pytest.approx(160.0)
    # same burn, but the reset comes first
    late = win.project(40.0, 2000.0, 100_000, now, now + timedelta(minutes=20))
    assert late.runs_out_at is None and late.percent == pytest.approx(80.0)
    full = win.project(100.0, 0.0, 100_000, now, reset)
    assert full.runs_out_at == now


def test_pace_is_used_minus_elapsed() -> None:
    start = datetime(2026, 1, 9, 10, tzinfo=UTC)
    end = start + timedelta(hours=5)
    assert win.pace(50.0, start, end, start + timedelta(hours=2)) == pytest.approx(10.0)
    assert win.pace(10.0, start, end, start + timedelta(hours=4)) == pytest.approx(-70.0)
    assert win.pace(None, start, end, start) is None
    assert win.pace(10.0, None, end, start) is None


def test_drift_of_a_rolling_window() -> None:
    got = win.drift(ms(2026, 1, 2, 9), 5000, win.WEEK_MS, 100_000)
    assert got is not None and got[:2] == (ms(2026, 1, 9, 9), 5000)
    assert got[2] == pytest.approx(5.0)
    assert win.drift(None, 0, win.WEEK_MS, None) is None
    assert win.drift(1, 10, win.WEEK_MS, None) == (1 + win.WEEK_MS, 10, None)


def test_blocks_are_listed_by_start_like_ccusage() -> None:
    # the pause is 5 h 15 m: the gap starts at 15:30, the next block at 15:00
    a, b = ms(2026, 1, 9, 10, 30), ms(2026, 1, 9, 15, 45)
    blocks = win.build_blocks([E(a), E(b)])
    assert [(x.start_ms, x.is_gap) for x in blocks] == [
        (ms(2026, 1, 9, 10), False), (ms(2026, 1, 9, 15), False), (ms(2026, 1, 9, 15, 30), True),
    ]

"""Alert rules against a real Store: once per window instance, highest only, escalation
never held back, rate limit of the other kinds, pause, quiet hours, restarts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tokend.alerts import (
    Alert,
    allowed,
    due_alerts,
    format_clock,
    format_duration,
    in_quiet_hours,
    record_sent,
)
from tokend.config import AlertSettings, Settings
from tokend.snapshot import AgentState, Snapshot, WindowState
from tokend.store import Store

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 15, tzinfo=UTC)
RESET = NOW + timedelta(hours=2, minutes=15)  # 14:30


def window(percent: float | None, **kw: Any) -> WindowState:
    values: dict[str, Any] = dict(
        kind="5h", start=RESET - timedelta(hours=5), resets_at=RESET, used_tokens=100_000,
        used_cost=1.0, requests=10, percent=percent, provenance="official", observed_at=NOW,
    )
    values.update(kw)
    return WindowState(**values)


def snap(*windows: WindowState, agent: str = "claude", root: str = "/h/.claude/projects",
         at: datetime = NOW, extra: tuple[AgentState, ...] = ()) -> Snapshot:
    state = AgentState(agent=agent, account=root, root=root, windows=windows)
    return Snapshot(generated_at=at, agents=(state, *extra))


def settings(**alerts: Any) -> Settings:
    return Settings(alerts=AlertSettings(**alerts))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "usage.sqlite3")


def due(store: Store, snapshot: Snapshot, now: datetime = NOW, cfg: Settings | None = None,
        paused: datetime | None = None) -> list[Alert]:
    return due_alerts(snapshot, store, cfg or settings(), now, paused, tz=UTC)


def send(store: Store, snapshot: Snapshot, now: datetime = NOW, cfg: Settings | None = None,
         paused: datetime | None = None) -> list[Alert]:
    """What the daemon does: compute, (notify), record."""
    alerts = due(store, snapshot, now, cfg, paused)
    record_sent(store, alerts, now)
    return alerts


# -- thresholds -----------------------------------------------------------------------


def test_threshold_text_and_once_per_instance(store: Store) -> None:
    runs_out = NOW + timedelta(hours=1, minutes=35)
    s = snap(window(62.0, burn_tokens_per_min=900.0, runs_out_at=runs_out))
    [alert] = send(store, s)
    assert alert.kind == "threshold"
    assert alert.title == "Claude: 60 % of the 5-hour window"
    assert alert.body == (
        "Now 62 %. Resets 14:30 (in 2 h 15 m). At this pace it runs out at 13:50."
    )
    assert alert.urgency == "normal"
    assert send(store, s, NOW + timedelta(minutes=1)) == []
    assert send(store, s, NOW + timedelta(minutes=30)) == []


def test_exact_threshold_has_no_now_and_lasts_until_reset(store: Store) -> None:
    [alert] = due(store, snap(window(80.0, burn_tokens_per_min=10.0)))
    assert alert.title == "Claude: 80 % of the 5-hour window"
    assert alert.body == "Resets 14:30 (in 2 h 15 m). At this pace it lasts until the reset."


def test_estimate_names_its_provenance(store: Store) -> None:
    w = window(81.0, provenance="plan", basis="plan max5 (community estimate)")
    [alert] = due(store, snap(w))
    assert alert.body.endswith("Estimate: plan max5 (community estimate).")
    w = window(81.0, provenance="learned")
    [alert] = due(store, snap(w))
    assert alert.body.endswith("Estimate: learned from your history.")


def test_below_first_threshold_and_unknown_are_silent(store: Store) -> None:
    assert due(store, snap(window(59.9))) == []
    assert due(store, snap(window(None, provenance="unknown"))) == []


def test_several_crossed_at_once_only_the_highest(store: Store) -> None:
    [alert] = send(store, snap(window(96.0)))
    assert alert.title == "Claude: 95 % of the 5-hour window"
    assert alert.urgency == "critical"
    # The lower ones are never sent afterwards in this instance.
    assert send(store, snap(window(97.0)), NOW + timedelta(minutes=10)) == []


def test_escalation_is_never_held_back_by_the_rate_limit(store: Store) -> None:
    cfg = settings(min_interval_minutes=30)
    assert [a.threshold for a in send(store, snap(window(61.0)), cfg=cfg)] == [60]
    later = NOW + timedelta(minutes=1)
    assert [a.threshold for a in send(store, snap(window(82.0)), later, cfg)] == [80]
    later += timedelta(seconds=30)
    assert [a.threshold for a in send(store, snap(window(95.5)), later, cfg)] == [95]


def test_new_window_instance_rearms_jitter_does_not(store: Store) -> None:
    send(store, snap(window(85.0)))
    # Codex-style jitter of the official reset time: the same instance.
    jittered = window(86.0, resets_at=RESET + timedelta(seconds=40))
    assert due(store, snap(jittered), NOW + timedelta(minutes=2)) == []
    # An official reset replacing a local estimate 50 min off: still the same instance.
    official = window(87.0, resets_at=RESET - timedelta(minutes=50))
    assert due(store, snap(official), NOW + timedelta(minutes=3)) == []
    # After the reset, the next 5-hour window is a new instance.
    after = RESET + timedelta(minutes=20)
    nxt = window(63.0, start=after, resets_at=after + timedelta(hours=5))
    alerts = due(store, snap(nxt, at=after), after)
    assert [a.threshold for a in alerts if a.kind == "threshold"] == [60]


def test_a_restart_never_repeats(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    with Store(path) as first:
        assert len(send(first, snap(window(81.0)))) == 1
    with Store(path) as second:  # the daemon restarted
        assert due(second, snap(window(81.0)), NOW + timedelta(minutes=1)) == []


def test_per_kind_thresholds(store: Store) -> None:
    cfg = settings(weekly_thresholds=(50, 90), five_hour_thresholds=(70,))
    weekly = window(55.0, kind="weekly", start=NOW - timedelta(days=3),
                    resets_at=NOW + timedelta(days=4))
    alerts = due(store, snap(window(65.0), weekly), cfg=cfg)
    assert [(a.window, a.threshold, a.title) for a in alerts] == [
        ("weekly", 50, "Claude: 50 % of the weekly window"),
    ]
    [alert] = due(store, snap(window(71.0)), cfg=cfg)
    assert alert.urgency == "critical"  # 70 is the top of its own list


def test_each_agent_account_and_window_fires_separately(store: Store) -> None:
    work = AgentState(agent="claude", account="work", root="/h/.claude-work/projects",
                      windows=(window(66.0),))
    s = snap(window(66.0), extra=(work,))
    alerts = send(store, s)
    assert sorted(a.title for a in alerts) == [
        "Claude (/h/.claude/projects): 60 % of the 5-hour window",
        "Claude (work): 60 % of the 5-hour window",
    ]
    assert send(store, s, NOW + timedelta(minutes=1)) == []


def test_rolling_window_rearms_after_falling_back(store: Store) -> None:
    def at(p: float, t: datetime) -> list[Alert]:
        # A rolling window's "reset" (oldest usage rolling off) moves with time.
        w = window(p, kind="weekly", rolling=True, start=t - timedelta(days=7),
                   resets_at=t + timedelta(hours=3))
        return send(store, snap(w, at=t), t)

    t = NOW
    assert [a.threshold for a in at(65.0, t)] == [60]
    t += timedelta(hours=1)
    assert at(58.0, t) == []  # within the re-arm margin
    t += timedelta(hours=1)
    assert at(61.0, t) == []
    t += timedelta(hours=1)
    assert at(50.0, t) == []  # fell back: re-armed
    t += timedelta(hours=1)
    assert [a.threshold for a in at(62.0, t)] == [60]


# -- pause and quiet hours ------------------------------------------------------------


def test_pause_holds_back_and_the_highest_comes_after(store: Store) -> None:
    paused = NOW + timedelta(hours=1)
    assert send(store, snap(window(70.0)), paused=paused) == []
    assert send(store, snap(window(85.0)), NOW + timedelta(minutes=30), paused=paused) == []
    after = NOW + timedelta(hours=1, minutes=1)
    [alert] = send(store, snap(window(86.0)), after, paused=paused)
    assert alert.threshold == 80  # one notification, not the backlog


def test_quiet_hours(store: Store) -> None:
    cfg = settings(quiet_hours="22:00-07:00")
    night = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    w = window(90.0, start=night - timedelta(hours=1), resets_at=night + timedelta(hours=4))
    assert send(store, snap(w, at=night), night, cfg) == []
    morning = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert send(store, snap(w, at=morning), morning, cfg) == []
    end = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    w2 = window(90.0, start=end - timedelta(hours=1), resets_at=end + timedelta(hours=4))
    assert [a.threshold for a in send(store, snap(w2, at=end), end, cfg)] == [80]


def test_in_quiet_hours_ranges() -> None:
    at = lambda h, m=0: datetime(2026, 11, 23, h, m, tzinfo=UTC)  # noqa: E731
    assert in_quiet_hours("22:00-07:00", at(23), UTC)
    assert in_quiet_hours("22:00-07:00", at(6, 59), UTC)
    assert not in_quiet_hours("22:00-07:00", at(7), UTC)
    assert not in_quiet_hours("22:00-07:00", at(21, 59), UTC)
    assert in_quiet_hours("12:00-13:00", at(12, 30), UTC)
    assert not in_quiet_hours("12:00-13:00", at(13, 30), UTC)
    assert not in_quiet_hours("", at(3), UTC)


# -- reset, predictive, rate limit ----------------------------------------------------


def test_reset_only_after_a_warning_by_default(store: Store) -> None:
    send(store, snap(window(81.0)))
    after = RESET + timedelta(minutes=1)
    [alert] = send(store, snap(at=after), after)
    assert alert.kind == "reset"
    assert alert.title == "Claude 5-hour window reset — full budget again"
    assert alert.body == "The 5-hour window reset at 14:30."
    assert alert.urgency == "low"
    assert send(store, snap(at=after), after + timedelta(minutes=10)) == []


def test_no_reset_without_warning_unless_always(tmp_path: Path) -> None:
    quiet = Store(tmp_path / "a.sqlite3")
    send(quiet, snap(window(30.0)))
    after = RESET + timedelta(minutes=1)
    assert send(quiet, snap(at=after), after) == []
    always = Store(tmp_path / "b.sqlite3")
    cfg = settings(reset="always")
    send(always, snap(window(30.0)), cfg=cfg)
    assert [a.kind for a in send(always, snap(at=after), after, cfg)] == ["reset"]
    off = Store(tmp_path / "c.sqlite3")
    cfg = settings(reset="off")
    send(off, snap(window(90.0)), cfg=cfg)
    assert send(off, snap(at=after), after, cfg) == []


def test_always_announces_a_reset_when_the_next_instance_shows_at_once(store: Store) -> None:
    # What the daemon's snapshot looks like: once a weekly window's official reset
    # has passed, the next week is shown right away (never an empty window list).
    cfg = settings(reset="always")
    week = window(30.0, kind="weekly", start=RESET - timedelta(days=7))
    send(store, snap(week), cfg=cfg)
    after = RESET + timedelta(minutes=1)
    nxt = replace(week, percent=0.0, start=RESET, resets_at=RESET + timedelta(days=7))
    [alert] = send(store, snap(nxt, at=after), after, cfg)
    assert alert.title == "Claude weekly window reset — full budget again"
    assert send(store, snap(nxt, at=after), after + timedelta(minutes=10), cfg) == []
    # and by default (after-warning) that unwarned reset is no news
    quiet = Store(store.path.with_name("quiet.sqlite3"))
    send(quiet, snap(week))
    assert send(quiet, snap(nxt, at=after), after) == []


def test_old_resets_are_not_news(store: Store) -> None:
    send(store, snap(window(81.0)))
    late = RESET + timedelta(hours=3)  # the daemon was not running at the reset
    assert due(store, snap(at=late), late) == []


def test_other_kinds_are_rate_limited_per_agent(store: Store) -> None:
    cfg = settings(min_interval_minutes=10)
    send(store, snap(window(81.0)), cfg=cfg)
    # A checkpoint notification went out just before the reset.
    checkpoint = Alert(key="cp|1", agent="claude", kind="checkpoint", title="t", body="b",
                       urgency="normal")
    record_sent(store, [checkpoint], RESET - timedelta(minutes=2))
    at_reset = RESET + timedelta(minutes=1)
    assert send(store, snap(at=at_reset), at_reset, cfg) == []  # held back, not dropped
    later = RESET + timedelta(minutes=9)
    assert [a.kind for a in send(store, snap(at=later), later, cfg)] == ["reset"]


def test_allowed_gates_checkpoints(store: Store) -> None:
    cfg = settings(min_interval_minutes=5, quiet_hours="22:00-07:00")
    cp = Alert(key="cp|2", agent="claude", kind="checkpoint", title="t", body="b",
               urgency="normal")
    assert allowed(cp, store, cfg, NOW, None, tz=UTC)
    record_sent(store, [replace(cp, key="cp|1")], NOW)
    assert not allowed(cp, store, cfg, NOW + timedelta(minutes=4), None, tz=UTC)
    assert allowed(cp, store, cfg, NOW + timedelta(minutes=5), None, tz=UTC)
    assert not allowed(cp, store, cfg, NOW + timedelta(hours=1),
                       NOW + timedelta(hours=2), tz=UTC)
    night = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert not allowed(cp, store, cfg, night, None, tz=UTC)
    threshold = replace(cp, kind="threshold")
    assert allowed(threshold, store, cfg, NOW + timedelta(minutes=1), None, tz=UTC)


def test_predictive_once_per_episode_and_opt_in(store: Store) -> None:
    w = window(40.0, burn_tokens_per_min=5000.0, runs_out_at=NOW + timedelta(minutes=40))
    assert due(store, snap(w)) == []  # off by default
    cfg = settings(predictive=True)
    [alert] = send(store, snap(w), cfg=cfg)
    assert alert.kind == "predictive"
    assert alert.title == "Claude: on pace to hit the 5-hour limit"
    assert alert.body == "At this pace you reach the limit in 40 min, before the reset (14:30)."
    later = NOW + timedelta(minutes=20)
    w2 = replace(w, runs_out_at=later + timedelta(minutes=15))
    assert send(store, snap(w2, at=later), later, cfg) == []


def test_predictive_not_when_it_lasts_until_reset(store: Store) -> None:
    cfg = settings(predictive=True)
    w = window(40.0, runs_out_at=RESET + timedelta(minutes=5))
    assert due(store, snap(w), cfg=cfg) == []


def test_predictive_waits_for_the_rate_limit_but_threshold_does_not(store: Store) -> None:
    cfg = settings(predictive=True, min_interval_minutes=5)
    w = window(62.0, runs_out_at=NOW + timedelta(minutes=50))
    alerts = send(store, snap(w), cfg=cfg)
    assert [a.kind for a in alerts] == ["threshold"]
    later = NOW + timedelta(minutes=5)
    assert [a.kind for a in send(store, snap(w, at=later), later, cfg)] == ["predictive"]


def test_record_sent_forgets_old_rows(store: Store) -> None:
    old = Alert(key="k-old", agent="claude", kind="checkpoint", title="", body="", urgency="low")
    record_sent(store, [old], NOW - timedelta(days=40))
    record_sent(store, [replace(old, key="k-new")], NOW)
    keys = [r[0] for r in store.db.execute("SELECT key FROM alerts")]
    assert keys == ["k-new"]


# -- words ----------------------------------------------------------------------------


def test_format_duration() -> None:
    assert format_duration(timedelta(minutes=40, seconds=59)) == "40 min"
    assert format_duration(timedelta(hours=2, minutes=15)) == "2 h 15 m"
    assert format_duration(timedelta(hours=2)) == "2 h"
    assert format_duration(timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"
    assert format_duration(timedelta(seconds=-5)) == "0 min"


def test_format_clock() -> None:
    assert format_clock(NOW + timedelta(hours=2), NOW, UTC) == "14:15"
    assert format_clock(datetime(2026, 11, 29, 9, 0, tzinfo=UTC), NOW, UTC) == "Sun 09:00"
    # A week ahead on the same weekday would read like today: the date is shown.
    assert format_clock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC), NOW, UTC) == "30 Nov 09:00"
    assert format_clock(datetime(2026, 12, 24, 9, 0, tzinfo=UTC), NOW, UTC) == "24 Dec 09:00"


def test_reset_follows_the_latest_reset_time_seen(store: Store) -> None:
    send(store, snap(window(81.0)))  # warned with the estimated reset, 14:30
    official = RESET - timedelta(minutes=50)  # then the official figure says 13:40
    later = NOW + timedelta(minutes=5)
    assert send(store, snap(window(82.0, resets_at=official), at=later), later) == []
    after = official + timedelta(minutes=1)
    [alert] = send(store, snap(at=after), after)
    assert alert.kind == "reset" and alert.body == "The 5-hour window reset at 13:40."
    at_old = RESET + timedelta(minutes=1)
    assert send(store, snap(at=at_old), at_old) == []  # not a second time at 14:30

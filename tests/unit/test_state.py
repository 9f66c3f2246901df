"""Snapshot building from a real store with a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tokend.config import AgentSettings, Settings, WeeklySettings
from tokend.models import LimitObservation, UsageEvent, utc_ms
from tokend.snapshot import Snapshot, WindowState
from tokend.sources.base import Root
from tokend.state import HistoryCache, build_snapshot
from tokend.store import Store

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
_counter = [0]


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store = Store(tmp / "usage.sqlite3")
        self.roots: dict[str, Root] = {}

    def root(self, agent: str = "claude", name: str = "main") -> Root:
        key = f"{agent}:{name}"
        if key not in self.roots:
            path = self.tmp / agent / name
            path.mkdir(parents=True)
            self.roots[key] = Root(agent, path, name)  # type: ignore[arg-type]
        return self.roots[key]

    def add(self, at: datetime, tokens: int = 1000, *, agent: str = "claude",
            name: str = "main", cost: float = 0.01) -> None:
        root = self.root(agent, name)
        _counter[0] += 1
        ev = UsageEvent(
            agent=root.agent, dedup_key=f"k{_counter[0]}", timestamp=at, session_id="s",
            project="/p", model="m", input_tokens=tokens // 2, output_tokens=tokens // 10,
            cache_read_tokens=tokens - tokens // 2 - tokens // 10,
        )
        self._commit(root, [ev], [], cost)

    def observe(self, obs: LimitObservation, name: str = "main") -> None:
        self._commit(self.root(obs.agent, name), [], [obs], 0.0)

    def _commit(self, root: Root, events: list[UsageEvent], obs: list[LimitObservation],
                cost: float) -> None:
        self.store.commit_batch(
            path=str(root.path / "log.jsonl"), agent=root.agent, root=root.key, dev=1, ino=1,
            offset=0, size=0, mtime_ns=0, state=None, malformed=0, events=events,
            observations=obs, cost_fn=lambda e: cost, now_ms=0,
        )

    def snap(self, now: datetime = NOW, settings: Settings | None = None,
             cache: HistoryCache | None = None, **kw: object) -> Snapshot:
        return build_snapshot(
            self.store, list(self.roots.values()), settings or Settings(), now,
            cache=cache or HistoryCache(), **kw,  # type: ignore[arg-type]
        )


def window(snap: Snapshot, kind: str, agent: str = "claude", account: str = "main") -> WindowState:
    for a in snap.agents:
        if a.agent == agent and a.account == account:
            for w in a.windows:
                if w.kind == kind:
                    return w
    raise AssertionError(f"no {agent}/{account} {kind} window")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def codex_obs(minutes: int, pct: float, resets: datetime, at: datetime,
              limit_id: str = "codex") -> LimitObservation:
    return LimitObservation(agent="codex", limit_id=limit_id, observed_at=at, source="codex",
                            window_minutes=minutes, used_percent=pct, resets_at=resets)


# -- no data ------------------------------------------------------------------------


def test_roots_without_data_have_no_windows_never_zeros(env: Env, tmp_path: Path) -> None:
    missing = Root("codex", tmp_path / "nowhere", "nowhere")
    env.root("claude")
    snap = build_snapshot(env.store, [env.roots["claude:main"], missing], Settings(), NOW,
                          cache=HistoryCache())
    assert [a.windows for a in snap.agents] == [(), ()]
    assert [a.found for a in snap.agents] == [True, False]
    assert snap.roots_looked_at == (str(env.roots["claude:main"].path), str(tmp_path / "nowhere"))


# -- 5-hour window ----------------------------------------------------------------------


def test_local_block_window_and_rollover(env: Env) -> None:
    env.add(NOW.replace(hour=10, minute=47), 1000)
    env.add(NOW.replace(hour=12, minute=10), 3000)
    w = window(env.snap(), "5h")
    assert w.start == NOW.replace(hour=10, minute=0)
    assert w.resets_at == NOW.replace(hour=15, minute=0)
    assert (w.used_tokens, w.requests) == (4000, 2)
    assert w.used_cost == pytest.approx(0.02)
    assert (w.percent, w.provenance) == (None, "unknown")
    # after the block ends: no running window until the next use
    later = window(env.snap(NOW.replace(hour=15, minute=1)), "5h")
    assert (later.start, later.resets_at, later.used_tokens) == (None, None, 0)
    # next use opens a new block, floored to its hour
    env.add(NOW.replace(hour=15, minute=20), 500)
    new = window(env.snap(NOW.replace(hour=15, minute=30)), "5h")
    assert new.start == NOW.replace(hour=15, minute=0) and new.used_tokens == 500


def test_block_chain_is_followed_back_past_the_lookback(env: Env) -> None:
    # activity every 2 h for a day and a half: block starts chain from the first one
    t = NOW - timedelta(hours=36)
    while t <= NOW:
        env.add(t, 10)
        t += timedelta(hours=2)
    start = window(env.snap(), "5h").start
    assert start is not None
    first = NOW - timedelta(hours=36)
    assert (start - first.replace(minute=0)) % timedelta(hours=5) < timedelta(hours=2)
    assert start <= NOW < start + timedelta(hours=5)


def test_burn_rate_decays_to_zero_when_idle(env: Env) -> None:
    env.add(NOW - timedelta(minutes=40), 60_000)
    env.add(NOW - timedelta(minutes=10), 3000)
    w = window(env.snap(), "5h")
    assert w.burn_tokens_per_min == pytest.approx(100.0)  # 3000 over the last 30 min
    assert w.burn_usd_per_hour == pytest.approx(0.02)
    idle = window(env.snap(NOW + timedelta(minutes=21)), "5h")
    assert idle.burn_tokens_per_min == 0.0


def test_plan_projection_and_pace(env: Env) -> None:
    settings = Settings(claude=AgentSettings(five_hour_tokens=100_000))
    env.add(NOW.replace(hour=10, minute=5), 20_000)
    env.add(NOW - timedelta(minutes=5), 15_000)
    w = window(env.snap(settings=settings), "5h")
    assert w.provenance == "plan" and w.percent == pytest.approx(35.0)
    assert w.limit_tokens == 100_000 and "five_hour_tokens" in w.basis
    # 15 000 tokens in the last 30 min = 500/min; 150 min to the 15:00 reset
    assert w.burn_tokens_per_min == pytest.approx(500.0)
    assert w.projected_percent == pytest.approx(35.0 + 500 * 150 / 1000)
    assert w.runs_out_at == NOW + timedelta(minutes=130)
    assert w.pace == pytest.approx(35.0 - 50.0)  # 2.5 h of 5 h elapsed


def test_plan_preset_counts_input_and_output_only(env: Env) -> None:
    settings = Settings(claude=AgentSettings(plan="pro"))
    env.add(NOW - timedelta(minutes=20), 10_000)  # 5000 input + 1000 output
    w = window(env.snap(settings=settings), "5h")
    assert w.provenance == "plan" and w.unit == "io_tokens"
    assert w.percent == pytest.approx(6000 / 19_000 * 100)
    assert "community estimate" in w.basis


def test_official_codex_window_from_resets_at(env: Env) -> None:
    resets = NOW + timedelta(hours=3)
    env.add(NOW - timedelta(hours=1), 4000, agent="codex")
    env.observe(codex_obs(300, 40.0, resets, NOW - timedelta(minutes=7)))
    w = window(env.snap(), "5h", "codex")
    assert (w.provenance, w.percent) == ("official", 40.0)
    assert w.start == resets - timedelta(minutes=300) and w.resets_at == resets
    assert w.observed_at == NOW - timedelta(minutes=7)
    assert w.limit_tokens == 10_000  # 4000 local tokens are 40 %
    assert w.pace == pytest.approx(40.0 - 40.0)


def test_official_scale_comes_from_the_change_between_observations(env: Env) -> None:
    # 20 % came from another machine before the first observation; since then
    # 2000 local tokens moved the official figure from 20 % to 40 %
    resets = NOW + timedelta(hours=3)
    env.add(NOW - timedelta(hours=1, minutes=30), 1000, agent="codex")
    env.observe(codex_obs(300, 20.0, resets, NOW - timedelta(hours=1, minutes=20)))
    env.add(NOW - timedelta(minutes=40), 2000, agent="codex")
    env.observe(codex_obs(300, 40.0, resets, NOW - timedelta(minutes=30)))
    env.add(NOW - timedelta(minutes=10), 500, agent="codex")  # after the newest figure
    w = window(env.snap(), "5h", "codex")
    assert (w.provenance, w.percent) == ("official", 40.0)
    assert w.limit_tokens == 10_000  # not 3500 / 40 % of the whole window
    # 500 tokens in the last 30 min, for the 180 min left, against 10 000 tokens
    assert w.projected_percent == pytest.approx(40.0 + 500 / 30 * 180 / 100)


def test_codex_window_classified_by_minutes_whatever_the_slot(env: Env) -> None:
    # a weekly-only plan: the 10080-minute window (Codex's "primary" slot) is the week
    env.add(NOW - timedelta(hours=1), 100, agent="codex")
    resets = NOW + timedelta(days=2)
    env.observe(codex_obs(10080, 69.0, resets, NOW - timedelta(minutes=1)))
    snap = env.snap()
    assert window(snap, "5h", "codex").provenance != "official"
    weekly = window(snap, "weekly", "codex")
    assert (weekly.provenance, weekly.percent) == ("official", 69.0)
    assert weekly.start == resets - timedelta(days=7) and not weekly.rolling


def test_stale_official_after_reset_falls_back(env: Env) -> None:
    env.add(NOW - timedelta(minutes=30), 2000, agent="codex")
    env.observe(codex_obs(300, 90.0, NOW - timedelta(minutes=1), NOW - timedelta(hours=2)))
    settings = Settings(codex=AgentSettings(five_hour_tokens=10_000))
    w = window(env.snap(settings=settings), "5h", "codex")
    assert w.provenance == "plan" and w.observed_at is None
    # The 2000 tokens were the reset window's: the new one has nothing yet.
    assert w.used_tokens == 0
    env.add(NOW, 1500, agent="codex")
    w = window(env.snap(settings=settings), "5h", "codex")
    assert w.provenance == "plan" and w.percent == pytest.approx(15.0)


def test_after_an_official_reset_the_estimate_counts_only_what_came_after(env: Env) -> None:
    """Use ran on across the reset, so the local block began before it; the agent
    started a new window at the reset, and so does the estimate."""
    reset = NOW - timedelta(minutes=40)  # 11:50
    for minutes in (200, 150, 100, 60):
        env.add(NOW - timedelta(minutes=minutes), 1000, agent="codex")
    env.observe(codex_obs(300, 90.0, reset, reset - timedelta(minutes=30)))
    env.add(NOW - timedelta(minutes=30), 2000, agent="codex")
    env.add(NOW - timedelta(minutes=10), 3000, agent="codex")
    settings = Settings(codex=AgentSettings(five_hour_tokens=10_000))
    w = window(env.snap(settings=settings), "5h", "codex")
    assert w.provenance in ("plan", "calibrated")  # an estimate, whichever
    assert w.used_tokens == 5000
    # The first use after the reset opens the window, on the hour as blocks are.
    assert w.start == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert w.resets_at == w.start + timedelta(hours=5)
    # Once this block is over, the next one starts at the next use, as ever.
    later = NOW + timedelta(hours=6)
    env.add(later - timedelta(minutes=20), 4000, agent="codex")
    w = window(env.snap(later, settings=settings), "5h", "codex")
    assert w.used_tokens == 4000 and w.start == datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def test_a_use_in_the_hour_of_the_reset_opens_the_window_at_the_reset(env: Env) -> None:
    reset = NOW - timedelta(minutes=40)  # 11:50
    env.add(NOW - timedelta(minutes=80), 1000, agent="codex")  # 11:10, before it
    env.observe(codex_obs(300, 90.0, reset, reset - timedelta(minutes=30)))
    env.add(NOW - timedelta(minutes=35), 2000, agent="codex")  # 11:55, after it
    w = window(env.snap(), "5h", "codex")
    assert w.used_tokens == 2000
    assert (w.start, w.resets_at) == (reset, reset + timedelta(hours=5))


def test_claude_limit_error_marks_full_until_its_reset(env: Env) -> None:
    env.add(NOW - timedelta(minutes=30), 2000)
    reset = NOW + timedelta(hours=2)
    env.observe(LimitObservation(
        agent="claude", limit_id="claude", observed_at=NOW - timedelta(minutes=3),
        source="claude_limit_error", window_minutes=300, used_percent=100.0,
        resets_at=reset, reached=True,
    ))
    w = window(env.snap(), "5h")
    assert (w.provenance, w.percent, w.resets_at) == ("official", 100.0, reset)
    assert w.runs_out_at == NOW
    after = window(env.snap(reset + timedelta(minutes=1)), "5h")
    assert after.provenance != "official"


def test_calibration_from_past_official_windows(env: Env) -> None:
    # three past windows: 50 % after 5000 local tokens each -> 100 tokens per 1 %
    for k in (3, 2, 1):
        reset = NOW - timedelta(hours=5 * k)
        env.add(reset - timedelta(hours=2), 5000, agent="codex")
        env.observe(codex_obs(300, 50.0, reset, reset - timedelta(hours=1)))
    env.add(NOW - timedelta(minutes=20), 1500, agent="codex")
    w = window(env.snap(), "5h", "codex")
    assert w.provenance == "calibrated"
    assert w.limit_tokens == 10_000
    assert w.percent == pytest.approx(15.0)
    assert "calibrated on 3 past windows" in w.basis


def test_learned_p90_needs_five_completed_blocks(env: Env) -> None:
    for k, size in enumerate([1000, 2000, 3000, 4000]):
        env.add(NOW - timedelta(days=k + 1), size)
    env.add(NOW - timedelta(minutes=10), 500)
    assert window(env.snap(), "5h").provenance == "unknown"
    env.add(NOW - timedelta(days=6), 5000)
    w = window(env.snap(), "5h")
    assert w.provenance == "learned"
    assert w.limit_tokens == 4600  # inclusive P90 of 1000..5000
    assert w.percent == pytest.approx(500 / 4600 * 100)


def test_history_cache_survives_in_kv_and_is_keyed_by_the_window(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(5):
        env.add(NOW - timedelta(days=k + 1), 1000 * (k + 1))
    env.add(NOW - timedelta(minutes=10), 500)
    first = window(env.snap(), "5h")
    assert first.provenance == "learned"
    assert env.store.get_kv(f"windows:learn:{env.root().key}:5h") is not None
    real_hourly = env.store.hourly

    def no_history(**kw: int) -> list[tuple[int, int, int, int, int]]:
        if kw["since_ms"] < utc_ms(NOW - timedelta(days=20)):
            raise AssertionError("historical query repeated")
        return real_hourly(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(env.store, "hourly", no_history)
    # a new process (fresh memory) and live usage in the same window: served from kv
    env.add(NOW - timedelta(minutes=1), 50)
    again = window(env.snap(NOW + timedelta(minutes=1)), "5h")
    assert again.limit_tokens == first.limit_tokens and again.used_tokens == 550
    monkeypatch.setattr(env.store, "hourly", real_hourly)
    # an old log read late (a backfill) recomputes at once
    env.add(NOW - timedelta(days=8), 100_000)
    assert window(env.snap(NOW + timedelta(minutes=1)), "5h").limit_tokens != first.limit_tokens


# -- weekly ------------------------------------------------------------------------------


def test_rolling_week_has_drift_instead_of_reset(env: Env) -> None:
    env.add(NOW - timedelta(days=6, hours=23), 7000)
    env.add(NOW - timedelta(days=6, hours=22, minutes=30), 1000)
    env.add(NOW - timedelta(days=2), 2000)
    env.add(NOW - timedelta(days=8), 99_999)  # outside the window
    settings = Settings(claude=AgentSettings(weekly_tokens=100_000))
    w = window(env.snap(settings=settings), "weekly")
    assert w.rolling and w.resets_at is None and w.projected_percent is None
    assert w.used_tokens == 10_000 and w.percent == pytest.approx(10.0)
    assert w.drift is not None
    assert w.drift.at == NOW + timedelta(hours=1)
    assert w.drift.frees_tokens == 8000 and w.drift.frees_percent == pytest.approx(8.0)


def test_week_keeps_the_phase_of_a_past_official_reset(env: Env) -> None:
    env.add(NOW - timedelta(days=1), 300, agent="codex")
    past_reset = NOW - timedelta(days=2, hours=3)
    env.observe(codex_obs(10080, 80.0, past_reset, past_reset - timedelta(hours=1)))
    w = window(env.snap(), "weekly", "codex")
    assert w.provenance != "official" and not w.rolling
    assert w.start == past_reset and w.resets_at == past_reset + timedelta(days=7)
    assert w.used_tokens == 300


def test_anchored_week_in_a_zone(env: Env) -> None:
    settings = Settings(weekly=WeeklySettings(anchor="mon 09:00", timezone="Asia/Tokyo"))
    env.add(datetime(2026, 11, 23, 0, 30, tzinfo=UTC), 10)  # Mon 09:30 JST: this week
    env.add(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), 20)  # Mon 08:30 JST: last week
    w = window(env.snap(settings=settings), "weekly")
    assert w.start == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert w.resets_at == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert w.used_tokens == 10 and not w.rolling


def test_anchored_week_zone_override_is_dst_correct(env: Env) -> None:
    env.add(datetime(2026, 3, 27, 12, tzinfo=UTC), 10)
    settings = Settings(weekly=WeeklySettings(anchor="mon 09:00"))
    snap = env.snap(datetime(2026, 3, 28, 12, tzinfo=UTC), settings=settings,
                    zone=ZoneInfo("Europe/Berlin"))
    w = window(snap, "weekly")
    assert w.resets_at is not None and w.start is not None
    assert w.resets_at - w.start == timedelta(hours=167)


# -- Gemini and accounts ---------------------------------------------------------------------


def test_gemini_daily_request_quota_resets_at_midnight_pacific(env: Env) -> None:
    settings = Settings(gemini=AgentSettings(plan="free"))
    env.add(datetime(2026, 11, 23, 7, 59, tzinfo=UTC), 50, agent="gemini")  # 23:59 PST
    for minute in range(3):
        env.add(datetime(2026, 11, 23, 8, minute, tzinfo=UTC), 50, agent="gemini")
    snap = env.snap(settings=settings)
    (w,) = next(a for a in snap.agents if a.agent == "gemini").windows
    assert w.kind == "daily" and w.unit == "requests"
    assert w.start == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert w.resets_at == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert w.requests == 3 and w.limit_requests == 1000
    assert w.percent == pytest.approx(0.3) and w.provenance == "plan"


def test_each_account_is_its_own_agent_state(env: Env) -> None:
    env.add(NOW - timedelta(minutes=5), 100, name="personal")
    env.add(NOW - timedelta(minutes=5), 700, name="work")
    snap = env.snap()
    assert window(snap, "5h", account="personal").used_tokens == 100
    assert window(snap, "5h", account="work").used_tokens == 700


def test_snapshot_round_trips_through_json(env: Env) -> None:
    env.add(NOW - timedelta(minutes=5), 100)
    snap = env.snap()
    again = Snapshot.from_dict(snap.to_dict())
    assert again == snap


def test_backfilled_old_events_invalidate_the_cached_week(env: Env) -> None:
    cache = HistoryCache()
    env.add(NOW - timedelta(days=3), 1000)
    env.add(NOW - timedelta(minutes=5), 10)
    assert window(env.snap(cache=cache), "weekly").used_tokens == 1010
    env.add(NOW - timedelta(days=4), 500)  # an old log file read late
    assert window(env.snap(cache=cache), "weekly").used_tokens == 1510

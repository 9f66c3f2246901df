"""Where 100 % comes from: official figures, calibration, plans, P90, precedence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tokend import limits as lim
from tokend.config import AgentSettings
from tokend.store import LimitRow

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def row(
    *,
    minutes: int | None = 300,
    pct: float | None = 40.0,
    resets_in: timedelta | None = timedelta(hours=2),
    age: timedelta = timedelta(minutes=5),
    limit_id: str = "codex",
    agent: str = "codex",
    source: str = "codex",
    reached: bool = False,
) -> LimitRow:
    return LimitRow(
        agent, f"{agent}:/r", limit_id, minutes, pct,
        NOW + resets_in if resets_in is not None else None, NOW - age, source, reached,
        None, None,
    )


def test_window_kind_comes_from_window_minutes_not_the_slot() -> None:
    assert lim.kind_of(300, None, NOW) == "5h"
    assert lim.kind_of(10080, None, NOW) == "weekly"
    assert lim.kind_of(1440, None, NOW) is None
    # no length: a reset within 5 hours is the 5-hour window
    assert lim.kind_of(None, NOW + timedelta(hours=3), NOW) == "5h"
    assert lim.kind_of(None, NOW + timedelta(days=3), NOW) == "weekly"


def test_weekly_observation_is_never_taken_for_the_5h_window() -> None:
    rows = [row(minutes=10080, pct=69.0, resets_in=timedelta(days=2))]
    assert lim.current_official(rows, "codex", "5h", NOW) is None
    got = lim.current_official(rows, "codex", "weekly", NOW)
    assert got is not None and got.percent == 69.0
    assert got.start == NOW + timedelta(days=2) - timedelta(minutes=10080)


def test_official_start_uses_the_observed_window_length() -> None:
    got = lim.current_official([row(minutes=240)], "codex", "5h", NOW)
    assert got is not None and got.start == NOW + timedelta(hours=2) - timedelta(minutes=240)


def test_stale_official_after_reset_is_not_current() -> None:
    rows = [row(pct=90.0, resets_in=-timedelta(minutes=1), age=timedelta(hours=3))]
    assert lim.current_official(rows, "codex", "5h", NOW) is None


def test_official_without_reset_expires_after_one_window_length() -> None:
    fresh = row(resets_in=None, age=timedelta(hours=4))
    old = row(resets_in=None, age=timedelta(hours=5))
    assert lim.current_official([fresh], "codex", "5h", NOW) is not None
    assert lim.current_official([old], "codex", "5h", NOW) is None


def test_newest_official_wins_and_limit_error_means_full() -> None:
    rows = [
        row(agent="claude", limit_id="claude", source="claude_statusline", pct=70.0,
            age=timedelta(minutes=30)),
        row(agent="claude", limit_id="claude", source="claude_limit_error", pct=None,
            reached=True, minutes=None, age=timedelta(minutes=2)),
    ]
    got = lim.current_official(rows, "claude", "5h", NOW)
    assert got is not None
    assert got.percent == 100.0 and got.source == "claude_limit_error"
    assert got.observed_at == NOW - timedelta(minutes=2)


def test_model_specific_buckets_and_future_rows_are_ignored() -> None:
    rows = [row(limit_id="codex_spark", pct=99.0), row(age=-timedelta(minutes=1), pct=88.0)]
    assert lim.current_official(rows, "codex", "5h", NOW) is None


def test_calibration_is_a_ratio_of_sums_over_usable_recent_windows() -> None:
    samples = [
        lim.Sample(tokens=999_999, percent=1.0),  # rounding noise: ignored
        lim.Sample(tokens=0, percent=30.0),  # used elsewhere: ignored
        lim.Sample(tokens=1_000, percent=10.0),
        lim.Sample(tokens=6_000, percent=40.0),
    ]
    got = lim.tokens_per_percent(samples)
    assert got is not None and got[0] == pytest.approx(7_000 / 50) and got[1] == 2
    many = [lim.Sample(100, 10.0)] * 3 + [lim.Sample(1000, 10.0)] * lim.CALIBRATION_WINDOWS
    got = lim.tokens_per_percent(many)
    assert got is not None and got[0] == pytest.approx(100.0)
    assert got[1] == lim.CALIBRATION_WINDOWS
    assert lim.tokens_per_percent([]) is None


def test_p90_needs_five_windows_and_never_exceeds_the_largest() -> None:
    assert lim.p90([50_000, 100_000, 5_000, 7_000]) is None
    assert lim.p90([0, 0, 0, 10, 20]) is None  # empty windows do not count
    five = [10.0, 20.0, 30.0, 40.0, 100.0]
    assert lim.p90(five) == pytest.approx(76.0)  # 40 + 0.6 * (100 - 40)
    many = list(range(1, 101))
    assert lim.p90(many) == pytest.approx(90.1)
    assert lim.p90([7.0] * 6) == 7.0
    for values in ([1.0, 2.0, 3.0, 4.0, 1000.0], [5.0, 5.0, 5.0, 5.0, 6.0]):
        result = lim.p90(values)
        assert result is not None and result <= max(values)


def test_plan_presets_are_labelled_community_estimates() -> None:
    got = lim.plan_limit("claude", "5h", AgentSettings(plan="max5"))
    assert got is not None
    assert got.amount == 88_000 and got.unit == "io_tokens"
    assert "community estimate" in got.basis
    assert lim.plan_limit("claude", "weekly", AgentSettings(plan="max5")) is None
    explicit = lim.plan_limit("claude", "5h", AgentSettings(plan="max5", five_hour_tokens=500))
    assert explicit is not None and explicit.amount == 500 and explicit.unit == "tokens"
    gem = lim.plan_limit("gemini", "daily", AgentSettings(plan="free"))
    assert gem is not None and gem.amount == 1000 and gem.unit == "requests"


def _resolve(**kw: object) -> lim.Resolved:
    args: dict[str, object] = dict(
        official=None, calibration=None, plan=None, learned=None,
        tokens=5_000, io_tokens=500, requests=7,
    )
    args.update(kw)
    return lim.resolve(**args)  # type: ignore[arg-type]


def test_precedence_official_calibrated_plan_learned_unknown() -> None:
    official = lim.Official("5h", 25.0, NOW, NOW + timedelta(hours=1), 300, "codex")
    plan = lim.PlanLimit(10_000, "tokens", "configured")
    full = dict(official=official, calibration=(100.0, 3), plan=plan, learned=(20_000.0, 6))
    got = _resolve(**full)
    assert (got.provenance, got.percent, got.observed_at) == ("official", 25.0, NOW)
    assert got.limit == pytest.approx(20_000)  # 5 000 tokens are 25 %
    full["official"] = None
    got = _resolve(**full)
    assert got.provenance == "calibrated" and got.percent == pytest.approx(50.0)
    full["calibration"] = None
    got = _resolve(**full)
    assert got.provenance == "plan" and got.percent == pytest.approx(50.0)
    full["plan"] = None
    got = _resolve(**full)
    assert got.provenance == "learned" and got.percent == pytest.approx(25.0)
    assert "P90 of 6" in got.basis
    full["learned"] = None
    got = _resolve(**full)
    assert (got.provenance, got.percent) == ("unknown", None)


def test_io_token_preset_counts_input_and_output_only() -> None:
    plan = lim.PlanLimit(1_000, "io_tokens", "preset")
    got = _resolve(plan=plan)
    assert got.percent == pytest.approx(50.0) and got.unit == "io_tokens"


def test_requests_window_is_never_calibrated() -> None:
    got = _resolve(calibration=(1.0, 5), learned=(14.0, 5), unit="requests")
    assert got.provenance == "learned" and got.percent == pytest.approx(50.0)


def test_official_scale_prefers_the_marginal_change() -> None:
    official = lim.Official("weekly", 40.0, NOW, NOW + timedelta(days=1), 10080, "codex")
    got = _resolve(official=official, marginal=(2_000, 20.0), calibration=(1.0, 3))
    assert got.limit == pytest.approx(10_000)
    too_small = _resolve(official=official, marginal=(2_000, 1.0))
    assert too_small.limit == pytest.approx(5_000 / 40 * 100)  # the whole window instead


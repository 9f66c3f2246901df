"""Reports: local-day grouping in any zone, weeks, months, sessions, filters, the
ccusage JSON keys, CSV, unpriced models, and the rollup staying in step with the store."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tokend.cli import main
from tokend.errors import ConfigError
from tokend.models import UsageEvent, utc_ms
from tokend.paths import Paths
from tokend.pricing import PriceTable
from tokend.reports import (
    Report,
    ReportOptions,
    Rollup,
    build_report,
    offset_segments,
    parse_day,
    render_csv,
    render_json,
    render_table,
    resolve_zone,
)
from tokend.store import Store

UTC = timezone.utc
PRICES = PriceTable.bundled()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


_counter = iter(range(10**9))


def ev(when: str, *, model: str = "claude-sonnet-4-5", agent: str = "claude",
       session: str = "s1", project: str = "/home/u/src/alpha", key: str | None = None,
       input: int = 100, output: int = 50, cache_read: int = 0, w5: int = 0, w1: int = 0,
       reasoning: int = 0, speed: str | None = None, rank: int = 0) -> UsageEvent:
    return UsageEvent(
        agent=agent,  # type: ignore[arg-type]
        dedup_key=key or f"k{next(_counter)}", timestamp=at(when), session_id=session,
        project=project, model=model, input_tokens=input, output_tokens=output,
        cache_read_tokens=cache_read, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
        reasoning_tokens=reasoning, speed=speed, rank=rank,
    )


def commit(store: Store, events: list[UsageEvent], *, now: datetime | None = None,
           prices: PriceTable = PRICES) -> None:
    """Commit as the tailer would: ``now`` is when the batch was read."""
    latest = max(e.timestamp for e in events)
    for agent in sorted({e.agent for e in events}):
        store.commit_batch(
            path=f"/logs/{agent}.jsonl", agent=agent, root=f"{agent}:/logs", dev=1, ino=1,
            offset=1, size=1, mtime_ns=0, state=None, malformed=0,
            events=[e for e in events if e.agent == agent], observations=[],
            cost_fn=prices.cost, now_ms=utc_ms(now or latest + timedelta(seconds=5)),
        )
    store.set_kv("prices", prices.fingerprint)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "usage.sqlite3") as s:
        yield s


@pytest.fixture
def rollup(tmp_path: Path, store: Store) -> Iterator[Rollup]:
    with Rollup(tmp_path / "rollup.sqlite3", store.path) as r:
        yield r


def report(rollup: Rollup, **options: object) -> Report:
    rollup.sync()
    return build_report(rollup, ReportOptions(**options))  # type: ignore[arg-type]


def periods(rep: Report) -> dict[str, int]:
    return {r.key: r.usage.total for r in rep.rows}


# -- grouping ------------------------------------------------------------------------


def test_days_are_local_days_of_the_requested_zone(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T23:30:00", input=1, output=0),
                   ev("2026-01-10T03:00:00", input=10, output=0)])
    assert periods(report(rollup, zone=UTC)) == {"2026-01-09": 1, "2026-01-10": 10}
    # 23:30Z is 05:00 the next day in India: both land on the 10th.
    assert periods(report(rollup, zone=ZoneInfo("Asia/Kolkata"))) == {"2026-01-10": 11}
    # and 18:30 / 22:00 the previous evening in New York: both on the 9th.
    assert periods(report(rollup, zone=ZoneInfo("America/New_York"))) == {"2026-01-09": 11}


def test_quarter_hour_zone_splits_exactly_at_local_midnight(
    store: Store, rollup: Rollup
) -> None:
    # Nepal is UTC+5:45: 18:14:59Z is 23:59:59 local, 18:15:00Z is midnight.
    commit(store, [ev("2026-01-09T18:14:59", input=1, output=0),
                   ev("2026-01-09T18:15:00", input=10, output=0)])
    assert periods(report(rollup, zone=ZoneInfo("Asia/Kathmandu"))) == {
        "2026-01-09": 1, "2026-01-10": 10,
    }


def test_days_follow_daylight_saving_changes(store: Store, rollup: Rollup) -> None:
    # Berlin: +1 before 2026-03-29 01:00Z, +2 after.
    commit(store, [ev("2026-03-28T22:59:00", input=1, output=0),   # 23:59 CET, the 28th
                   ev("2026-03-28T23:00:00", input=10, output=0),  # 00:00 CET, the 29th
                   ev("2026-03-29T21:59:00", input=100, output=0),  # 23:59 CEST, the 29th
                   ev("2026-03-29T22:00:00", input=1000, output=0)])  # 00:00 CEST, the 30th
    assert periods(report(rollup, zone=ZoneInfo("Europe/Berlin"))) == {
        "2026-03-28": 1, "2026-03-29": 110, "2026-03-30": 1000,
    }
    segments = offset_segments(ZoneInfo("Europe/Berlin"), utc_ms(at("2026-03-01T00:00:00"))
                               // 900_000, utc_ms(at("2026-04-01T00:00:00")) // 900_000)
    assert [off for _, off in segments] == [3_600_000, 7_200_000]
    assert segments[1][0] * 900_000 == utc_ms(at("2026-03-29T01:00:00"))


def test_weeks_start_on_sunday_by_default_like_ccusage(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00"), ev("2026-01-10T10:00:00"),
                   ev("2026-01-11T10:00:00")])  # Fri, Sat, Sun
    assert list(periods(report(rollup, kind="weekly", zone=UTC))) == [
        "2026-01-04", "2026-01-11",
    ]
    monday = report(rollup, kind="weekly", zone=UTC, start_of_week=0)
    assert list(periods(monday)) == ["2026-01-05"]
    assert render_json(monday)["weekly"][0]["week"] == "2026-01-05"


def test_months(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-31T23:30:00", input=1, output=0),
                   ev("2026-02-03T08:00:00", input=10, output=0)])
    assert periods(report(rollup, kind="monthly", zone=UTC)) == {"2026-01": 1, "2026-02": 10}
    # in Tokyo the last day of January is already February
    tokyo = report(rollup, kind="monthly", zone=ZoneInfo("Asia/Tokyo"))
    assert periods(tokyo) == {"2026-02": 11}
    assert render_json(tokyo)["monthly"][0]["month"] == "2026-02"


def test_sessions(store: Store, rollup: Rollup) -> None:
    commit(store, [
        ev("2026-01-09T10:00:00", session="alpha", model="claude-sonnet-4-20250514"),
        ev("2026-01-10T09:15:00.250000", session="alpha", model="claude-opus-4-20250514"),
        ev("2026-01-09T12:00:00", session="beta", project="/home/u/src/beta",
           model="claude-haiku-4-5"),
    ])
    data = render_json(report(rollup, kind="sessions", zone=UTC))
    rows = data["sessions"]
    assert [r["sessionId"] for r in rows] == ["beta", "alpha"]  # by last activity
    alpha = rows[1]
    assert alpha["projectPath"] == "/home/u/src/alpha"
    assert alpha["firstActivity"] == "2026-01-09T10:00:00.000Z"
    assert alpha["lastActivity"] == "2026-01-10T09:15:00.250Z"
    assert alpha["modelsUsed"] == ["claude-sonnet-4-20250514", "claude-opus-4-20250514"]
    assert alpha["totalTokens"] == 300 and alpha["agent"] == "claude"
    assert data["totals"]["totalTokens"] == 450


# -- filters -------------------------------------------------------------------------


def test_since_until_are_inclusive_local_days(store: Store, rollup: Rollup) -> None:
    commit(store, [ev(f"2026-01-{d:02d}T12:00:00", input=d, output=0) for d in range(1, 8)])
    rep = report(rollup, zone=UTC, since=date(2026, 1, 3), until=date(2026, 1, 5))
    assert periods(rep) == {"2026-01-03": 3, "2026-01-04": 4, "2026-01-05": 5}
    assert rep.totals.total == 12
    # bounds are local: 2026-01-03T12:00Z is already the 4th in Kiritimati (+14)
    kiri = report(rollup, zone=ZoneInfo("Pacific/Kiritimati"), since=date(2026, 1, 4),
                  until=date(2026, 1, 4))
    assert periods(kiri) == {"2026-01-04": 3}
    assert parse_day("20260103", "--since") == date(2026, 1, 3)
    assert parse_day("2026-01-03", "--since") == date(2026, 1, 3)
    with pytest.raises(ConfigError, match="--until"):
        parse_day("3/1/2026", "--until")


def test_agent_and_project_filters(store: Store, rollup: Rollup) -> None:
    commit(store, [
        ev("2026-01-09T10:00:00", agent="claude", project="/home/u/src/Alpha", input=1,
           output=0),
        ev("2026-01-09T10:00:00", agent="codex", model="gpt-5.1-codex",
           project="/home/u/src/beta", input=10, output=0),
        ev("2026-01-09T10:00:00", agent="gemini", model="gemini-2.5-pro",
           project="/home/u/src/alphabet", input=100, output=0),
    ])
    assert report(rollup, zone=UTC, agent="codex").totals.total == 10
    assert report(rollup, zone=UTC, project="alpha").totals.total == 101  # case-insensitive
    assert report(rollup, zone=UTC, project="alpha", agent="gemini").totals.total == 100
    assert report(rollup, kind="sessions", zone=UTC, project="beta").totals.total == 10


def test_instances_group_per_project(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00", project="/p/a", input=1, output=0),
                   ev("2026-01-09T11:00:00", project="/p/b", input=10, output=0),
                   ev("2026-01-10T11:00:00", project="/p/b", input=100, output=0)])
    data = render_json(report(rollup, zone=UTC, instances=True))
    assert set(data) == {"projects", "totals"}
    assert [r["date"] for r in data["projects"]["/p/b"]] == ["2026-01-09", "2026-01-10"]
    assert data["projects"]["/p/a"][0]["project"] == "/p/a"
    assert data["totals"]["totalTokens"] == 111


# -- output shapes -------------------------------------------------------------------

CCUSAGE_ROW = {"date", "inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens",
               "totalTokens", "totalCost", "modelsUsed", "modelBreakdowns"}
CCUSAGE_TOTALS = {"inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens",
                  "totalTokens", "totalCost"}
CCUSAGE_BREAKDOWN = {"modelName", "inputTokens", "outputTokens", "cacheCreationTokens",
                     "cacheReadTokens", "cost"}


def test_json_keys_and_token_semantics_match_ccusage(store: Store, rollup: Rollup) -> None:
    commit(store, [
        ev("2026-01-09T10:00:00", model="claude-sonnet-4-20250514", input=100, output=50,
           cache_read=10, w5=20, w1=5),
        ev("2026-01-09T11:00:00", model="claude-opus-4-6", input=200, output=75,
           cache_read=20, w5=50, speed="fast"),
    ])
    data = render_json(report(rollup, zone=UTC))
    assert set(data) == {"daily", "totals"}
    row = data["daily"][0]
    assert set(row) >= CCUSAGE_ROW
    assert {"agent", "cacheCreation5mTokens", "cacheCreation1hTokens", "reasoningOutputTokens",
            "requests", "unpricedModels"} <= set(row)
    assert set(data["totals"]) >= CCUSAGE_TOTALS
    assert all(set(b) >= CCUSAGE_BREAKDOWN for b in row["modelBreakdowns"])
    assert row["inputTokens"] == 300 and row["outputTokens"] == 125
    assert row["cacheCreationTokens"] == 75 and row["cacheCreation1hTokens"] == 5
    assert row["cacheReadTokens"] == 30 and row["totalTokens"] == 530  # ccusage fixture day
    # fast mode is its own model bucket, named as ccusage names it
    assert row["modelsUsed"] == ["claude-sonnet-4-20250514", "claude-opus-4-6-fast"]
    assert row["modelBreakdowns"][0]["modelName"] == "claude-opus-4-6-fast"  # costliest first
    sonnet = (100 * 3 + 50 * 15 + 10 * 0.3 + 20 * 3.75 + 5 * 6) / 1e6
    opus_fast = (200 * 5 + 75 * 25 + 20 * 0.5 + 50 * 6.25) / 1e6 * 6
    assert row["totalCost"] == pytest.approx(sonnet + opus_fast)
    assert row["agent"] == "all" and row["unpricedModels"] == []
    json.dumps(data)  # serialisable


def test_codex_rows_also_carry_ccusage_codex_keys(store: Store, rollup: Rollup) -> None:
    # Codex input 1000 of which 250 cached: the parser stores 750 uncached + 250 read.
    commit(store, [ev("2026-05-13T10:00:00", agent="codex", model="gpt-5.2-codex", input=750,
                      cache_read=250, output=125, reasoning=75)])
    data = render_json(report(rollup, zone=UTC, agent="codex"))
    row = data["daily"][0]
    assert row["inputTokens"] == 750 and row["cacheReadTokens"] == 250
    assert row["cacheCreationTokens"] == 0 and row["reasoningOutputTokens"] == 75
    assert row["totalTokens"] == 1125  # reasoning is inside output, not added again
    assert row["costUSD"] == pytest.approx(0.00310625) == row["totalCost"]
    assert row["models"]["gpt-5.2-codex"]["isFallback"] is False
    assert data["totals"]["costUSD"] == pytest.approx(0.00310625)


def test_gemini_thoughts_count_in_total_not_in_output_like_ccusage(
    store: Store, rollup: Rollup
) -> None:
    # Gemini: 10k prompt of which 4k cached, 2k candidates + 1k thoughts (billed as output)
    commit(store, [ev("2026-01-09T10:00:00", agent="gemini", model="gemini-2.5-pro",
                      input=6000, cache_read=4000, output=3000, reasoning=1000)])
    row = render_json(report(rollup, zone=UTC))["daily"][0]
    assert (row["inputTokens"], row["outputTokens"], row["cacheReadTokens"]) == (6000, 2000, 4000)
    assert row["totalTokens"] == 13000 and row["reasoningOutputTokens"] == 1000
    assert row["totalCost"] == pytest.approx(0.038)  # what ccusage gemini daily says


def test_csv_header_and_breakdown_lines(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00", model="claude-sonnet-4-5"),
                   ev("2026-01-09T11:00:00", model="claude-haiku-4-5")])
    text = render_csv(report(rollup, zone=UTC))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["date", "inputTokens", "outputTokens", "cacheCreationTokens",
                        "cacheCreation5mTokens", "cacheCreation1hTokens", "cacheReadTokens",
                        "reasoningOutputTokens", "totalTokens", "requests", "totalCost",
                        "unpricedModels"]
    assert lines[1][:3] == ["2026-01-09", "200", "100"] and len(lines) == 2
    broken = list(csv.reader(io.StringIO(render_csv(report(rollup, zone=UTC, breakdown=True)))))
    assert broken[0][:2] == ["date", "modelName"]
    assert [r[1] for r in broken[1:]] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    sessions = list(csv.reader(io.StringIO(render_csv(report(rollup, kind="sessions",
                                                               zone=UTC)))))
    assert sessions[0][:5] == ["sessionId", "projectPath", "firstActivity", "lastActivity",
                               "agent"]


def test_unpriced_models_are_shown_as_such_never_zero(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00", model="mystery-model"),
                   ev("2026-01-10T10:00:00", model="mystery-model"),
                   ev("2026-01-10T11:00:00", model="claude-sonnet-4-5")])
    rep = report(rollup, zone=UTC)
    data = render_json(rep)
    only_unpriced, mixed = data["daily"]
    assert only_unpriced["totalCost"] is None
    assert only_unpriced["unpricedModels"] == ["mystery-model"]
    assert only_unpriced["modelBreakdowns"][0]["cost"] is None
    assert mixed["totalCost"] == pytest.approx((100 * 3 + 50 * 15) / 1e6)
    assert mixed["unpricedModels"] == ["mystery-model"]
    assert data["totals"]["unpricedModels"] == ["mystery-model"]
    table = render_table(rep)
    day_line = next(line for line in table.splitlines() if line.startswith("2026-01-09"))
    assert day_line.rstrip().endswith("—") and "$0.00" not in day_line
    assert "mystery-model" in table.splitlines()[-2]
    total_line = next(line for line in table.splitlines() if line.startswith("Total"))
    assert total_line.rstrip().endswith("*")


def test_table_is_aligned_with_a_totals_row(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00", input=1234567), ev("2026-01-10T10:00:00")])
    lines = render_table(report(rollup, zone=UTC, breakdown=True)).splitlines()
    assert lines[0].split()[:2] == ["Date", "Input"]
    assert lines[-1].startswith("Total") and "1,234,767" in lines[-1]
    widths = {len(line) for line in lines if line and not line.startswith("  └")}
    assert len(widths) == 1  # every row as wide as the rule
    assert any(line.startswith("  └ claude-sonnet-4-5") for line in lines)


# -- the rollup keeps in step --------------------------------------------------------


def test_new_events_are_added_incrementally(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00", input=1, output=0)])
    assert report(rollup, zone=UTC).totals.total == 1
    assert rollup.sync() == "fresh"
    commit(store, [ev("2026-01-09T10:05:00", input=10, output=0),
                   ev("2026-01-11T10:00:00", input=100, output=0)])
    assert rollup.sync() == "incremental"
    rep = build_report(rollup, ReportOptions(zone=UTC))
    assert periods(rep) == {"2026-01-09": 11, "2026-01-11": 100}


def test_session_totals_follow_incremental_changes(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-09T10:00:00", session="a", input=1, output=0),
                   ev("2026-01-09T10:00:00", session="b", input=2, output=0)])
    assert periods(report(rollup, kind="sessions", zone=UTC)) == {"a": 1, "b": 2}
    commit(store, [ev("2026-01-10T09:00:00", session="a", input=10, output=0),
                   ev("2026-01-10T09:30:00", session="c", input=100, output=0)])
    assert rollup.sync() == "incremental"
    rep = build_report(rollup, ReportOptions(kind="sessions", zone=UTC))
    assert periods(rep) == {"a": 11, "b": 2, "c": 100}
    assert render_json(rep)["sessions"][1]["lastActivity"] == "2026-01-10T09:00:00.000Z"
    # a date range cuts sessions to the activity inside it
    cut = report(rollup, kind="sessions", zone=UTC, since=date(2026, 1, 10))
    assert periods(cut) == {"a": 10, "c": 100}


def test_in_place_upgrade_of_a_recent_event_is_seen(store: Store, rollup: Rollup) -> None:
    # Claude writes a partial copy of a message, then the complete one; the tailer
    # read the first copy a while after the message started (another bucket).
    commit(store, [ev("2026-01-09T09:40:00", key="m1:r1", output=1, rank=1)],
           now=at("2026-01-09T10:10:00"))
    assert report(rollup, zone=UTC).totals.output == 1
    commit(store, [ev("2026-01-09T09:40:00", key="m1:r1", output=500, rank=500)],
           now=at("2026-01-09T10:11:00"))
    assert rollup.sync() == "incremental"
    assert build_report(rollup, ReportOptions(zone=UTC)).totals.output == 500


def test_vanished_rows_force_a_rebuild(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-01T10:00:00", key="old", input=7, output=0),
                   ev("2026-01-09T10:00:00", input=1, output=0)])
    assert report(rollup, zone=UTC).totals.total == 8
    with store.db:
        store.db.execute("DELETE FROM events WHERE dedup_key = 'old'")
    commit(store, [ev("2026-01-09T11:00:00", input=10, output=0)])
    assert rollup.sync() == "rebuilt"
    assert build_report(rollup, ReportOptions(zone=UTC)).totals.total == 11


def test_repricing_rebuilds_costs(store: Store, rollup: Rollup, tmp_path: Path) -> None:
    commit(store, [ev("2026-01-09T10:00:00", model="my-model", input=1_000_000, output=0)])
    assert report(rollup, zone=UTC).totals.known_cost is None
    user = tmp_path / "prices.toml"
    user.write_text('[models."my-model"]\ninput = 2.0\noutput = 4.0\n')
    table = PriceTable.load(user)
    assert store.reprice(table.cost, table.fingerprint)
    assert rollup.sync() == "rebuilt"
    assert build_report(rollup, ReportOptions(zone=UTC)).totals.known_cost == pytest.approx(2.0)


def test_day_cache_follows_incremental_changes(store: Store, rollup: Rollup) -> None:
    commit(store, [ev("2026-01-01T10:00:00", input=2, output=0),
                   ev("2026-01-09T10:00:00", input=1, output=0)])
    berlin = ZoneInfo("Europe/Berlin")
    first = {"2026-01-01": 2, "2026-01-09": 1}
    assert periods(report(rollup, zone=berlin)) == first
    assert periods(report(rollup, zone=berlin)) == first  # cached
    commit(store, [ev("2026-01-09T22:30:00", input=10, output=0)])  # 23:30 in Berlin
    assert periods(report(rollup, zone=berlin)) == {**first, "2026-01-09": 11}
    commit(store, [ev("2026-01-09T23:30:00", input=100, output=0)])  # 00:30 on the 10th
    assert periods(report(rollup, zone=berlin)) == {
        **first, "2026-01-09": 11, "2026-01-10": 100,
    }
    assert periods(report(rollup, zone=UTC)) == {"2026-01-01": 2, "2026-01-09": 111}
    # a log file found later (another root appeared) with older days: redone too,
    # also in a zone behind UTC, where the local day is the UTC day before
    new_york = ZoneInfo("America/New_York")
    before = periods(report(rollup, zone=new_york))
    commit(store, [ev("2026-01-05T03:00:00", input=1000, output=0)],
           now=at("2026-01-10T08:00:00"))
    assert periods(report(rollup, zone=new_york)) == {**before, "2026-01-04": 1000}
    assert periods(report(rollup, zone=berlin))["2026-01-05"] == 1000


def test_zone_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_zone("UTC") is UTC
    assert resolve_zone("Asia/Kolkata") == ZoneInfo("Asia/Kolkata")
    assert resolve_zone(None, {"TZ": "Asia/Tokyo"}) == ZoneInfo("Asia/Tokyo")
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        resolve_zone("Mars/Olympus")


# -- through the CLI -----------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TOKEND_HOME", str(tmp_path / "tokend"))
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_DIR", "XDG_CONFIG_HOME",
                "TOKEND_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    paths = Paths.from_env({"TOKEND_HOME": str(tmp_path / "tokend")})
    with Store(paths.store) as s:
        commit(s, [ev("2026-01-09T23:30:00", input=1, output=0),
                   ev("2026-01-10T10:00:00", model="mystery-model", input=10, output=0),
                   ev("2026-01-10T11:00:00", agent="codex", model="gpt-5.1-codex",
                      session="c1", input=100, output=0)])
    return paths


def test_cli_daily_json(cli_env: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["daily", "--json", "--tz", "Asia/Kolkata"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["date"] for r in data["daily"]] == ["2026-01-10"]
    assert data["totals"]["totalTokens"] == 111
    assert data["totals"]["unpricedModels"] == ["mystery-model"]
    assert main(["daily", "-j", "-z", "UTC", "--since", "20260110", "--agent", "codex"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["totalTokens"] == 100 and "costUSD" in data["totals"]


def test_cli_table_csv_and_sessions(cli_env: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["daily", "--tz", "UTC"]) == 0
    out = capsys.readouterr().out
    assert "Total" in out and "—" in out and "mystery-model" in out
    assert main(["weekly", "--csv", "--tz", "UTC", "--start-of-week", "monday"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][0] == "week" and rows[1][0] == "2026-01-05"
    assert main(["sessions", "--json", "--tz", "UTC"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["sessionId"] for r in data["sessions"]} == {"s1", "c1"}
    assert main(["monthly", "--json", "--project", "nothing-matches"]) == 0
    assert json.loads(capsys.readouterr().out)["monthly"] == []


def test_cli_bad_date_is_a_usage_error(cli_env: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["daily", "--since", "yesterday"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err

"""The HTML report: today and this week per agent and model, self-contained."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tokend.config import Settings, WeeklySettings
from tokend.models import UsageEvent, utc_ms
from tokend.report_html import period_rows, week_start, write_report
from tokend.store import Store

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday


def event(n: int, at: datetime, model: str, agent: str = "claude", tokens: int = 100) -> UsageEvent:
    return UsageEvent(agent=agent, dedup_key=f"{agent}-{n}", timestamp=at,  # type: ignore[arg-type]
                      session_id="s", project="p", model=model, input_tokens=tokens,
                      output_tokens=tokens // 2, cache_read_tokens=tokens * 3,
                      cache_write_5m_tokens=tokens // 10)


def fill(store: Store, events: list[UsageEvent]) -> None:
    def cost(ev: UsageEvent) -> float | None:
        return None if ev.model == "mystery-model" else ev.total_tokens / 1000

    for agent in {e.agent for e in events}:
        store.commit_batch(
            path=f"/logs/{agent}.jsonl", agent=agent, root=f"/{agent}", dev=1, ino=1, offset=1,
            size=1, mtime_ns=1, state=None, malformed=0,
            events=[e for e in events if e.agent == agent], observations=[], cost_fn=cost,
            now_ms=utc_ms(NOW),
        )


def test_report_today_and_week(tmp_path: Path) -> None:
    store = Store(tmp_path / "usage.sqlite3")
    fill(store, [
        event(1, NOW - timedelta(hours=1), "claude-opus-4-5", tokens=1000),
        event(2, NOW - timedelta(hours=2), "claude-sonnet-4-5", tokens=200),
        event(3, NOW - timedelta(days=2), "claude-opus-4-5", tokens=5000),  # Monday
        event(4, NOW - timedelta(days=10), "claude-opus-4-5", tokens=9999),  # last week
        event(5, NOW - timedelta(minutes=5), "gpt-5-codex", agent="codex", tokens=300),
        event(6, NOW - timedelta(minutes=6), "mystery-model", agent="codex", tokens=10),
    ])
    today = period_rows(store, NOW.replace(hour=0), NOW)
    assert [(r.agent, r.model, r.requests) for r in today] == [
        ("claude", "claude-opus-4-5", 1), ("claude", "claude-sonnet-4-5", 1),
        ("codex", "gpt-5-codex", 1), ("codex", "mystery-model", 1),
    ]
    opus = today[0]
    assert (opus.input, opus.output, opus.cache_read, opus.cache_write) == (1000, 500, 3000, 100)
    assert opus.total == 4600 and opus.cost == 4.6
    assert today[3].cost is None and today[3].unpriced == 1

    out = write_report(store, Settings(), NOW, tmp_path / "report" / "r.html", tz=UTC)
    page = out.read_text(encoding="utf-8")
    today_html, week_html = page.split("<h2>This week")
    assert "claude-sonnet-4-5" in today_html and "9,999" not in page
    assert "4,600" in today_html  # opus today
    assert "27,600" in week_html  # opus this (rolling) week: 4,600 + 23,000
    assert "—" in today_html  # the unpriced model's cost is unknown, not $0
    assert "$4.60" in today_html
    # Self-contained: no scripts, no external links or assets.
    assert not re.search(r"<script|<link|src=|https?://", page)
    assert not list(out.parent.glob(".*.tmp"))


def test_empty_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "usage.sqlite3")
    page = write_report(store, Settings(), NOW, tmp_path / "r.html", tz=UTC).read_text()
    assert page.count("No usage recorded.") == 2


def test_week_start_anchor_and_rolling() -> None:
    assert week_start(Settings(), NOW, UTC) == NOW - timedelta(days=7)
    anchored = Settings(weekly=WeeklySettings(anchor="mon 09:00"))
    assert week_start(anchored, NOW, UTC) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    monday_early = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert week_start(anchored, monday_early, UTC) == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)

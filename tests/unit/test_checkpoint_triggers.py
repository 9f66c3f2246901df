"""When checkpoints are written: triggers, rate limit and notifications, on a fake clock.

The Claude fixture session's last request is at 09:41:50; :data:`NOW` is 09:45.
"New activity" appends a request to its transcript and rescans, as the daemon would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.unit.test_checkpoint_support import (
    CLAUDE_SESSION,
    NOW,
    RESETS,
    install,
    scan,
    snapshot,
)
from tokend.checkpoint import due_checkpoints, run_checkpoints
from tokend.config import CheckpointSettings
from tokend.models import LimitObservation
from tokend.snapshot import Snapshot
from tokend.sources.base import Root
from tokend.store import Store

Sent = list[tuple[str, str, Path]]


class Session:
    """The fixture session in a store, with a way to move it on."""

    def __init__(self, tmp_path: Path, hit_limit: bool = False) -> None:
        self.project = tmp_path / "acme-api"
        self.project.mkdir()
        self.root = install("claude", tmp_path / "claude", self.project)
        self.log = next(self.root.path.rglob(f"{CLAUDE_SESSION}.jsonl"))
        if not hit_limit:  # the fixture ends with a limit error line; most tests drop it
            kept = [ln for ln in self.log.read_text().splitlines() if "<synthetic>" not in ln]
            self.log.write_text("\n".join(kept) + "\n")
        self.store = Store(tmp_path / "s.db")
        scan(self.store, self.root)
        self.sent: Sent = []
        self.requests = 0

    def work(self, at: datetime) -> None:
        """One more API request of the session at ``at``."""
        self.requests += 1
        lines = self.log.read_text().splitlines()
        line = json.loads(lines[-1])  # the last assistant line
        line["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        line["message"]["id"] = f"msg_more_{self.requests}"
        line["requestId"] = f"req_more_{self.requests}"
        with open(self.log, "a") as handle:
            handle.write(json.dumps(line) + "\n")
        scan(self.store, self.root)

    def run(self, at: datetime, five_hour: float | None, weekly: float | None = 10.0,
            settings: CheckpointSettings | None = None, resets: datetime = RESETS,
            snap: Snapshot | None = None) -> list[bool]:
        results = run_checkpoints(
            self.store, snap or snapshot(self.root, five_hour, weekly, resets, at),
            settings or CheckpointSettings(), at,
            lambda title, body, path: self.sent.append((title, body, path)),
        )
        return [r.written for r in results]

    @property
    def file(self) -> Path:
        return self.project / ".tokend" / "checkpoints" / f"{CLAUDE_SESSION}.md"


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Session]:
    session = Session(tmp_path)
    yield session
    session.store.close()


def minutes(n: float) -> datetime:
    return NOW + timedelta(minutes=n)


def test_window_crossing_80_writes_and_notifies_once(s: Session) -> None:
    assert s.run(NOW, 79.0) == []
    assert not s.file.exists()
    assert s.run(minutes(0.5), 80.0) == [True]
    assert "because the claude 5-hour window is at 80 %" in s.file.read_text()
    assert [(t, p) for t, _, p in s.sent] == [("Checkpoint saved", s.file)]
    assert "5-hour window is at 80 %" in s.sent[0][1]


def test_rewritten_at_most_every_few_minutes_and_only_after_new_work(s: Session) -> None:
    settings = CheckpointSettings(min_interval_minutes=3)
    assert s.run(NOW, 82.0, settings=settings) == [True]
    s.work(minutes(1))
    assert s.run(minutes(1), 83.0, settings=settings) == []  # too soon
    assert s.run(minutes(3.5), 84.0, settings=settings) == [True]  # new work, 3 min on
    assert "(14 API requests)" in s.file.read_text()
    assert s.run(minutes(8), 84.0, settings=settings) == []  # nothing new since
    s.work(minutes(9))
    assert s.run(minutes(9), 85.0, settings=settings) == [True]
    assert len(s.sent) == 1  # refreshes of the same level are not news


def test_crossing_95_notifies_again(s: Session) -> None:
    assert s.run(NOW, 81.0) == [True]
    s.work(minutes(1))
    assert s.run(minutes(4), 96.0) == [True]
    assert len(s.sent) == 2
    assert "at 96 %" in s.sent[1][1]


def test_weekly_window_triggers_too(s: Session) -> None:
    assert s.run(NOW, 20.0, weekly=95.0) == [True]
    assert "weekly window is at 95 %" in s.file.read_text()


def test_next_window_crossing_80_is_news_again(s: Session) -> None:
    assert s.run(NOW, 85.0) == [True]
    s.work(minutes(4))
    # official reset times jitter by seconds between observations: same window
    assert s.run(minutes(4), 86.0, resets=RESETS + timedelta(seconds=40)) == [True]
    assert len(s.sent) == 1
    s.work(minutes(10))
    assert s.run(minutes(12), 86.0, resets=RESETS + timedelta(hours=5)) == [True]
    assert len(s.sent) == 2


def test_limit_reached_observation_triggers(s: Session) -> None:
    assert s.run(NOW, None, weekly=None) == []
    s.store.add_observations(
        [LimitObservation(agent="claude", limit_id="claude", source="claude_limit_error",
                          observed_at=minutes(1), reached=True, session_id=CLAUDE_SESSION)],
        s.root.key,
    )
    assert s.run(minutes(1), None, weekly=None) == [True]
    assert "usage limit was reached" in s.file.read_text()


def test_limit_error_line_in_the_transcript_triggers(tmp_path: Path) -> None:
    s = Session(tmp_path, hit_limit=True)
    try:
        assert s.run(NOW, None, weekly=None) == [True]
        assert "because the claude usage limit was reached" in s.file.read_text()
    finally:
        s.store.close()


def test_window_of_another_account_does_not_trigger(s: Session) -> None:
    other = Root("claude", Path("/elsewhere/projects"), "work")
    assert s.run(NOW, None, snap=snapshot(other, 99.0, 99.0)) == []


def test_idle_session_is_left_alone(s: Session) -> None:
    last = datetime(2026, 9, 15, 9, 41, 50, tzinfo=timezone.utc)
    assert s.run(last + timedelta(minutes=31), 99.0) == []


@pytest.mark.parametrize(
    ("settings", "due"),
    [
        (CheckpointSettings(max_turns=13), "the session made 13 API requests"),
        (CheckpointSettings(max_turns=14), None),
        (CheckpointSettings(max_cost=3.25), "the session cost $3.25"),
        (CheckpointSettings(max_cost=3.3), None),
        # the last request's prompt: 6 + 900 + 8,600 = 9,506 tokens of 200,000 (4.75 %)
        (CheckpointSettings(context_fraction=0.047),
         "the context is 5 % full (9,506 of 200,000 tokens)"),
        (CheckpointSettings(context_fraction=0.048), None),
        (CheckpointSettings(enabled=False, max_turns=1), None),
    ],
)
def test_session_growing_expensive(s: Session, settings: CheckpointSettings,
                                   due: str | None) -> None:
    found = due_checkpoints(s.store, snapshot(s.root, 10.0), settings, NOW)
    assert [d.reason for d in found] == ([due] if due else [])


def test_on_demand_write_ignores_triggers(s: Session) -> None:
    from tests.unit.test_checkpoint_support import session
    from tokend.checkpoint import write_session_checkpoint

    result = write_session_checkpoint(s.store, session(s.store, CLAUDE_SESSION),
                                      CheckpointSettings(enabled=False), "asked", NOW)
    assert result.written and s.file.exists()


def test_failing_notifier_does_not_cause_rewrites(s: Session) -> None:
    def broken(title: str, body: str, path: Path) -> None:
        raise RuntimeError("no notification server")

    settings = CheckpointSettings()
    assert [r.written for r in run_checkpoints(
        s.store, snapshot(s.root, 90.0), settings, NOW, broken)] == [True]
    assert run_checkpoints(s.store, snapshot(s.root, 90.0), settings, minutes(0.1), broken) == []

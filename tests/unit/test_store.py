"""The SQLite store: schema, dedup winner rules, replay shadowing, repricing."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tokend.errors import StoreError
from tokend.models import LimitObservation, UsageEvent
from tokend.store import SCHEMA_VERSION, Store

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def event(key: str, output: int, *, rank: int | None = None, sidechain: bool = False,
          shadow: str | None = None) -> UsageEvent:
    return UsageEvent(
        agent="claude", dedup_key=key, timestamp=T0, session_id="s", project="/p",
        model="m", input_tokens=1, output_tokens=output,
        rank=output if rank is None else rank, sidechain=sidechain, shadow_key=shadow,
    )


def commit(store: Store, *events: UsageEvent, obs: tuple[LimitObservation, ...] = ()) -> None:
    store.commit_batch(
        path="/logs/a.jsonl", agent="claude", root="claude:/logs", dev=1, ino=2, offset=10,
        size=10, mtime_ns=0, state={"k": 1}, malformed=0, events=list(events),
        observations=list(obs), cost_fn=lambda e: e.output_tokens * 0.001, now_ms=0,
    )


def outputs(store: Store) -> list[int]:
    return [row.output for row in store.events()]


def test_new_store_is_at_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_tokend_is_refused_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


def test_unwritable_store_path_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError) as err:
        Store(blocker / "sub" / "s.db")
    assert str(blocker / "sub" / "s.db") in str(err.value)
    assert err.value.hint


def test_larger_rank_wins_whatever_the_order(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("k", 8), event("k", 164), event("k", 8))
        assert outputs(store) == [164]


def test_equal_rank_later_write_wins(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("k", 5, rank=1), event("k", 7, rank=1))
        assert outputs(store) == [7]


def test_sidechain_replay_does_not_count_beside_its_primary(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("m1:r1", 50, shadow="m1"), event("m1:r2", 50, sidechain=True,
                                                            shadow="m1"))
        assert outputs(store) == [50]


def test_primary_arriving_after_its_replay_replaces_it(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("m1:r2", 60, sidechain=True, shadow="m1"))
        commit(store, event("m1:r1", 50, shadow="m1"))
        rows = list(store.events())
        assert [(r.output, r.sidechain) for r in rows] == [(50, False)]


def test_distinct_sidechain_answers_still_count(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("m1:r1", 50, shadow="m1"), event("m2:r9", 70, sidechain=True,
                                                            shadow="m2"))
        assert sorted(outputs(store)) == [50, 70]


def test_offset_and_state_commit_with_the_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("k", 1))
        row = store.file_row("/logs/a.jsonl")
        assert row is not None and (row.offset, row.state) == (10, {"k": 1})


def test_limit_observations_are_kept_once(tmp_path: Path) -> None:
    obs = LimitObservation(agent="codex", limit_id="codex", observed_at=T0, source="x",
                           window_minutes=300, used_percent=33.0, resets_at=T0)
    with Store(tmp_path / "s.db") as store:
        commit(store, obs=(obs, obs))
        commit(store, obs=(obs,))
        rows = store.limit_rows()
        assert len(rows) == 1
        assert (rows[0].window_minutes, rows[0].used_percent) == (300, 33.0)


def test_reprice_recomputes_only_when_the_table_changes(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("k", 100))
        assert store.reprice(lambda e: 1.0, "v1")
        assert [r.cost for r in store.events()] == [1.0]
        assert not store.reprice(lambda e: 2.0, "v1")
        assert [r.cost for r in store.events()] == [1.0]
        assert store.reprice(lambda e: None, "v2")
        assert store.unpriced_models() == ["m"]

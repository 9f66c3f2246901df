"""The SQLite store: schema, dedup winner rules, replay shadowing, repricing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tokend.errors import StoreError
from tokend.models import LimitObservation, UsageEvent
from tokend.store import PAGE_SIZE, SCHEMA_VERSION, Store
from tokend.store_schema import SHADOWED_REPLAYS, UPSERT_REPLAY

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


def test_new_store_has_large_pages_and_an_old_store_keeps_its_own(tmp_path: Path) -> None:
    with Store(tmp_path / "new.db") as store:
        assert store.db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")  # a store made by an earlier tokend: 4 kB pages
    old.close()
    with Store(tmp_path / "old.db") as store:
        assert store.db.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert store.schema_version == SCHEMA_VERSION


def test_migration_drops_instants_no_log_could_hold(tmp_path: Path) -> None:
    """Earlier versions stored a corrupt year-9999 (or 0001) timestamp as read, and the
    reports that place it in a time zone failed on it for good."""
    with Store(tmp_path / "s.db") as store:
        commit(store, event("good", 5), event("bad", 7),
               obs=(LimitObservation(agent="codex", limit_id="codex", observed_at=T0,
                                     source="codex_rate_limits", window_minutes=300,
                                     used_percent=10.0, resets_at=T0),))
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE events SET ts = 253402300799000 WHERE dedup_key = 'bad'")
    db.execute("UPDATE limits SET resets_at = -62135596800000")
    db.execute("PRAGMA user_version=2")  # a store from before that migration (the third)
    db.commit()
    db.close()
    with Store(tmp_path / "s.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert outputs(store) == [5]
        (limit,) = store.limit_rows()
        assert limit.resets_at is None and limit.used_percent == 10.0


def test_processes_creating_the_store_at_once_all_open_it(tmp_path: Path) -> None:
    """The daemon's worker and a report often open a new store together: each must
    get the whole schema, none a 'table files already exists'."""
    path = tmp_path / "usage.sqlite3"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tokend.store import Store\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "Store(Path(sys.argv[1])).close()\n"
    )
    start = time.time() + 1.0  # every process imported and waiting when it comes
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), str(start)],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=30)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.counts()["events"] == 0


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
        commit(store, event("claude:m1:r1", 50, shadow="m1"),
               event("claude:m1:r2", 50, sidechain=True, shadow="m1"))
        assert outputs(store) == [50]


def test_primary_arriving_after_its_replay_replaces_it(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("claude:m1:r2", 60, sidechain=True, shadow="m1"))
        commit(store, event("claude:m1:r1", 50, shadow="m1"))
        rows = list(store.events())
        assert [(r.output, r.sidechain) for r in rows] == [(50, False)]


def test_distinct_sidechain_answers_still_count(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        commit(store, event("claude:m1:r1", 50, shadow="m1"),
               event("claude:m2:r9", 70, sidechain=True, shadow="m2"))
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


def _batch(store: Store, path: str, *events: UsageEvent, offset: int = 10,
           obs: tuple[LimitObservation, ...] = ()) -> None:
    store.commit_batch(
        path=path, agent="claude", root="claude:/logs", dev=1, ino=len(path), offset=offset,
        size=20, mtime_ns=0, state={"offset": offset}, malformed=offset // 10, events=list(events),
        observations=list(obs), cost_fn=lambda e: e.output_tokens * 0.001, now_ms=offset,
    )


def _everything(store: Store) -> tuple[list[tuple[object, ...]], ...]:
    """Every stored row; events without their id (a plain batch drops a replay at
    once, a bulk load at the end, so the ids after it differ)."""
    return (
        store.db.execute(
            "SELECT e.*, f.path FROM events e JOIN files f ON f.id = e.file_id ORDER BY e.dedup_key"
        ).fetchall(),
        store.db.execute("SELECT * FROM files ORDER BY id").fetchall(),
        store.db.execute("SELECT * FROM limits ORDER BY id").fetchall(),
    )


def test_a_bulk_load_stores_what_plain_batches_store(tmp_path: Path) -> None:
    """Held back and written a group at a time, the batches of a bulk load still give
    every row the id and every winner the plain batch-by-batch upserts give: files
    read before (without events) keep their ids, a file's last batch wins, a key seen
    again keeps its first id, a replay beside its primary goes, limits stay in order."""
    obs = LimitObservation(agent="codex", limit_id="codex", observed_at=T0, source="x",
                           window_minutes=300, used_percent=33.0, resets_at=T0)

    def load(store: Store) -> None:
        _batch(store, "/logs/a.jsonl", event("claude:m1:r2", 60, sidechain=True, shadow="m1"))
        _batch(store, "/logs/b.jsonl", event("claude:m1:r1", 50, shadow="m1"), obs=(obs,))
        store.flush_group()
        _batch(store, "/logs/c.jsonl", event("k", 8), event("claude:m2:r9", 70, sidechain=True,
                                                           shadow="m2"))
        _batch(store, "/logs/a.jsonl", event("k", 164), offset=30)
        row = store.file_row("/logs/a.jsonl")
        assert row is not None and (row.id, row.offset) == (2, 30)  # seen before a commit
        _batch(store, "/logs/d.jsonl", event("k", 9), obs=(obs,))

    stores = {}
    for bulk in (False, True):
        store = stores[bulk] = Store(tmp_path / f"{bulk}.db")
        _batch(store, "/logs/old.jsonl")  # read by an earlier scan, no events
        with store.grouped(), store.bulk_load() if bulk else nullcontext(False) as on:
            assert on == bulk
            load(store)
    bulk, plain = (_everything(stores[b]) for b in (True, False))
    assert [row[1:] for row in bulk[0]] == [row[1:] for row in plain[0]]
    assert bulk[1:] == plain[1:]
    # Ids in order of first write, as SQLite gives them: the replay "claude:m1:r2" had 1.
    ids = stores[True].db.execute("SELECT dedup_key, id, file_id FROM events ORDER BY id")
    assert ids.fetchall() == [("claude:m1:r1", 2, 3), ("k", 3, 2), ("claude:m2:r9", 4, 4)]


def test_a_bulk_load_cut_short_keeps_only_committed_groups(tmp_path: Path) -> None:
    """Rows held back or written without their commit go with the rollback; what was
    committed stays, offsets with their rows."""
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(KeyboardInterrupt), store.grouped(), store.bulk_load():
            _batch(store, "/logs/a.jsonl", event("a", 1))
            store.flush_group()
            _batch(store, "/logs/b.jsonl", event("b", 2))
            store._write_pending()  # in SQLite's transaction, not committed
            _batch(store, "/logs/c.jsonl", event("c", 3))
            raise KeyboardInterrupt
        assert outputs(store) == [1]
        assert [r.path for r in store.file_rows()] == ["/logs/a.jsonl"]
        assert store.get_kv("bulk_load") is None  # indexes rebuilt on the way out


def test_unpriced_models_are_found_without_reading_every_event(tmp_path: Path) -> None:
    """``tokend scan`` names them after every scan, however small: on a long history a
    full read of the events table was most of a rescan (a partial index, schema 4)."""
    with Store(tmp_path / "s.db") as store:
        store.commit_batch(
            path="/logs/a.jsonl", agent="claude", root="claude:/logs", dev=1, ino=2,
            offset=10, size=10, mtime_ns=0, state=None, malformed=0,
            events=[event("a", 5), event("b", 7), event("c", 9)], observations=[],
            cost_fn=lambda e: None if e.dedup_key == "b" else 0.5, now_ms=0,
        )
        db = store.db
        db.execute("UPDATE events SET model = 'gpt-9' WHERE dedup_key = 'b'")
        assert store.unpriced_models() == ["gpt-9"]
        plan = " ".join(str(row) for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT DISTINCT model FROM events WHERE cost IS NULL"))
        assert "events_unpriced" in plan, plan
        store.reprice(lambda e: 1.0, "all priced")
        assert store.unpriced_models() == []
    # A store from before the index gains it when this version opens it.
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("DROP INDEX events_unpriced")
    db.execute("PRAGMA user_version=3")  # schema 4 added it
    db.commit()
    db.close()
    with Store(tmp_path / "s.db") as store:
        names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
        assert "events_unpriced" in names and store.schema_version == SCHEMA_VERSION


def test_replays_and_primaries_are_found_through_indexes(tmp_path: Path) -> None:
    """The replay rule's lookups stay indexed (schema 5): sidechain copies of a
    message through the small ``events_replays`` index, its primaries through the
    dedup key index (every row's message id had an index of its own before). A store
    from before gains the new index and loses the old one when it is opened."""
    with Store(tmp_path / "s.db") as store:
        db = store.db

        def plan(sql: str, params: tuple[object, ...]) -> str:
            return " ".join(str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))

        replays = plan(
            "DELETE FROM events WHERE shadow_key = ? AND sidechain = 1 AND dedup_key != ?",
            ("m", "k"),
        )
        assert "events_replays" in replays, replays
        primaries = plan(UPSERT_REPLAY, (None,) * 24)
        assert "sqlite_autoindex_events_1 (dedup_key>? AND dedup_key<?)" in primaries, primaries
        assert "SCAN" not in primaries.replace("SCAN CONSTANT ROW", ""), primaries
        dropped = plan(SHADOWED_REPLAYS, ())
        assert "SCAN" not in dropped and "events_replays" in dropped, dropped
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("DROP INDEX events_replays")
    db.execute("CREATE INDEX events_shadow ON events(shadow_key) WHERE shadow_key IS NOT NULL")
    db.execute("PRAGMA user_version=4")
    db.commit()
    db.close()
    with Store(tmp_path / "s.db") as store:
        names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
        assert "events_replays" in names and "events_shadow" not in names

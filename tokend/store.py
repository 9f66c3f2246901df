"""The SQLite store: deduplicated usage events, limit observations, file offsets.

One file in WAL mode so the daemon writes while reports and the statusline read.
The offset of a log file is committed in the same transaction as the rows it
produced: a crash between two batches re-reads the uncommitted bytes, and the
dedup keys make that re-read idempotent. Costs are computed at insert time by an
injected function and recomputed when the price table changes
(:meth:`Store.reprice`), so reports are plain SQL sums.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tokend.errors import StoreError
from tokend.models import LimitObservation, UsageEvent, utc_from_ms, utc_ms

__all__ = [
    "SCHEMA_VERSION",
    "CheckpointRow",
    "CostFn",
    "EventRow",
    "FileMark",
    "FileRow",
    "InsertRow",
    "LimitRow",
    "SessionRow",
    "Store",
    "Totals",
    "event_rows",
]

CostFn = Callable[[UsageEvent], "float | None"]

# Each entry moves the schema from version i to i + 1. Never edit a shipped entry:
# add a new one, so every existing store migrates forward. Statements are split on
# ";" (run in one transaction), so none may hold a ";" of its own.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        agent TEXT NOT NULL,
        root TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        state TEXT,
        malformed INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        shadow_key TEXT,
        rank INTEGER NOT NULL,
        agent TEXT NOT NULL,
        root TEXT NOT NULL,
        session_id TEXT NOT NULL,
        project TEXT NOT NULL,
        model TEXT NOT NULL,
        ts INTEGER NOT NULL,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        reasoning INTEGER NOT NULL,
        tools TEXT NOT NULL,
        sidechain INTEGER NOT NULL,
        speed TEXT,
        cost REAL,
        file_id INTEGER
    );
    CREATE INDEX events_agent_ts ON events(agent, ts);
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_shadow ON events(shadow_key) WHERE shadow_key IS NOT NULL;
    CREATE TABLE limits (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        root TEXT NOT NULL,
        limit_id TEXT NOT NULL,
        window_minutes INTEGER NOT NULL,
        used_percent REAL,
        resets_at INTEGER,
        observed_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        reached INTEGER NOT NULL,
        plan_type TEXT,
        session_id TEXT,
        UNIQUE (agent, root, limit_id, window_minutes, observed_at, source)
    );
    CREATE INDEX limits_agent_obs ON limits(agent, observed_at);
    CREATE TABLE alerts (
        key TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        fired_at INTEGER NOT NULL,
        detail TEXT
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE checkpoints (
        session_id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        path TEXT NOT NULL,
        cwd TEXT NOT NULL,
        reason TEXT NOT NULL,
        written_at INTEGER NOT NULL,
        announced_at INTEGER
    );
    CREATE INDEX checkpoints_cwd ON checkpoints(cwd, written_at);
    CREATE INDEX events_session ON events(session_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_TOTAL_SQL = "input + output + cache_read + cache_write_5m + cache_write_1h"

_SECONDARY_INDEXES = {
    "events_agent_ts": "events(agent, ts)",
    "events_ts": "events(ts)",
    "events_shadow": "events(shadow_key) WHERE shadow_key IS NOT NULL",
    "events_session": "events(session_id)",
}
"""The events table's lookup indexes, dropped during a bulk load (:meth:`Store.bulk_load`)
and built once at its end: sorting 100k keys once is several times cheaper than
inserting them one by one into four B-trees."""

_SHADOWED_REPLAYS = """
DELETE FROM events WHERE sidechain = 1 AND shadow_key IS NOT NULL AND EXISTS (
    SELECT 1 FROM events AS p
    WHERE p.shadow_key = events.shadow_key AND p.sidechain = 0 AND p.dedup_key != events.dedup_key
)
"""
"""The replay rule applied set-wise: a sidechain copy never stays beside a primary
of the same message (what the per-batch DELETE and ``_UPSERT_REPLAY`` keep true)."""

FileMark = tuple[int, int, int, int, int]
"""A file's ``(dev, ino, offset, size, mtime_ns)`` as last committed."""

InsertRow = tuple[object, ...]
"""An event as the ``events`` columns want it, ``file_id`` left off (:func:`event_rows`)."""

_BULK_MARK = "bulk_load"

_PENDING_ROWS = 16384
"""Event rows a bulk load holds in Python before handing them to SQLite (besides at
every :meth:`Store.flush_group`): few ``executemany`` calls, bounded memory."""

_STATE_JSON = json.JSONEncoder(separators=(",", ":"))
"""Encodes parser states as ``json.dumps(state, separators=(",", ":"))`` would,
without building an encoder per call (that is most of the cost of a small state)."""

_FILE_COLUMNS = "path, agent, root, dev, ino, offset, size, mtime_ns, state, malformed, updated_at"
_ON_FILE_CONFLICT = """
ON CONFLICT(path) DO UPDATE SET agent=excluded.agent, root=excluded.root,
    dev=excluded.dev, ino=excluded.ino, offset=excluded.offset, size=excluded.size,
    mtime_ns=excluded.mtime_ns, state=excluded.state, malformed=excluded.malformed,
    updated_at=excluded.updated_at
"""
_UPSERT_FILE = (
    f"INSERT INTO files ({_FILE_COLUMNS}) VALUES ({', '.join('?' * 11)}){_ON_FILE_CONFLICT}"
    "RETURNING id"
)
_UPSERT_FILE_WITH_ID = (
    f"INSERT INTO files (id, {_FILE_COLUMNS}) VALUES ({', '.join('?' * 12)}){_ON_FILE_CONFLICT}"
)
"""The files upsert of a bulk load, whose ids are given in Python (:class:`_BulkLoad`)."""

_INSERT_LIMIT = (
    "INSERT OR IGNORE INTO limits (agent, root, limit_id, window_minutes, used_percent, "
    "resets_at, observed_at, source, reached, plan_type, session_id) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)

_EVENT_COLUMNS = (
    "dedup_key, shadow_key, rank, agent, root, session_id, project, model, ts, input, output, "
    "cache_read, cache_write_5m, cache_write_1h, reasoning, tools, sidechain, speed, cost, file_id"
)
_UPSERT_EVENT = f"""
INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({", ".join("?" * 20)})
ON CONFLICT(dedup_key) DO UPDATE SET
    shadow_key=excluded.shadow_key, rank=excluded.rank, root=excluded.root,
    session_id=excluded.session_id, project=excluded.project, model=excluded.model,
    ts=excluded.ts, input=excluded.input, output=excluded.output,
    cache_read=excluded.cache_read, cache_write_5m=excluded.cache_write_5m,
    cache_write_1h=excluded.cache_write_1h, reasoning=excluded.reasoning,
    tools=excluded.tools, sidechain=excluded.sidechain, speed=excluded.speed,
    cost=excluded.cost, file_id=excluded.file_id
WHERE excluded.rank >= events.rank
"""


_UPSERT_REPLAY = _UPSERT_EVENT.replace(
    f"VALUES ({', '.join('?' * 20)})",
    f"SELECT {', '.join('?' * 20)} WHERE NOT EXISTS (SELECT 1 FROM events "
    "WHERE shadow_key = ? AND sidechain = 0 AND dedup_key != ?)",
)
"""The upsert of a sidechain copy, skipped while a primary of its message is stored."""

_DROP_SHADOWED_REPLAY = """
DELETE FROM events WHERE dedup_key = ? AND sidechain = 1 AND shadow_key IS NOT NULL AND EXISTS (
    SELECT 1 FROM events AS p
    WHERE p.shadow_key = events.shadow_key AND p.sidechain = 0 AND p.dedup_key != events.dedup_key
)
"""
"""``_SHADOWED_REPLAYS`` for one dedup key: when a bulk load knows which rows may be
sidechain copies, looking up those few is cheaper than reading the whole table."""


@dataclass(frozen=True)
class FileRow:
    """Where the tailer stopped in one log file."""

    id: int
    path: str
    agent: str
    root: str
    dev: int
    ino: int
    offset: int
    size: int
    mtime_ns: int
    state: dict[str, Any] | None
    malformed: int


@dataclass(frozen=True)
class EventRow:
    """A stored event, as the reports and the window maths read it."""

    agent: str
    root: str
    session_id: str
    project: str
    model: str
    ts_ms: int
    input: int
    output: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    reasoning: int
    tools: str
    sidechain: bool
    cost: float | None
    speed: str | None = None
    """``"fast"`` or a service tier (ccusage names fast-mode models ``<model>-fast``)."""

    @property
    def timestamp(self) -> datetime:
        return utc_from_ms(self.ts_ms)

    @property
    def total(self) -> int:
        return (
            self.input + self.output + self.cache_read + self.cache_write_5m + self.cache_write_1h
        )


@dataclass(frozen=True)
class LimitRow:
    """A stored limit observation."""

    agent: str
    root: str
    limit_id: str
    window_minutes: int | None
    used_percent: float | None
    resets_at: datetime | None
    observed_at: datetime
    source: str
    reached: bool
    plan_type: str | None
    session_id: str | None


@dataclass(frozen=True)
class Totals:
    """Sums over a time range of one root: what a usage window shows.

    ``tokens`` counts every token type; ``io_tokens`` only input + output (what the
    community plan presets count). ``cost`` is ``None`` when there were events and
    none of them could be priced.
    """

    tokens: int
    io_tokens: int
    cost: float | None
    requests: int
    first_ms: int | None
    last_ms: int | None


@dataclass(frozen=True)
class SessionRow:
    """One session's whole usage, for checkpoint triggers and ``tokend checkpoint``."""

    agent: str
    root: str
    session_id: str
    project: str
    first_ms: int
    last_ms: int
    requests: int
    cost: float | None
    model: str


@dataclass(frozen=True)
class CheckpointRow:
    session_id: str
    agent: str
    path: str
    cwd: str
    reason: str
    written_ms: int
    announced_ms: int | None


@dataclass
class _BulkLoad:
    """What a bulk load (:meth:`Store.bulk_load`) keeps in Python.

    Batches wait here until :meth:`Store.flush_group` (or :data:`_PENDING_ROWS` rows)
    and are then written with one ``executemany`` per table, not three statements per
    batch: files by path (a file's last batch wins, as the upsert would make it),
    event and limit rows in order. File ids are given here as SQLite would give
    them, one more than the largest, so event rows carry theirs without a
    ``RETURNING`` per batch. ``replays`` gathers the dedup keys of sidechain copies:
    the only rows the replay rule can drop at the end.
    """

    file_ids: dict[str, int]
    next_file_id: int
    files: dict[str, tuple[object, ...]] = field(default_factory=dict)
    events: list[tuple[Sequence[InsertRow], tuple[int]]] = field(default_factory=list)
    """Batches of rows with the file id to add to each: the full rows are built only
    as SQLite takes them, so they do not pile up (and wake the garbage collector)."""
    event_count: int = 0
    limits: list[tuple[object, ...]] = field(default_factory=list)
    replays: set[str] = field(default_factory=set)

    def file_id(self, path: str) -> int:
        file_id = self.file_ids.get(path)
        if file_id is None:
            file_id = self.file_ids[path] = self.next_file_id
            self.next_file_id += 1
        return file_id


class Store:
    """A connection to the store; one per thread.

    :param path: the SQLite file; its folder is created.
    :param readonly: open without writing (reports while the daemon writes).
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._grouped = 0
        self._bulk: _BulkLoad | None = None
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(path, timeout=10)
                _use_wal(self.db)
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            if not readonly:
                self._migrate()
                if self.get_kv(_BULK_MARK) is not None:
                    self._finish_bulk()  # a bulk load was cut short: indexes, replays
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the store at {path}: {exc}",
                hint="check that the folder exists and is writable, or set TOKEND_HOME "
                "to a folder you own",
            ) from exc

    # -- schema -----------------------------------------------------------------

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.path} has schema version {version}, newer than this "
                f"tokend ({SCHEMA_VERSION})",
                hint="upgrade tokend, or move the store away to start afresh",
            )
        if version == SCHEMA_VERSION:
            return
        # The daemon's worker and a report may create a new store at the same moment:
        # take the write lock, then look again, and migrate in that one transaction
        # (executescript() would commit at once, each statement on its own).
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number + 1}")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files ------------------------------------------------------------------

    def file_row(self, path: str) -> FileRow | None:
        if self._bulk is not None and path in self._bulk.files:
            self._write_pending()  # a file listed twice sees its first read
        row = self.db.execute(
            "SELECT id, path, agent, root, dev, ino, offset, size, mtime_ns, state, malformed "
            "FROM files WHERE path = ?",
            (path,),
        ).fetchone()
        return None if row is None else _file_row(row)

    def file_marks(self) -> dict[str, FileMark]:
        """Every file's ``(dev, ino, offset, size, mtime_ns)`` by path: what a scan
        compares with a fresh ``stat`` to skip unchanged files, without decoding the
        parser states :meth:`file_rows` carries."""
        self._write_pending()
        return {
            r[0]: (r[1], r[2], r[3], r[4], r[5])
            for r in self.db.execute("SELECT path, dev, ino, offset, size, mtime_ns FROM files")
        }

    def file_rows(self) -> list[FileRow]:
        self._write_pending()
        rows = self.db.execute(
            "SELECT id, path, agent, root, dev, ino, offset, size, mtime_ns, state, malformed "
            "FROM files ORDER BY path"
        ).fetchall()
        return [_file_row(r) for r in rows]

    def commit_batch(
        self,
        *,
        path: str,
        agent: str,
        root: str,
        dev: int,
        ino: int,
        offset: int,
        size: int,
        mtime_ns: int,
        state: dict[str, Any] | None,
        malformed: int,
        events: Sequence[UsageEvent],
        observations: Sequence[LimitObservation],
        cost_fn: CostFn,
        now_ms: int,
        rows: Sequence[InsertRow] = (),
    ) -> None:
        """Store a batch of records and the file position after them, atomically.

        ``malformed`` is the file's running count of skipped lines (not a delta), so
        a re-read of the same bytes does not inflate it. ``rows`` are events already
        turned into columns by :func:`event_rows` (a parse worker does that, so the
        writing process only writes); they are stored after ``events``. During a
        bulk load the batch is held (``rows`` not copied) and written at the next
        :meth:`flush_group`, before the commit: still all or nothing with its offset.
        """
        state_json = None if state is None else _STATE_JSON.encode(state)
        if self._bulk is not None:
            self._pend(
                path,
                (path, agent, root, dev, ino, offset, size, mtime_ns, state_json, malformed,
                 now_ms),
                [*event_rows(events, root, cost_fn), *rows] if events else rows,
                _limit_params(observations, root),
            )
            return
        scope: AbstractContextManager[object] = nullcontext() if self._grouped else self.db
        try:
            with scope:
                cur = self.db.execute(
                    _UPSERT_FILE,
                    (path, agent, root, dev, ino, offset, size, mtime_ns, state_json, malformed,
                     now_ms),
                )
                file_id = int(cur.fetchone()[0])
                if events:
                    self._upsert_rows(event_rows(events, root, cost_fn), file_id)
                if rows:
                    self._upsert_rows(rows, file_id)
                self.db.executemany(_INSERT_LIMIT, _limit_params(observations, root))
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Make the :meth:`commit_batch` calls inside one transaction.

        A cold scan writes thousands of small files; one commit each costs more than
        parsing them. Rows and offsets still land together (all or nothing), and
        :meth:`flush_group` commits what is pending so memory stays bounded.
        """
        self._grouped += 1
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        else:
            self.flush_group()
        finally:
            self._grouped -= 1

    def _pend(
        self,
        path: str,
        file: tuple[object, ...],
        rows: Sequence[InsertRow],
        limits: list[tuple[object, ...]],
    ) -> None:
        """Hold a bulk load's batch (``file`` as :data:`_UPSERT_FILE` wants it) for
        :meth:`_write_pending`."""
        bulk = self._bulk
        assert bulk is not None
        file_id = bulk.file_id(path)
        bulk.files[path] = (file_id, *file)
        bulk.events.append((rows, (file_id,)))
        bulk.event_count += len(rows)
        bulk.replays.update(str(r[0]) for r in rows if r[_SIDECHAIN] and r[_SHADOW] is not None)
        bulk.limits.extend(limits)
        if bulk.event_count >= _PENDING_ROWS:
            self._write_pending()

    def _write_pending(self) -> None:
        """Hand a bulk load's held batches to SQLite, in the open transaction."""
        bulk = self._bulk
        if bulk is None or not bulk.files:
            return
        try:
            self.db.executemany(_UPSERT_FILE_WITH_ID, bulk.files.values())
            self.db.executemany(
                _UPSERT_EVENT, (r + file_id for rows, file_id in bulk.events for r in rows)
            )
            self.db.executemany(_INSERT_LIMIT, bulk.limits)
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc
        bulk.files.clear()
        bulk.events.clear()
        bulk.event_count = 0
        bulk.limits.clear()

    def _write_error(self, exc: sqlite3.Error) -> StoreError:
        """The one message every failed write gives: the path, and what to check."""
        return StoreError(
            f"cannot write to the store at {self.path}: {exc}",
            hint="check free disk space and that the file is writable",
        )

    def flush_group(self) -> None:
        self._write_pending()
        try:
            self.db.commit()
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def _upsert_rows(self, rows: Sequence[InsertRow], file_id: int) -> None:
        """Upsert a batch: primaries first (dropping sidechain replays of them), then
        sidechain copies unless a primary of the same message is stored.

        Two set-wise passes give the same result as taking the events one by one (a
        replay survives only while no primary of its message exists) with a few
        ``executemany`` calls instead of two statements per event. A bulk load does
        not come here: its rows are plain upserts (:meth:`_write_pending`) and the
        replay rule runs once at the end.
        """
        primaries = []
        replaced = []
        sidechains = []
        for r in rows:
            shadow = r[_SHADOW]
            if shadow is not None and r[_SIDECHAIN]:
                sidechains.append((*r, file_id, shadow, r[0]))
            else:
                primaries.append((*r, file_id))
                if shadow is not None:
                    replaced.append((shadow, r[0]))
        if replaced:
            self.db.executemany(
                "DELETE FROM events WHERE shadow_key = ? AND sidechain = 1 AND dedup_key != ?",
                replaced,
            )
        if primaries:
            self.db.executemany(_UPSERT_EVENT, primaries)
        if sidechains:
            self.db.executemany(_UPSERT_REPLAY, sidechains)

    @contextmanager
    def bulk_load(self) -> Iterator[bool]:
        """Load a big batch into an empty store faster; yields whether it is on.

        Only inside :meth:`grouped` and only while the store holds no event (a first
        scan): the lookup indexes are dropped and rebuilt at the end, and the replay
        rule is applied once, set-wise. Batches are held in Python and written a
        group at a time (:class:`_BulkLoad`), always before the commit that records
        their offsets. A mark in ``kv``, committed with the first rows, makes the next
        open finish the job if the process dies half-way, so the store never stays
        without its indexes.
        """
        if (
            not self._grouped
            or self._bulk is not None
            or self.db.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None
        ):
            yield False
            return
        try:
            # Files without events (read before, nothing priced) keep their ids.
            file_ids = dict(self.db.execute("SELECT path, id FROM files").fetchall())
            self.db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, '1')", (_BULK_MARK,)
            )
            for name in _SECONDARY_INDEXES:
                self.db.execute(f"DROP INDEX IF EXISTS {name}")
            # Room for the dedup index of a large first scan (the default is 2 MB), and
            # one checkpoint at the end instead of one per group: the index pages a
            # group rewrites would otherwise be copied into the database every time.
            self.db.execute("PRAGMA cache_size=-32768")
            self.db.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc
        bulk = self._bulk = _BulkLoad(file_ids, max(file_ids.values(), default=0) + 1)
        try:
            yield True
            self._write_pending()
        except BaseException:
            # Keep only whole batches (as grouped() would), then leave the store usable;
            # if even that fails, the mark makes the next open finish the job.
            self._bulk = None
            self.db.rollback()
            with suppress(StoreError, sqlite3.Error):
                self._finish_bulk()
            raise
        self._bulk = None
        self._finish_bulk(bulk.replays)

    def _finish_bulk(self, replays: Collection[str] | None = None) -> None:
        """Rebuild the lookup indexes, apply the replay rule, clear the mark.

        ``replays``: the dedup keys of every sidechain copy the load wrote, when
        known; the rule then looks at these rows only instead of reading the whole
        table (as it must when finishing a load cut short).
        """
        try:
            with self.db:
                for name, target in _SECONDARY_INDEXES.items():
                    self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
                if replays is None:
                    self.db.execute(_SHADOWED_REPLAYS)
                else:
                    self.db.executemany(_DROP_SHADOWED_REPLAY, [(key,) for key in replays])
                self.db.execute("DELETE FROM kv WHERE key = ?", (_BULK_MARK,))
            self.db.execute("PRAGMA cache_size=-2000")
            self.db.execute("PRAGMA wal_autocheckpoint=1000")
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def add_observations(self, observations: Sequence[LimitObservation], root: str) -> None:
        """Record observations that did not come from a log file (statusline stdin)."""
        with self.db:
            self.db.executemany(_INSERT_LIMIT, _limit_params(observations, root))

    # -- reading ----------------------------------------------------------------

    def events(
        self,
        *,
        agent: str | None = None,
        root: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> Iterator[EventRow]:
        """Stored events in time order, optionally filtered (``until`` exclusive)."""
        where, params = _filters(agent, root, since_ms, until_ms)
        cur = self.db.execute(
            "SELECT agent, root, session_id, project, model, ts, input, output, cache_read, "
            "cache_write_5m, cache_write_1h, reasoning, tools, sidechain, cost, speed FROM events"
            f"{where} ORDER BY ts, id",
            params,
        )
        for r in cur:
            yield EventRow(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
                bool(r[13]), r[14], r[15],
            )

    def limit_rows(
        self, *, agent: str | None = None, since_ms: int | None = None
    ) -> list[LimitRow]:
        """Limit observations, oldest first."""
        clauses: list[str] = []
        params: list[object] = []
        if agent is not None:
            clauses.append("agent = ?")
            params.append(agent)
        if since_ms is not None:
            clauses.append("observed_at >= ?")
            params.append(since_ms)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.execute(
            "SELECT agent, root, limit_id, window_minutes, used_percent, resets_at, observed_at, "
            f"source, reached, plan_type, session_id FROM limits{where} ORDER BY observed_at, id",
            params,
        ).fetchall()
        return [
            LimitRow(
                r[0], r[1], r[2], r[3] or None, r[4],
                utc_from_ms(r[5]) if r[5] is not None else None, utc_from_ms(r[6]),
                r[7], bool(r[8]), r[9], r[10],
            )
            for r in rows
        ]

    # -- aggregates for the window maths (tokend.state) ---------------------------------
    # Each is one indexed range query (events_agent_ts, limits_agent_obs) summed in
    # SQLite, so a snapshot costs milliseconds whatever the size of the history.

    def totals(
        self, *, agent: str, root: str, since_ms: int | None, until_ms: int
    ) -> Totals:
        """Sums over ``[since_ms, until_ms)`` of one root (``since_ms=None``: from the start)."""
        lo = since_ms if since_ms is not None else -(1 << 62)
        r = self.db.execute(
            f"SELECT COALESCE(SUM({_TOTAL_SQL}), 0), COALESCE(SUM(input + output), 0), SUM(cost), "
            "COUNT(*), MIN(ts), MAX(ts) FROM events "
            "WHERE agent = ? AND ts >= ? AND ts < ? AND root = ?",
            (agent, lo, until_ms, root),
        ).fetchone()
        count = int(r[3])
        cost = None if r[2] is None and count else float(r[2] or 0.0)
        return Totals(int(r[0]), int(r[1]), cost, count, r[4], r[5])

    def event_times(self, *, agent: str, root: str, since_ms: int, until_ms: int) -> list[int]:
        """Timestamps of one root's events in ``[since_ms, until_ms)``, in order."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT ts FROM events WHERE agent = ? AND ts >= ? AND ts < ? AND root = ? "
                "ORDER BY ts",
                (agent, since_ms, until_ms, root),
            )
        ]

    def hourly(
        self, *, agent: str, root: str | None, since_ms: int, until_ms: int
    ) -> list[tuple[int, int, int, int, int]]:
        """``(hour start, tokens, events, first ts, last ts)`` per UTC hour with usage
        (of one root, or of every root of the agent with ``root=None``)."""
        rows = self.db.execute(
            f"SELECT ts - ts % 3600000 AS h, SUM({_TOTAL_SQL}), COUNT(*), MIN(ts), MAX(ts) "
            "FROM events WHERE agent = ? AND ts >= ? AND ts < ? "
            f"{'AND root = ? ' if root is not None else ''}GROUP BY h ORDER BY h",
            (agent, since_ms, until_ms) + ((root,) if root is not None else ()),
        ).fetchall()
        return [(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]

    def last_event_ms(
        self, *, agent: str, root: str, since_ms: int | None = None, after_id: int = 0
    ) -> int | None:
        """The newest event of one root (optionally only rows after ``after_id``)."""
        if after_id:
            r = self.db.execute(
                # "+agent", "ts + 0": walk the primary key range of new rows, not an index.
                "SELECT MAX(ts + 0) FROM events WHERE id > ? AND +agent = ? AND root = ?",
                (after_id, agent, root),
            ).fetchone()
            return None if r[0] is None else int(r[0])
        r = self.db.execute(
            "SELECT ts FROM events WHERE agent = ? AND ts >= ? AND root = ? "
            "ORDER BY ts DESC LIMIT 1",
            (agent, since_ms if since_ms is not None else -(1 << 62), root),
        ).fetchone()
        return None if r is None else int(r[0])

    def first_event_after(self, *, agent: str, root: str, after_id: int) -> int | None:
        """The oldest timestamp among rows added after ``after_id`` (a backfill check)."""
        r = self.db.execute(
            "SELECT MIN(ts + 0) FROM events WHERE id > ? AND +agent = ? AND root = ?",
            (after_id, agent, root),
        ).fetchone()
        return None if r[0] is None else int(r[0])

    def root_has_files(self, root: str) -> bool:
        """Whether any log file of ``root`` was ever read (no files, no events)."""
        row = self.db.execute("SELECT 1 FROM files WHERE root = ? LIMIT 1", (root,)).fetchone()
        return row is not None

    def max_event_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def latest_limits(self, *, agent: str, root: str, since_ms: int) -> list[LimitRow]:
        """The newest observation per ``(limit_id, window, source)`` observed since ``since_ms``."""
        return self._limit_query(
            "SELECT agent, root, limit_id, window_minutes, used_percent, resets_at, "
            "MAX(observed_at), source, reached, plan_type, session_id FROM limits "
            "WHERE agent = ? AND observed_at >= ? AND root = ? "
            "GROUP BY limit_id, window_minutes, source",
            (agent, since_ms, root),
        )

    def first_limit(
        self, *, agent: str, root: str, limit_id: str, window_minutes: int, since_ms: int,
        until_ms: int,
    ) -> LimitRow | None:
        """The oldest observation with a percent of one bucket in ``[since_ms, until_ms)``."""
        rows = self._limit_query(
            "SELECT agent, root, limit_id, window_minutes, used_percent, resets_at, "
            "observed_at, source, reached, plan_type, session_id FROM limits "
            "WHERE agent = ? AND observed_at >= ? AND observed_at < ? AND root = ? "
            "AND limit_id = ? AND window_minutes = ? AND used_percent IS NOT NULL "
            "ORDER BY observed_at LIMIT 1",
            (agent, since_ms, until_ms, root, limit_id, window_minutes),
        )
        return rows[0] if rows else None

    def limit_windows(self, *, agent: str, root: str, since_ms: int) -> list[LimitRow]:
        """Per official window instance (``limit_id, window, resets_at``) observed since
        ``since_ms``: the observation with the highest percent, for calibration."""
        return self._limit_query(
            "SELECT agent, root, limit_id, window_minutes, MAX(used_percent), resets_at, "
            "observed_at, source, reached, plan_type, session_id FROM limits "
            "WHERE agent = ? AND observed_at >= ? AND root = ? AND used_percent IS NOT NULL "
            "AND resets_at IS NOT NULL GROUP BY limit_id, window_minutes, resets_at "
            "ORDER BY resets_at",
            (agent, since_ms, root),
        )

    def _limit_query(self, sql: str, params: tuple[object, ...]) -> list[LimitRow]:
        return [
            LimitRow(
                r[0], r[1], r[2], r[3] or None, r[4],
                utc_from_ms(r[5]) if r[5] is not None else None, utc_from_ms(r[6]),
                r[7], bool(r[8]), r[9], r[10],
            )
            for r in self.db.execute(sql, params)
        ]

    def counts(self) -> dict[str, int]:
        """Rows per table, for ``tokend scan`` summaries and ``doctor``."""
        out = {}
        for table in ("files", "events", "limits"):
            out[table] = int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        out["malformed"] = int(
            self.db.execute("SELECT COALESCE(SUM(malformed), 0) FROM files").fetchone()[0]
        )
        return out

    def unpriced_models(self) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT model FROM events WHERE cost IS NULL ORDER BY model"
        ).fetchall()
        return [r[0] for r in rows]

    # -- sessions and checkpoints -------------------------------------------------

    def active_sessions(self, since_ms: int) -> list[SessionRow]:
        """Sessions with usage since ``since_ms``, whole-session totals, newest first."""
        rows = self.db.execute(
            "SELECT agent, root, session_id, MAX(project), MIN(ts), MAX(ts), COUNT(*), "
            "SUM(cost), MAX(model) FROM events WHERE session_id IN "
            "(SELECT DISTINCT session_id FROM events WHERE ts >= ?) "
            "GROUP BY agent, root, session_id ORDER BY MAX(ts) DESC",
            (since_ms,),
        ).fetchall()
        return [SessionRow(*r) for r in rows]

    def session_files(self, session_id: str) -> list[str]:
        """The log files that produced a session's events (main transcript first)."""
        rows = self.db.execute(
            "SELECT DISTINCT f.path FROM events e JOIN files f ON f.id = e.file_id "
            "WHERE e.session_id = ? ORDER BY e.sidechain, f.path",
            (session_id,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def record_checkpoint(
        self, *, session_id: str, agent: str, path: str, cwd: str, reason: str, written_ms: int
    ) -> None:
        """Remember a written checkpoint; a rewrite makes it unread again."""
        with self.db:
            self.db.execute(
                "INSERT INTO checkpoints (session_id, agent, path, cwd, reason, written_at, "
                "announced_at) VALUES (?,?,?,?,?,?,NULL) ON CONFLICT(session_id) DO UPDATE SET "
                "path=excluded.path, cwd=excluded.cwd, reason=excluded.reason, "
                "written_at=excluded.written_at, announced_at=NULL",
                (session_id, agent, path, cwd, reason, written_ms),
            )

    def checkpoints(self, cwd: str | None = None) -> list[CheckpointRow]:
        """Known checkpoints, newest first, optionally of one working directory."""
        sql = (
            "SELECT session_id, agent, path, cwd, reason, written_at, announced_at "
            "FROM checkpoints"
        )
        params: tuple[object, ...] = ()
        if cwd is not None:
            sql += " WHERE cwd = ?"
            params = (cwd,)
        rows = self.db.execute(sql + " ORDER BY written_at DESC", params).fetchall()
        return [CheckpointRow(*r) for r in rows]

    def mark_announced(self, session_id: str, when_ms: int) -> None:
        with self.db:
            self.db.execute(
                "UPDATE checkpoints SET announced_at = ? WHERE session_id = ?",
                (when_ms, session_id),
            )

    # -- small state ------------------------------------------------------------

    def get_kv(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_kv(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- pricing ----------------------------------------------------------------

    def reprice(self, cost_fn: CostFn, fingerprint: str) -> bool:
        """Recompute every stored cost when the price table changed.

        Returns whether anything was recomputed. The fingerprint of the table the
        costs were computed with is kept in ``kv``.
        """
        if self.get_kv("prices") == fingerprint:
            return False
        rows = self.db.execute(
            "SELECT id, agent, model, ts, input, output, cache_read, cache_write_5m, "
            "cache_write_1h, reasoning, speed FROM events"
        ).fetchall()
        updates = []
        for r in rows:
            ev = UsageEvent(
                agent=r[1], dedup_key="", timestamp=utc_from_ms(r[3]), session_id="",
                project="", model=r[2], input_tokens=r[4], output_tokens=r[5],
                cache_read_tokens=r[6], cache_write_5m_tokens=r[7], cache_write_1h_tokens=r[8],
                reasoning_tokens=r[9], speed=r[10],
            )
            updates.append((cost_fn(ev), r[0]))
        with self.db:
            self.db.executemany("UPDATE events SET cost = ? WHERE id = ?", updates)
            self.db.execute(
                "INSERT INTO kv (key, value) VALUES ('prices', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (fingerprint,),
            )
        return True


def _use_wal(db: sqlite3.Connection, wait: float = 10.0) -> None:
    """Put the store in WAL mode (it stays so: later opens only check).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at
    once, without its busy handler, when another process is switching a new store
    at the same moment (the daemon's worker and a report): so it is retried.
    """
    deadline = time.monotonic() + wait
    while db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _file_row(r: tuple[Any, ...]) -> FileRow:
    return FileRow(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
        json.loads(r[9]) if r[9] else None, r[10],
    )


def event_rows(events: Iterable[UsageEvent], root: str, cost_fn: CostFn) -> list[InsertRow]:
    """Events as ``events`` columns (without ``file_id``), priced: pure, so a parse
    worker can run it and hand the writer plain tuples."""
    return [
        (
            ev.dedup_key, ev.shadow_key, ev.rank, ev.agent, root, ev.session_id, ev.project,
            ev.model, utc_ms(ev.timestamp), ev.input_tokens, ev.output_tokens,
            ev.cache_read_tokens, ev.cache_write_5m_tokens, ev.cache_write_1h_tokens,
            ev.reasoning_tokens, ",".join(ev.tools), int(ev.sidechain), ev.speed, cost_fn(ev),
        )
        for ev in events
    ]


def _limit_params(observations: Iterable[LimitObservation], root: str) -> list[tuple[object, ...]]:
    """Observations as :data:`_INSERT_LIMIT` wants them."""
    return [
        (
            o.agent, root, o.limit_id, o.window_minutes or 0, o.used_percent,
            utc_ms(o.resets_at) if o.resets_at else None, utc_ms(o.observed_at),
            o.source, int(o.reached), o.plan_type, o.session_id,
        )
        for o in observations
    ]


_SHADOW = 1
_SIDECHAIN = 16
"""Positions of ``shadow_key`` and ``sidechain`` in an :data:`InsertRow`."""


def _filters(
    agent: str | None, root: str | None, since_ms: int | None, until_ms: int | None
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for column, op, value in (
        ("agent", "=", agent),
        ("root", "=", root),
        ("ts", ">=", since_ms),
        ("ts", "<", until_ms),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else "", params)

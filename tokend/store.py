"""The SQLite store: deduplicated usage events, limit observations, file offsets.

One file in WAL mode so the daemon writes while reports and the statusline read.
The offset of a log file is committed in the same transaction as the rows it
produced: a crash between two batches re-reads the uncommitted bytes, and the
dedup keys make that re-read idempotent. Costs are computed at insert time by an
injected function and recomputed when the price table changes
(:meth:`Store.reprice`), so reports are plain SQL sums.

The schema and SQL text live in :mod:`tokend.store_schema`; the read-only queries
and the rows they return in :mod:`tokend.store_queries` (:class:`Store` inherits
them). This module keeps opening, migrating, the file offsets and every write.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokend.errors import StoreError
from tokend.models import LimitObservation, UsageEvent, utc_from_ms, utc_ms
from tokend.store_queries import CheckpointRow, EventRow, LimitRow, SessionRow, StoreQueries, Totals
from tokend.store_schema import (
    INSERT_LIMIT,
    MIGRATIONS,
    SCHEMA_VERSION,
    SECONDARY_INDEXES,
    SHADOWED_REPLAYS,
    UPSERT_EVENT,
    UPSERT_FILE,
    UPSERT_FILE_WITH_ID,
    UPSERT_REPLAY,
)

__all__ = [
    "PAGE_SIZE",
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
    "limit_rows",
]

CostFn = Callable[[UsageEvent], "float | None"]

FileMark = tuple[int, int, int, int, int]
"""A file's ``(dev, ino, offset, size, mtime_ns)`` as last committed."""

InsertRow = tuple[object, ...]
"""An event as the ``events`` columns want it, ``file_id`` left off (:func:`event_rows`),
or an observation as the ``limits`` columns want it (:func:`limit_rows`)."""

_BULK_MARK = "bulk_load"

PAGE_SIZE = 16384
"""Bytes per database page of a new store (SQLite's default is 4096). An event row
takes about 500 bytes, and a first scan writes every page twice (into the WAL, then
into the database at a checkpoint): with four times fewer pages the checkpoints take
half the time and the whole scan about 8 % less on a 400 MB history
(bench/RESULTS.md). Small later commits write a few more bytes each."""

_PENDING_ROWS = 16384
"""Event rows a bulk load holds in Python before handing them to SQLite (besides at
every :meth:`Store.flush_group`): few ``executemany`` calls, bounded memory."""

_STATE_JSON = json.JSONEncoder(separators=(",", ":"))
"""Encodes parser states as ``json.dumps(state, separators=(",", ":"))`` would,
without building an encoder per call (that is most of the cost of a small state)."""


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


@dataclass
class _BulkLoad:
    """What a bulk load (:meth:`Store.bulk_load`) keeps in Python.

    Batches wait here until :meth:`Store.flush_group` (or :data:`_PENDING_ROWS` rows)
    and are then written with one ``executemany`` per table, not three statements per
    batch: files by path (a file's last batch wins, as the upsert would make it),
    event and limit rows in order. File ids are given here as SQLite would give
    them, one more than the largest, so event rows carry theirs without a
    ``RETURNING`` per batch.
    """

    file_ids: dict[str, int]
    next_file_id: int
    files: dict[str, tuple[object, ...]] = field(default_factory=dict)
    events: list[tuple[Sequence[InsertRow], tuple[int]]] = field(default_factory=list)
    """Batches of rows with the file id to add to each: the full rows are built only
    as SQLite takes them, so they do not pile up (and wake the garbage collector)."""
    event_count: int = 0
    limits: list[tuple[object, ...]] = field(default_factory=list)

    def file_id(self, path: str) -> int:
        file_id = self.file_ids.get(path)
        if file_id is None:
            file_id = self.file_ids[path] = self.next_file_id
            self.next_file_id += 1
        return file_id


class Store(StoreQueries):
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
                # Takes effect only while the file is still empty (a new store).
                self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")
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
        limits: Sequence[InsertRow] = (),
    ) -> None:
        """Store a batch of records and the file position after them, atomically.

        ``malformed`` is the file's running count of skipped lines (not a delta), so
        a re-read of the same bytes does not inflate it. ``rows`` are events already
        turned into columns by :func:`event_rows` (a parse worker does that, so the
        writing process only writes); they are stored after ``events``, and so are
        ``limits``, observations turned into columns by :func:`limit_rows`. During a
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
                [*limit_rows(observations, root), *limits] if observations else limits,
            )
            return
        scope: AbstractContextManager[object] = nullcontext() if self._grouped else self.db
        try:
            with scope:
                cur = self.db.execute(
                    UPSERT_FILE,
                    (path, agent, root, dev, ino, offset, size, mtime_ns, state_json, malformed,
                     now_ms),
                )
                file_id = int(cur.fetchone()[0])
                if events:
                    self._upsert_rows(event_rows(events, root, cost_fn), file_id)
                if rows:
                    self._upsert_rows(rows, file_id)
                self.db.executemany(INSERT_LIMIT, limit_rows(observations, root))
                if limits:
                    self.db.executemany(INSERT_LIMIT, limits)
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
        limits: Sequence[InsertRow],
    ) -> None:
        """Hold a bulk load's batch (``file`` as :data:`UPSERT_FILE` wants it) for
        :meth:`_write_pending`."""
        bulk = self._bulk
        assert bulk is not None
        file_id = bulk.file_id(path)
        bulk.files[path] = (file_id, *file)
        bulk.events.append((rows, (file_id,)))
        bulk.event_count += len(rows)
        bulk.limits.extend(limits)
        if bulk.event_count >= _PENDING_ROWS:
            self._write_pending()

    def _write_pending(self) -> None:
        """Hand a bulk load's held batches to SQLite, in the open transaction."""
        bulk = self._bulk
        if bulk is None or not bulk.files:
            return
        try:
            self.db.executemany(UPSERT_FILE_WITH_ID, bulk.files.values())
            self.db.executemany(
                UPSERT_EVENT, (r + file_id for rows, file_id in bulk.events for r in rows)
            )
            self.db.executemany(INSERT_LIMIT, bulk.limits)
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
            shadow = r[_SHADOW]  # 0 for none (event_rows)
            if shadow and r[_SIDECHAIN]:
                prefix = f"{r[_AGENT]}:{shadow}"  # where its primaries' keys sit
                sidechains.append((*r, file_id, prefix, f"{prefix};", shadow, r[0]))
            else:
                primaries.append((*r, file_id))
                if shadow:
                    replaced.append((shadow, r[0]))
        if replaced:
            self.db.executemany(
                "DELETE FROM events WHERE shadow_key = ? AND sidechain = 1 AND dedup_key != ?",
                replaced,
            )
        if primaries:
            self.db.executemany(UPSERT_EVENT, primaries)
        if sidechains:
            self.db.executemany(UPSERT_REPLAY, sidechains)

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
            for name in SECONDARY_INDEXES:
                self.db.execute(f"DROP INDEX IF EXISTS {name}")
            # Room for the dedup index of a large first scan (the default is 2 MB). 16 MB
            # scanned the 408 MB bench corpus as fast as 32 MB did, with a main process
            # 17 MB smaller; 8 MB was 4 % slower. The WAL is checkpointed as usual, at
            # the commit of each group: that copy runs while the parse workers are still
            # busy, where one big checkpoint at the end ran alone after them (2-10 % of
            # the whole scan, and a WAL as big as the store in between).
            self.db.execute("PRAGMA cache_size=-16384")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc
        self._bulk = _BulkLoad(file_ids, max(file_ids.values(), default=0) + 1)
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
        self._finish_bulk()

    def _finish_bulk(self) -> None:
        """Rebuild the lookup indexes, apply the replay rule, clear the mark.

        The replay rule runs set-wise, once, over the sidechain copies (through
        ``events_replays``, kept through the load, a few percent of the rows): 7-10 ms
        on the bench corpus, where a statement per sidechain key took 19 ms.
        """
        try:
            with self.db:
                for name, target in SECONDARY_INDEXES.items():
                    self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
                self.db.execute(SHADOWED_REPLAYS)
                self.db.execute("DELETE FROM kv WHERE key = ?", (_BULK_MARK,))
            self.db.execute("PRAGMA cache_size=-2000")
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def add_observations(self, observations: Sequence[LimitObservation], root: str) -> None:
        """Record observations that did not come from a log file (statusline stdin)."""
        with self.db:
            self.db.executemany(INSERT_LIMIT, limit_rows(observations, root))

    # -- sessions and checkpoints -------------------------------------------------

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

    def mark_announced(self, session_id: str, when_ms: int) -> None:
        with self.db:
            self.db.execute(
                "UPDATE checkpoints SET announced_at = ? WHERE session_id = ?",
                (when_ms, session_id),
            )

    # -- small state ------------------------------------------------------------

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
    worker can run it and hand the writer plain tuples. An empty ``shadow_key`` or
    ``speed`` is 0, which the insert statements turn into NULL (it binds far faster
    than ``None``: :data:`tokend.store_schema.UPSERT_EVENT`)."""
    return [
        (
            ev.dedup_key, ev.shadow_key or 0, ev.rank, ev.agent, root, ev.session_id,
            ev.project, ev.model, utc_ms(ev.timestamp), ev.input_tokens, ev.output_tokens,
            ev.cache_read_tokens, ev.cache_write_5m_tokens, ev.cache_write_1h_tokens,
            ev.reasoning_tokens, ",".join(ev.tools), int(ev.sidechain), ev.speed or 0,
            cost_fn(ev),
        )
        for ev in events
    ]


def limit_rows(observations: Iterable[LimitObservation], root: str) -> list[InsertRow]:
    """Observations as :data:`INSERT_LIMIT` wants them: pure, so a parse worker can
    run it and hand the writer plain tuples (pickling the dataclasses instead costs
    more than parsing the lines that made them). An empty ``plan_type`` is 0, as in
    :func:`event_rows`."""
    return [
        (
            o.agent, root, o.limit_id, o.window_minutes or 0, o.used_percent,
            utc_ms(o.resets_at) if o.resets_at else None, utc_ms(o.observed_at),
            o.source, int(o.reached), o.plan_type or 0, o.session_id,
        )
        for o in observations
    ]


_SHADOW = 1
_AGENT = 3
_SIDECHAIN = 16
"""Positions of ``shadow_key``, ``agent`` and ``sidechain`` in an :data:`InsertRow`."""

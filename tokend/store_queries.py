"""The store's read side: the rows queries return and the read-only queries.

:class:`tokend.store.Store` inherits :class:`StoreQueries`; they live apart so the
store module keeps only opening, migrating and writing, and each stays small. Nothing
here writes, so a report's read-only store uses all of it. (The file queries stay in
the store: they first hand a bulk load's held rows to SQLite.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from tokend.models import utc_from_ms
from tokend.store_schema import TOTAL_SQL

__all__ = ["CheckpointRow", "EventRow", "LimitRow", "SessionRow", "StoreQueries", "Totals"]


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


class StoreQueries:
    """The read-only queries of :class:`tokend.store.Store`, over its connection."""

    db: sqlite3.Connection

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
            f"SELECT COALESCE(SUM({TOTAL_SQL}), 0), COALESCE(SUM(input + output), 0), SUM(cost), "
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
            f"SELECT ts - ts % 3600000 AS h, SUM({TOTAL_SQL}), COUNT(*), MIN(ts), MAX(ts) "
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

    # -- small state ------------------------------------------------------------

    def get_kv(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])


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

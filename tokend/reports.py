"""Usage reports: daily, weekly, monthly and per session, as a table, JSON or CSV.

**Speed.** A report must answer in well under a second over millions of events, and a
plain ``GROUP BY`` over the events table takes seconds (SQLite sorts every row). So
the events are pre-aggregated into a *rollup*: one row per 15-minute UTC bucket,
agent, project, session, model and fast flag, kept in its own SQLite file next to the
store (:class:`Rollup`). Fifteen minutes because every time zone in use is a whole
number of quarter hours from UTC (India +5:30, Nepal +5:45, Chatham +12:45), so a
bucket never straddles a local midnight and folding buckets into local days is exact
in any zone. The fold is done in SQL, from the zone's few UTC-offset segments over
the data's span, into a per-zone table of local days that daily, weekly and monthly
reports read (a few rows per day); it is refreshed from the first changed day on.
Whole sessions have their own small table too.

**Keeping the rollup right.** The store has no change log, so :meth:`Rollup.sync`
compares a few cheap marks (the price fingerprint the costs were computed with, the
highest event id, the newest file commit and the number of files) with those it saved:

- nothing moved: the rollup is used as is (about a millisecond);
- something was committed: the buckets from the earliest changed instant on are
  rebuilt from the store, where "earliest" also reaches back a day before the previous
  sync, because a line arriving now may upgrade, in place, an event committed shortly
  before it (Claude writes a partial copy of a message first); then the event count
  must equal the rollup's, else
- a full rebuild, as for changed prices or another store.

Deleting the rollup file is always safe: the next report rebuilds it.

**Token semantics** are the store's, and match ccusage's JSON: ``inputTokens`` is
input neither read from nor written to a cache (for Codex: input minus cached input,
as ``ccusage codex`` reports it), ``cacheCreationTokens`` is 5-minute plus 1-hour
writes, ``totalTokens`` is input + output + cache creation + cache read (reasoning
is part of output, never added twice). One wrinkle copied from ccusage: for Gemini,
``outputTokens`` leaves the thoughts out (they still count in ``totalTokens`` and in
the cost), so per-agent numbers match ``ccusage gemini daily`` too.

**Unpriced models** are never shown as $0: their cost is ``null`` in JSON, "—" in
the table, and the models are listed under it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal

from tokend.errors import ConfigError, StoreError

# csv and zoneinfo are imported where used: a report printed as JSON in UTC needs
# neither, and they cost milliseconds.

__all__ = [
    "BUCKET_MS",
    "WEEKDAYS",
    "Kind",
    "Report",
    "ReportOptions",
    "Rollup",
    "Row",
    "Usage",
    "build_report",
    "local_zone",
    "offset_segments",
    "parse_day",
    "render_csv",
    "render_json",
    "render_table",
    "resolve_zone",
]

Kind = Literal["daily", "weekly", "monthly", "sessions"]

BUCKET_MS = 15 * 60 * 1000
"""Rollup granularity: every UTC offset in use is a multiple of it."""

DAY_MS = 86_400_000
RESYNC_SLACK_MS = DAY_MS
"""How far before the previous sync an in-place upgrade of an event may reach."""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_ROLLUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    q INTEGER NOT NULL,
    agent TEXT NOT NULL,
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    fast INTEGER NOT NULL,
    session TEXT NOT NULL,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read INTEGER NOT NULL,
    reasoning INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    cost REAL NOT NULL,
    priced INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (q, agent, project, model, fast, session)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS days (
    zone TEXT NOT NULL,
    d INTEGER NOT NULL,
    agent TEXT NOT NULL,
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    fast INTEGER NOT NULL,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read INTEGER NOT NULL,
    reasoning INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    cost REAL NOT NULL,
    priced INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (zone, d, agent, model, fast, project)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS zones (
    key TEXT PRIMARY KEY,
    dirty_d INTEGER,
    used_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    agent TEXT NOT NULL,
    session TEXT NOT NULL,
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    fast INTEGER NOT NULL,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read INTEGER NOT NULL,
    reasoning INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    cost REAL NOT NULL,
    priced INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (agent, session, project, model, fast)
) WITHOUT ROWID;
"""
MAX_ZONES = 3
"""Local-day caches kept (one per time zone a report was asked in)."""
MAX_OFFSET_MS = 14 * 3_600_000
"""No zone is further than 14 hours from UTC."""
ROLLUP_VERSION = "3"
"""Bump when the rollup tables change: an older rollup file is dropped and rebuilt."""

_AGGREGATE = f"""
INSERT INTO buckets
SELECT ts / {BUCKET_MS}, agent, project, model, (speed IS 'fast'), session_id,
       SUM(input), SUM(output), SUM(cache_write_5m), SUM(cache_write_1h), SUM(cache_read),
       SUM(reasoning), COUNT(*), TOTAL(cost), COUNT(cost), MIN(ts), MAX(ts)
FROM store.events WHERE ts >= ?
GROUP BY 1, 2, 3, 4, 5, 6
"""


_SESSIONS = """
INSERT INTO sessions
SELECT agent, session, project, model, fast, SUM(input), SUM(output), SUM(cache_write_5m),
       SUM(cache_write_1h), SUM(cache_read), SUM(reasoning), SUM(requests), SUM(cost),
       SUM(priced), MIN(first_ts), MAX(last_ts)
FROM buckets {where}
GROUP BY agent, session, project, model, fast
"""


class Rollup:
    """The pre-aggregated copy of the store's events that reports read.

    :param path: the rollup file (created).
    :param store_path: the store it summarises, attached read-only.
    """

    def __init__(self, path: Path, store_path: Path) -> None:
        self.path = path
        self.store_path = store_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                path.resolve().as_uri(), timeout=30, isolation_level=None, uri=True
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA temp_store=MEMORY")
            self._create()
            uri = store_path.resolve().as_uri() + "?mode=ro"
            self.db.execute("ATTACH DATABASE ? AS store", (uri,))
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open the report cache at {path}: {exc}",
                hint=f"delete {path}; the next report rebuilds it",
            ) from exc

    def _create(self) -> None:
        db = self.db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "marks" in tables:
            version = db.execute("SELECT value FROM marks WHERE key = 'version'").fetchone()
            if version is not None and version[0] != ROLLUP_VERSION:
                for table in ("buckets", "days", "zones", "sessions", "marks"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
        db.executescript(_ROLLUP_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Rollup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self) -> str:
        """Bring the rollup up to date with the store; say what was done.

        Returns ``"fresh"``, ``"incremental"`` or ``"rebuilt"`` (tests and ``--debug``).
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            how = self._sync()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return how

    def _sync(self) -> str:
        db = self.db
        marks = dict(db.execute("SELECT key, value FROM marks").fetchall())
        fingerprint = db.execute(
            "SELECT value FROM store.kv WHERE key = 'prices'"
        ).fetchone()
        # Two statements: together they would defeat SQLite's MAX/COUNT shortcuts.
        max_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM store.events").fetchone()[0]
        files_mark, files = db.execute(
            "SELECT COALESCE(MAX(updated_at), 0), COUNT(*) FROM store.files"
        ).fetchone()
        now = {
            "version": ROLLUP_VERSION,
            "store": str(self.store_path.resolve()),
            "prices": fingerprint[0] if fingerprint else "",
            "max_id": str(max_id),
            "files_mark": str(files_mark),
            "files": str(files),
        }
        if marks == now:
            return "fresh"
        full = any(
            marks.get(k) != now[k] for k in ("version", "store", "prices")
        ) or int(marks.get("max_id", "-1")) > max_id
        how = "rebuilt"
        if not full:
            old_max = int(marks["max_id"])
            # NOT INDEXED: walk the new rowids, not the whole ts index from its start.
            new_min = db.execute(
                "SELECT MIN(ts) FROM store.events NOT INDEXED WHERE id > ?", (old_max,)
            ).fetchone()[0]
            since = int(marks["files_mark"]) - RESYNC_SLACK_MS
            if new_min is not None:
                since = min(since, int(new_min))
            since -= since % BUCKET_MS
            first_q = since // BUCKET_MS
            # Sessions with buckets in the window, before and after: their totals are redone.
            db.execute("DROP TABLE IF EXISTS temp.touched")
            db.execute(
                "CREATE TEMP TABLE touched AS SELECT DISTINCT agent, session FROM buckets "
                "WHERE q >= ?",
                (first_q,),
            )
            db.execute("DELETE FROM buckets WHERE q >= ?", (first_q,))
            db.execute(_AGGREGATE, (since,))
            db.execute(
                "INSERT INTO touched SELECT DISTINCT agent, session FROM buckets WHERE q >= ?",
                (first_q,),
            )
            total = db.execute("SELECT COALESCE(SUM(requests), 0) FROM buckets").fetchone()[0]
            count = db.execute("SELECT COUNT(*) FROM store.events").fetchone()[0]
            if total == count:
                how = "incremental"
                # Local days from two UTC days before the change on are recomputed
                # on the next read (a local day is within one day of the UTC one).
                dirty = since // DAY_MS - 2
                db.execute("DELETE FROM days WHERE d >= ?", (dirty,))
                db.execute(
                    "UPDATE zones SET dirty_d = MIN(COALESCE(dirty_d, ?), ?)", (dirty, dirty)
                )
                touched = "(agent, session) IN (SELECT agent, session FROM temp.touched)"
                db.execute(f"DELETE FROM sessions WHERE {touched}")
                db.execute(_SESSIONS.format(where=f"WHERE {touched}"))
            else:  # rows changed before the window (rare): start again
                full = True
            db.execute("DROP TABLE temp.touched")
        if full:
            db.execute("DELETE FROM buckets")
            db.execute(_AGGREGATE, (-(2**62),))
            db.execute("DELETE FROM days")
            db.execute("DELETE FROM zones")
            db.execute("DELETE FROM sessions")
            db.execute(_SESSIONS.format(where=""))
        db.execute("DELETE FROM marks")
        db.executemany("INSERT INTO marks (key, value) VALUES (?, ?)", list(now.items()))
        return how

    def rows(
        self,
        *,
        zone: tzinfo,
        since_ms: int | None,
        until_ms: int | None,
        agent: str | None,
        project: str | None,
        sessions: bool,
        instances: bool,
    ) -> list[tuple[Any, ...]]:
        """Sums per local day (or per session), agent, model and fast flag.

        Columns: day number since 1970-01-01 in ``zone`` (0 for sessions), agent,
        session ('' unless ``sessions``), project ('' unless ``sessions`` or
        ``instances``), model, fast, input, output, cache_write_5m, cache_write_1h,
        cache_read, reasoning, requests, cost, priced, first_ts, last_ts.

        Sessions come from the per-session table (from the buckets when a date
        range cuts them); periods from the zone's local-day cache
        (:meth:`_ensure_days`), so only a few rows per day reach Python.
        """
        clauses: list[str] = []
        params: list[object] = []
        if since_ms is not None:
            clauses.append("q >= ?")
            params.append(since_ms // BUCKET_MS)
        if until_ms is not None:
            clauses.append("q < ?")
            params.append(-(-until_ms // BUCKET_MS))
        if agent is not None:
            clauses.append("agent = ?")
            params.append(agent)
        if project:
            clauses.append("instr(lower(project), ?) > 0")
            params.append(project.lower())
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sums = (
            "model, fast, SUM(input), SUM(output), SUM(cache_write_5m), SUM(cache_write_1h), "
            "SUM(cache_read), SUM(reasoning), SUM(requests), SUM(cost), SUM(priced), "
            "MIN(first_ts), MAX(last_ts)"
        )
        if sessions:
            # Whole sessions come from their own table; a date range needs the buckets.
            table = "buckets" if since_ms is not None or until_ms is not None else "sessions"
            sql = (
                f"SELECT 0, agent, session, project, {sums} FROM {table}{where} "
                "GROUP BY agent, session, project, model, fast"
            )
            return self.db.execute(sql, params).fetchall()
        since_d = until_d = None
        if since_ms is not None:
            since_d = (since_ms + _offset_ms(zone, since_ms)) // DAY_MS
        if until_ms is not None:
            until_d = (until_ms + _offset_ms(zone, until_ms)) // DAY_MS
        key = self._ensure_days(zone)
        if key is None:
            return []
        clauses = ["zone = ?"]
        params = [key]
        for clause, value in (("d >= ?", since_d), ("d < ?", until_d), ("agent = ?", agent)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if project:
            clauses.append("instr(lower(project), ?) > 0")
            params.append(project.lower())
        proj = "project" if instances else "''"
        sql = (
            f"SELECT d, agent, '', {proj} AS p, {sums} FROM days "
            f"WHERE {' AND '.join(clauses)} GROUP BY d, agent, model, fast, p"
        )
        return self.db.execute(sql, params).fetchall()

    def _ensure_days(self, zone: tzinfo) -> str | None:
        """Build or bring up to date the local-day cache of ``zone``; return its key.

        The key is a digest of the zone's UTC offsets over the buckets' span, so two
        names for one zone share a cache, and new data in a new DST period (a new
        segment) starts a fresh one.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Two statements, each answered from the primary key; together they scan.
            first = db.execute("SELECT MIN(q) FROM buckets").fetchone()[0]
            if first is None:
                db.execute("COMMIT")
                return None
            last = db.execute("SELECT MAX(q) FROM buckets").fetchone()[0]
            segments = offset_segments(zone, first, last)
            key = hashlib.sha1(repr(segments).encode()).hexdigest()[:16]
            zones = {
                k: (dirty, used)
                for k, dirty, used in db.execute("SELECT key, dirty_d, used_at FROM zones")
            }
            row = zones.get(key)
            day, day_params = _day_sql(segments)
            insert = (
                f"INSERT INTO days SELECT ?, {day} AS d, agent, project, model, fast, "
                "SUM(input), SUM(output), SUM(cache_write_5m), SUM(cache_write_1h), "
                "SUM(cache_read), SUM(reasoning), SUM(requests), SUM(cost), SUM(priced), "
                "MIN(first_ts), MAX(last_ts) FROM buckets WHERE q >= ? "
                "GROUP BY d, agent, project, model, fast HAVING d >= ?"
            )
            if row is None:
                stale = db.execute(
                    "SELECT key FROM zones ORDER BY used_at DESC LIMIT -1 OFFSET ?",
                    (MAX_ZONES - 1,),
                ).fetchall()
                for (old,) in stale:
                    db.execute("DELETE FROM days WHERE zone = ?", (old,))
                    db.execute("DELETE FROM zones WHERE key = ?", (old,))
                db.execute(insert, (key, *day_params, -(2**62), -(2**62)))
                db.execute(
                    "INSERT INTO zones (key, dirty_d, used_at) VALUES (?, NULL, ?)",
                    (key, int(time.time() * 1000)),
                )
            else:
                dirty_d, used_at = row
                if dirty_d is not None:
                    dirty = int(dirty_d)
                    db.execute("DELETE FROM days WHERE zone = ? AND d >= ?", (key, dirty))
                    first_q = (dirty * DAY_MS - MAX_OFFSET_MS) // BUCKET_MS
                    db.execute(insert, (key, *day_params, first_q, dirty))
                if dirty_d is not None or _used_before_another(key, used_at, zones):
                    db.execute(
                        "UPDATE zones SET dirty_d = NULL, used_at = ? WHERE key = ?",
                        (int(time.time() * 1000), key),
                    )
                # else: already the latest used and clean; writing nothing spares the
                # commit and the WAL checkpoint on close (about a millisecond).
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return key


def _used_before_another(key: str, used_at: int, zones: dict[str, tuple[Any, int]]) -> bool:
    """Whether another zone cache was used as late as ``key``'s (eviction order needs
    ``key`` stamped again); if not, restamping it would not change that order."""
    return any(used >= used_at for k, (_, used) in zones.items() if k != key)


def _offset_ms(zone: tzinfo, ms: int) -> int:
    delta = datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(zone).utcoffset()
    return int((delta or timedelta(0)).total_seconds() * 1000)


def _day_sql(segments: list[tuple[int, int]]) -> tuple[str, list[object]]:
    """SQL for the local day number of bucket ``q``, and its parameters."""
    params: list[object] = []
    for (_, offset), (next_q, _) in itertools.pairwise(segments):
        params += [next_q, offset]
    params.append(segments[-1][1])
    if len(segments) == 1:
        return f"(q * {BUCKET_MS} + ?) / {DAY_MS}", params
    case = " ".join("WHEN q < ? THEN ?" for _ in segments[1:])
    return f"(q * {BUCKET_MS} + CASE {case} ELSE ? END) / {DAY_MS}", params


def offset_segments(zone: tzinfo, q_first: int, q_last: int) -> list[tuple[int, int]]:
    """``[(first bucket, UTC offset in ms), ...]`` covering buckets ``q_first..q_last``.

    Walks day by day and bisects to the bucket where the offset changes (DST moves
    happen at most once a day and on quarter-hour boundaries).
    """

    def offset(q: int) -> int:
        return _offset_ms(zone, q * BUCKET_MS)

    per_day = DAY_MS // BUCKET_MS
    segments = [(q_first, offset(q_first))]
    q = q_first
    while q < q_last:
        nxt = min(q + per_day, q_last)
        current = segments[-1][1]
        if offset(nxt) != current:
            lo, hi = q, nxt  # offset(lo) == current, offset(hi) != current
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == current:
                    lo = mid
                else:
                    hi = mid
            segments.append((hi, offset(hi)))
            nxt = hi
        q = nxt
    return segments


# -- aggregation ---------------------------------------------------------------------


@dataclass
class Usage:
    """Token and cost sums of a group of events."""

    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    reasoning: int = 0
    requests: int = 0
    cost: float = 0.0
    priced: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    thoughts: int = 0
    """Gemini reasoning: inside ``output`` (it is billed as output) but shown apart,
    because ccusage's Gemini view leaves thoughts out of ``outputTokens`` while
    counting them in ``totalTokens``."""

    @property
    def output_shown(self) -> int:
        """``outputTokens`` as ccusage reports it for this mix of agents."""
        return self.output - self.thoughts

    @property
    def cache_creation(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_creation + self.cache_read

    @property
    def known_cost(self) -> float | None:
        """The cost of the priced events; ``None`` when none of them has a price."""
        if self.priced == 0 and self.requests > 0:
            return None
        return self.cost

    def add(self, other: Usage) -> None:
        self.input += other.input
        self.output += other.output
        self.cache_write_5m += other.cache_write_5m
        self.cache_write_1h += other.cache_write_1h
        self.cache_read += other.cache_read
        self.reasoning += other.reasoning
        self.requests += other.requests
        self.cost += other.cost
        self.priced += other.priced
        self.unpriced_models |= other.unpriced_models
        self.thoughts += other.thoughts


@dataclass
class Row:
    """One line of a report: a period (or a session), optionally for one project."""

    key: str
    project: str | None = None
    usage: Usage = field(default_factory=Usage)
    models: dict[str, Usage] = field(default_factory=dict)
    model_first: dict[str, int] = field(default_factory=dict)
    agents: set[str] = field(default_factory=set)
    first_ms: int = 0
    last_ms: int = 0
    project_path: str = ""
    agent: str = ""

    def models_used(self) -> list[str]:
        """Model names in the order they were first used."""
        return sorted(self.models, key=lambda m: (self.model_first[m], m))


@dataclass(frozen=True)
class ReportOptions:
    """What to report and how to cut it."""

    kind: Kind = "daily"
    since: date | None = None
    until: date | None = None
    agent: str | None = None
    project: str | None = None
    zone: tzinfo = timezone.utc
    start_of_week: int = 6
    """0 = Monday … 6 = Sunday; Sunday is ccusage's default for weekly reports."""
    breakdown: bool = False
    instances: bool = False


@dataclass
class Report:
    """Rows in order plus the grand total."""

    options: ReportOptions
    rows: list[Row]
    totals: Usage


def build_report(rollup: Rollup, options: ReportOptions) -> Report:
    """Group the rollup's buckets into the rows ``options`` ask for."""
    zone = options.zone
    since_ms = until_ms = None
    # Local midnights are whole quarter hours in every zone, so these bounds are exact.
    if options.since is not None:
        since_ms = _local_midnight_ms(options.since, zone)
    if options.until is not None:
        until_ms = _local_midnight_ms(options.until + timedelta(days=1), zone)
    sessions = options.kind == "sessions"
    rows: dict[tuple[str, ...], Row] = {}
    period_of: dict[int, str] = {}
    epoch = date(1970, 1, 1)
    totals = Usage()
    for r in rollup.rows(
        zone=zone,
        since_ms=since_ms,
        until_ms=until_ms,
        agent=options.agent,
        project=options.project,
        sessions=sessions,
        instances=options.instances,
    ):
        day_number, agent, session, project, model, fast = r[:6]
        first_ts, last_ts = r[15], r[16]
        if sessions:
            key: tuple[str, ...] = (agent, session)
            label = session
        else:
            label = period_of.get(day_number) or period_of.setdefault(
                day_number,
                _period(epoch + timedelta(days=day_number), options.kind, options.start_of_week),
            )
            key = (label, project)
        row = rows.get(key)
        if row is None:
            row = Row(
                key=label,
                project=project if options.instances and not sessions else None,
                first_ms=first_ts,
                last_ms=last_ts,
                project_path=project,
                agent=agent,
            )
            rows[key] = row
        usage = Usage(*r[6:15])
        if agent == "gemini":
            usage.thoughts = usage.reasoning
        name = f"{model}-fast" if fast else model
        if usage.priced < usage.requests:
            usage.unpriced_models.add(name)
        row.usage.add(usage)
        totals.add(usage)
        per_model = row.models.get(name)
        if per_model is None:
            row.models[name] = per_model = Usage()
            row.model_first[name] = first_ts
        else:
            row.model_first[name] = min(row.model_first[name], first_ts)
        per_model.add(usage)
        row.agents.add(agent)
        if first_ts < row.first_ms:
            row.first_ms = first_ts
            row.project_path = project
        row.last_ms = max(row.last_ms, last_ts)
    if sessions:
        ordered = sorted(rows.values(), key=lambda x: (x.last_ms, x.key))
    else:
        ordered = sorted(rows.values(), key=lambda x: (x.key, x.project or ""))
    return Report(options=options, rows=ordered, totals=totals)


def _period(day: date, kind: Kind, start_of_week: int) -> str:
    if kind == "monthly":
        return f"{day.year:04d}-{day.month:02d}"
    if kind == "weekly":
        return (day - timedelta(days=(day.weekday() - start_of_week) % 7)).isoformat()
    return day.isoformat()


def _local_midnight_ms(day: date, zone: tzinfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


# -- rendering -----------------------------------------------------------------------

_PERIOD_KEY = {"daily": "date", "weekly": "week", "monthly": "month"}
_LIST_KEY = {"daily": "daily", "weekly": "weekly", "monthly": "monthly", "sessions": "sessions"}


def _usage_json(u: Usage) -> dict[str, Any]:
    return {
        "inputTokens": u.input,
        "outputTokens": u.output_shown,
        "cacheCreationTokens": u.cache_creation,
        "cacheReadTokens": u.cache_read,
        "totalTokens": u.total,
        "totalCost": u.known_cost,
        "cacheCreation5mTokens": u.cache_write_5m,
        "cacheCreation1hTokens": u.cache_write_1h,
        "reasoningOutputTokens": u.reasoning,
        "requests": u.requests,
        "unpricedModels": sorted(u.unpriced_models),
    }


def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _row_json(row: Row, options: ReportOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.kind == "sessions":
        out["sessionId"] = row.key
        out["projectPath"] = row.project_path
        out["firstActivity"] = _iso_ms(row.first_ms)
        out["lastActivity"] = _iso_ms(row.last_ms)
    else:
        out[_PERIOD_KEY[options.kind]] = row.key
    out.update(_usage_json(row.usage))
    out["agent"] = row.agent if options.kind == "sessions" else (options.agent or "all")
    out["agents"] = sorted(row.agents)
    out["modelsUsed"] = row.models_used()
    breakdowns = sorted(
        row.models.items(), key=lambda kv: (-(kv[1].known_cost or 0.0), kv[0])
    )
    out["modelBreakdowns"] = [
        {
            "modelName": name,
            "inputTokens": u.input,
            "outputTokens": u.output_shown,
            "cacheCreationTokens": u.cache_creation,
            "cacheReadTokens": u.cache_read,
            "cost": u.known_cost,
            "cacheCreation5mTokens": u.cache_write_5m,
            "cacheCreation1hTokens": u.cache_write_1h,
            "reasoningOutputTokens": u.reasoning,
            "totalTokens": u.total,
            "requests": u.requests,
        }
        for name, u in breakdowns
    ]
    if options.agent == "codex":
        # The extra keys ``ccusage codex daily|session --json`` emits.
        out["costUSD"] = row.usage.known_cost
        out["models"] = {
            name: {
                "inputTokens": u.input,
                "cacheCreationTokens": u.cache_creation,
                "cacheReadTokens": u.cache_read,
                "outputTokens": u.output_shown,
                "reasoningOutputTokens": u.reasoning,
                "totalTokens": u.total,
                "isFallback": False,
            }
            for name, u in row.models.items()
        }
    if options.instances and row.project is not None:
        out["project"] = row.project
    return out


def render_json(report: Report) -> dict[str, Any]:
    """The report as ccusage's Claude JSON, plus tokend's extra keys.

    ``{"daily": [...], "totals": {...}}`` (``weekly``/``week``, ``monthly``/``month``,
    ``sessions``/``sessionId``); with ``instances``, ``{"projects": {name: [...]},
    "totals": {...}}`` as ``ccusage daily --instances`` prints it.
    """
    options = report.options
    totals = _usage_json(report.totals)
    if options.agent == "codex":
        totals["costUSD"] = report.totals.known_cost
    rows = [_row_json(r, options) for r in report.rows]
    if options.instances and options.kind != "sessions":
        projects: dict[str, list[dict[str, Any]]] = {}
        for row, data in zip(report.rows, rows, strict=True):
            projects.setdefault(row.project or "", []).append(data)
        return {"projects": projects, "totals": totals}
    return {_LIST_KEY[options.kind]: rows, "totals": totals}


_CSV_USAGE = (
    "inputTokens", "outputTokens", "cacheCreationTokens", "cacheCreation5mTokens",
    "cacheCreation1hTokens", "cacheReadTokens", "reasoningOutputTokens", "totalTokens",
    "requests", "totalCost",
)


def render_csv(report: Report) -> str:
    """One CSV line per row (per row and model with ``breakdown``), JSON key names as header."""
    options = report.options
    head: list[str] = (
        ["sessionId", "projectPath", "firstActivity", "lastActivity", "agent"]
        if options.kind == "sessions"
        else [_PERIOD_KEY[options.kind]]
    )
    if options.instances and options.kind != "sessions":
        head.append("project")
    if options.breakdown:
        head.append("modelName")
    head.extend(_CSV_USAGE)
    head.append("unpricedModels")
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)

    def cells(u: Usage) -> list[object]:
        cost = u.known_cost
        return [
            u.input, u.output_shown, u.cache_creation, u.cache_write_5m, u.cache_write_1h,
            u.cache_read, u.reasoning, u.total, u.requests,
            "" if cost is None else f"{cost:.6f}", ";".join(sorted(u.unpriced_models)),
        ]

    for row in report.rows:
        lead: list[object] = (
            [row.key, row.project_path, _iso_ms(row.first_ms), _iso_ms(row.last_ms), row.agent]
            if options.kind == "sessions"
            else [row.key]
        )
        if options.instances and options.kind != "sessions":
            lead.append(row.project or "")
        if options.breakdown:
            for name in row.models_used():
                writer.writerow([*lead, name, *cells(row.models[name])])
        else:
            writer.writerow([*lead, *cells(row.usage)])
    return buf.getvalue()


def _money(u: Usage) -> str:
    cost = u.known_cost
    if cost is None:
        return "—"
    mark = "*" if u.unpriced_models else ""
    return f"${cost:,.2f}{mark}"


def render_table(report: Report) -> str:
    """An aligned text table with a totals row; unpriced models listed under it."""
    options = report.options
    sessions = options.kind == "sessions"
    first = {"daily": "Date", "weekly": "Week", "monthly": "Month", "sessions": "Session"}
    head = [first[options.kind]]
    if sessions:
        head += ["Agent", "Project", "Last activity"]
    if options.instances and not sessions:
        head.append("Project")
    head += ["Input", "Output", "Cache create", "Cache read", "Total tokens", "Cost (USD)"]
    body: list[list[str]] = []
    lead_width = len(head) - 6

    def nums(u: Usage) -> list[str]:
        return [
            f"{u.input:,}", f"{u.output_shown:,}", f"{u.cache_creation:,}", f"{u.cache_read:,}",
            f"{u.total:,}", _money(u),
        ]

    zone = options.zone
    for row in report.rows:
        lead = [row.key]
        if sessions:
            last = datetime.fromtimestamp(row.last_ms / 1000, zone).strftime("%Y-%m-%d %H:%M")
            lead += [row.agent, _shorten(row.project_path, 32), last]
        if options.instances and not sessions:
            lead.append(_shorten(row.project or "", 32))
        body.append(lead + nums(row.usage))
        if options.breakdown:
            for name in row.models_used():
                sub = ["  └ " + name] + [""] * (lead_width - 1)
                body.append(sub + nums(row.models[name]))
    total_lead = ["Total"] + [""] * (lead_width - 1)
    widths = [len(h) for h in head]
    table = [head, *body, total_lead + nums(report.totals)]
    for line in table:
        for i, cell in enumerate(line):
            widths[i] = max(widths[i], len(cell))

    def fmt(line: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i < lead_width else cell.rjust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [fmt(head), rule, *(fmt(b) for b in body), rule, fmt(table[-1])]
    if not report.rows:
        out = ["no usage recorded for this selection"]
    unpriced = sorted(report.totals.unpriced_models)
    if unpriced:
        out.append("")
        out.append(
            "— / *: no price known for these models, so their cost is not included: "
            + ", ".join(unpriced)
        )
        out.append("  add their prices to prices.toml in the tokend config folder")
    return "\n".join(out)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


# -- option parsing helpers ----------------------------------------------------------


def parse_day(text: str, flag: str) -> date:
    """``YYYY-MM-DD`` or ccusage's ``YYYYMMDD``."""
    value = text.strip()
    try:
        if len(value) == 8 and value.isdigit():
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"{flag} {text!r} is not a date",
            hint=f"use YYYY-MM-DD or YYYYMMDD, e.g. {flag} 2026-01-31",
        ) from exc


def resolve_zone(name: str | None, env: dict[str, str] | None = None) -> tzinfo:
    """An IANA zone by name, or the local zone when ``name`` is empty or ``local``."""
    if not name or name == "local":
        return local_zone(env if env is not None else dict(os.environ))
    if name.upper() == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"--tz {name!r} is not a known time zone",
            hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
        ) from exc


def local_zone(env: dict[str, str]) -> tzinfo:
    """The machine's zone with its DST rules: ``$TZ``, ``/etc/localtime``, else a fixed
    offset (which is wrong across DST changes, so it is the last resort)."""
    tz = env.get("TZ", "").lstrip(":")
    if tz == "UTC":
        return timezone.utc  # as --tz UTC: the same offsets, without importing zoneinfo
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    if localtime.exists():
        try:
            with localtime.open("rb") as fh:
                return ZoneInfo.from_file(fh, key="localtime")
        except (OSError, ValueError):
            pass
    offset = -time.timezone if not time.localtime().tm_isdst else -time.altzone
    return timezone(timedelta(seconds=offset))

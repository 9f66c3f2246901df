"""The store's schema and SQL text: the migrations and the statements the store runs.

Kept apart from :mod:`tokend.store` so the SQL reads in one place and the store's
logic in another; nothing here runs, it is only text (and the schema version).
"""

from __future__ import annotations

__all__ = [
    "INSERT_LIMIT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SECONDARY_INDEXES",
    "SHADOWED_REPLAYS",
    "TOTAL_SQL",
    "UPSERT_EVENT",
    "UPSERT_FILE",
    "UPSERT_FILE_WITH_ID",
    "UPSERT_REPLAY",
]

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
    # Instants outside the years 2000-2199 (epoch milliseconds below) are corrupt log
    # values that earlier versions stored; reports that place them in a time zone fail.
    # tokend.models.utc_from_iso refuses them now.
    """
    DELETE FROM events WHERE ts < 946684800000 OR ts >= 7258118400000;
    DELETE FROM limits WHERE observed_at < 946684800000 OR observed_at >= 7258118400000;
    UPDATE limits SET resets_at = NULL
        WHERE resets_at < 946684800000 OR resets_at >= 7258118400000
    """,
    # The scan summary names the unpriced models: without this, that question read the
    # whole events table (15-45 ms on 130k rows) after every scan, however small.
    """
    CREATE INDEX IF NOT EXISTS events_unpriced ON events(model) WHERE cost IS NULL
    """,
    # The replay rule looks primaries up by their dedup key (_PRIMARY_OF), so only the
    # sidechain copies need an index by message: a few percent of the rows, where the
    # index of every row's message id took a quarter of a first scan's closing work.
    """
    DROP INDEX IF EXISTS events_shadow;
    CREATE INDEX IF NOT EXISTS events_replays ON events(shadow_key)
        WHERE sidechain = 1 AND shadow_key IS NOT NULL
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

TOTAL_SQL = "input + output + cache_read + cache_write_5m + cache_write_1h"

SECONDARY_INDEXES = {
    "events_agent_ts": "events(agent, ts)",
    "events_ts": "events(ts)",
    "events_session": "events(session_id)",
    "limits_agent_obs": "limits(agent, observed_at)",
}
"""The lookup indexes of the events and limits tables, dropped during a bulk load
(:meth:`tokend.store.Store.bulk_load`) and built once at its end: sorting 100k keys
once is several times cheaper than inserting them one by one into four B-trees (Codex
writes two limit observations with every response). ``events_replays`` stays: it holds
the sidechain copies only, so it costs a load next to nothing, where building it at the
end read the whole table again (15 ms on the 408 MB bench corpus, alone on one core)."""

_PRIMARY_OF = """
SELECT 1 FROM events AS p
WHERE p.dedup_key >= {lo} AND p.dedup_key < {hi}
    AND p.shadow_key = {shadow} AND p.sidechain = 0 AND p.dedup_key != {key}
"""
"""Whether a primary copy of message ``shadow`` is stored, other than ``key``.

A primary is found through the dedup key index, not an index by message: an event
with a ``shadow_key`` has a dedup key that starts with ``"<agent>:<shadow_key>"``,
then ``":"`` or nothing (:class:`tokend.models.UsageEvent`), so its primaries sit in
the key range from ``lo``, that prefix, up to ``hi``, the prefix followed by ``";"``
(the character after ``":"``). The range may also hold a longer message id; the
``shadow_key`` test leaves those out."""

_REPLAY_PREFIX = "events.agent || ':' || events.shadow_key"

SHADOWED_REPLAYS = f"""
DELETE FROM events WHERE sidechain = 1 AND shadow_key IS NOT NULL AND EXISTS ({
    _PRIMARY_OF.format(lo=_REPLAY_PREFIX, hi=f"{_REPLAY_PREFIX} || ';'",
                       shadow="events.shadow_key", key="events.dedup_key")
})
"""
"""The replay rule applied set-wise: a sidechain copy never stays beside a primary
of the same message (what the per-batch DELETE and ``UPSERT_REPLAY`` keep true)."""

_FILE_COLUMNS = "path, agent, root, dev, ino, offset, size, mtime_ns, state, malformed, updated_at"
_ON_FILE_CONFLICT = """
ON CONFLICT(path) DO UPDATE SET agent=excluded.agent, root=excluded.root,
    dev=excluded.dev, ino=excluded.ino, offset=excluded.offset, size=excluded.size,
    mtime_ns=excluded.mtime_ns, state=excluded.state, malformed=excluded.malformed,
    updated_at=excluded.updated_at
"""
UPSERT_FILE = (
    f"INSERT INTO files ({_FILE_COLUMNS}) VALUES ({', '.join('?' * 11)}){_ON_FILE_CONFLICT}"
    "RETURNING id"
)
UPSERT_FILE_WITH_ID = (
    f"INSERT INTO files (id, {_FILE_COLUMNS}) VALUES ({', '.join('?' * 12)}){_ON_FILE_CONFLICT}"
)
"""The files upsert of a bulk load, whose ids are given in Python
(:class:`tokend.store._BulkLoad`)."""

INSERT_LIMIT = (
    "INSERT OR IGNORE INTO limits (agent, root, limit_id, window_minutes, used_percent, "
    "resets_at, observed_at, source, reached, plan_type, session_id) "
    "VALUES (?,?,?,?,?,?,?,?,?,NULLIF(?, 0),?)"
)
"""``plan_type`` arrives as 0 for NULL, as ``speed`` does in :data:`UPSERT_EVENT`."""

_EVENT_COLUMNS = (
    "dedup_key, shadow_key, rank, agent, root, session_id, project, model, ts, input, output, "
    "cache_read, cache_write_5m, cache_write_1h, reasoning, tools, sidechain, speed, cost, file_id"
)
_EVENT_VALUES = ", ".join(["?", "NULLIF(?, 0)", *["?"] * 15, "NULLIF(?, 0)", "?", "?"])
"""The placeholders of an event row. ``shadow_key`` and ``speed`` arrive as 0 for
NULL (:func:`tokend.store.event_rows`): Python's sqlite3 binds a ``None`` through its
adapter lookup, about 3k instructions each, where an integer binds in a few dozen; most
rows leave one or both empty (on the 408 MB bench corpus: -8.7 % of the writing
process's insert instructions)."""

UPSERT_EVENT = f"""
INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_VALUES})
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


UPSERT_REPLAY = UPSERT_EVENT.replace(
    f"VALUES ({_EVENT_VALUES})",
    f"SELECT {_EVENT_VALUES} WHERE NOT EXISTS "
    f"({_PRIMARY_OF.format(lo='?', hi='?', shadow='?', key='?')})",
)
"""The upsert of a sidechain copy, skipped while a primary of its message is stored
(its row, then ``lo``, ``hi``, message id and dedup key for :data:`_PRIMARY_OF`)."""

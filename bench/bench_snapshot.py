"""Time ``build_snapshot`` over a synthetic store holding a year of heavy use.

The store is filled by direct inserts (no parsing) so a two-million-event store
takes seconds to build: Claude gets most events, Codex a share with a
``rate_limits`` observation every few turns, Gemini the rest, and a second Claude
account sits idle (an empty root must stay cheap). Events cluster in working
sessions with nightly pauses, as real use does.

Reported: the first build in a fresh process with an empty cache and empty kv
(``cold``), a fresh process whose kv mirror is warm (``kv-warm``: what a one-shot
``tokend status`` pays), repeated builds with the in-memory cache (``hot``: what
the daemon pays on every change) and builds right after inserting a new event.

    python bench/bench_snapshot.py [--events 2000000] [--store PATH] [--runs 30]
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tokend.config import Settings
from tokend.models import utc_ms
from tokend.sources.base import Root
from tokend.state import HistoryCache, build_snapshot
from tokend.store import Store

NOW = datetime(2026, 11, 23, 15, 40, tzinfo=timezone.utc)
YEAR_MS = 365 * 86_400_000


def roots(base: Path) -> list[Root]:
    return [
        Root("claude", base / "claude" / "projects", "personal"),
        Root("claude", base / "claude-work" / "projects", "work"),
        Root("codex", base / "codex", "codex"),
        Root("gemini", base / "gemini" / "tmp", "gemini"),
    ]


def fill(store: Store, rs: list[Root], events: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    now_ms = utc_ms(NOW)
    start = now_ms - YEAR_MS
    shares = ((rs[0], 0.70), (rs[2], 0.20), (rs[3], 0.10))
    cols = (
        "dedup_key, shadow_key, rank, agent, root, session_id, project, model, ts, input, "
        "output, cache_read, cache_write_5m, cache_write_1h, reasoning, tools, sidechain, "
        "speed, cost, file_id"
    )
    sql = f"INSERT INTO events ({cols}) VALUES ({','.join('?' * 20)})"
    lim_sql = (
        "INSERT OR IGNORE INTO limits (agent, root, limit_id, window_minutes, used_percent, "
        "resets_at, observed_at, source, reached, plan_type, session_id) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    )
    for fid, (root, share) in enumerate(shares, 1):
        store.db.execute(
            "INSERT INTO files (id, path, agent, root, dev, ino, offset, size, mtime_ns, "
            "updated_at) VALUES (?, ?, ?, ?, 0, 0, 0, 0, 0, 0)",
            (fid, f"{root.path}/log.jsonl", root.agent, root.key),
        )
        n = int(events * share)
        # working days: sessions of activity between 08:00 and 23:00 UTC
        day_ms = 86_400_000
        per_day = max(1, n // 365)
        batch: list[tuple[object, ...]] = []
        lims: list[tuple[object, ...]] = []
        k = 0
        for day in range(365):
            base = start + day * day_ms
            times = sorted(
                base + 8 * 3_600_000 + rnd.randrange(15 * 3_600_000) for _ in range(per_day)
            )
            for ts in times:
                if ts > now_ms:
                    break
                k += 1
                inp, out = rnd.randrange(50, 3000), rnd.randrange(20, 2000)
                cr = rnd.randrange(0, 60_000)
                batch.append((
                    f"{root.key}:{k}", None, 0, root.agent, root.key, f"s{day}", "proj",
                    "model-x", ts, inp, out, cr, rnd.randrange(0, 3000), 0, 0, "", 0, None,
                    (inp * 3 + out * 15 + cr * 0.3) / 1e6, fid,
                ))
                if root.agent == "codex" and k % 5 == 0:
                    reset5 = ts - ts % (5 * 3_600_000) + 5 * 3_600_000
                    reset7 = ts - ts % (7 * day_ms) + 7 * day_ms
                    pct5 = min(100.0, (ts % (5 * 3_600_000)) / 180_000)
                    lims.append(("codex", root.key, "codex", 300, round(pct5), reset5, ts,
                                 "codex", 0, "plus", None))
                    lims.append(("codex", root.key, "codex", 10080,
                                 round((ts % (7 * day_ms)) / (7 * day_ms) * 90), reset7, ts,
                                 "codex", 0, "plus", None))
            if len(batch) > 200_000:
                store.db.executemany(sql, batch)
                batch.clear()
        store.db.executemany(sql, batch)
        store.db.executemany(lim_sql, lims)
        store.db.commit()


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, {platform.system()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--store", type=Path, default=None, help="reuse or create this store")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokend-bench-"))
    path = args.store or tmp / "usage.sqlite3"
    base = path.parent / f"{path.stem}-home"
    rs = roots(base)
    for r in rs:
        r.path.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    store = Store(path)
    if fresh:
        t = time.perf_counter()
        fill(store, rs, args.events)
        print(f"filled {args.events:,} events in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    count = store.counts()
    settings = Settings()
    store.db.execute("DELETE FROM kv WHERE key LIKE 'windows:%'")
    store.db.commit()

    cold = timed(lambda: build_snapshot(store, rs, settings, NOW, cache=HistoryCache()), 1)
    kv_warm = timed(lambda: build_snapshot(store, rs, settings, NOW, cache=HistoryCache()),
                    args.runs)
    cache = HistoryCache()
    build_snapshot(store, rs, settings, NOW, cache=cache)
    hot = timed(lambda: build_snapshot(store, rs, settings, NOW, cache=cache), args.runs)

    k = [0]

    def append_and_build() -> None:
        k[0] += 1
        store.db.execute(
            "INSERT INTO events (dedup_key, rank, agent, root, session_id, project, model, ts, "
            "input, output, cache_read, cache_write_5m, cache_write_1h, reasoning, tools, "
            "sidechain, cost) VALUES (?, 0, 'claude', ?, 's', 'p', 'm', ?, 10, 10, 0, 0, 0, 0, "
            "'', 0, 0.001)",
            (f"live{time.time_ns()}-{k[0]}", rs[0].key, utc_ms(NOW) - 1000 + k[0]),
        )
        store.db.commit()
        build_snapshot(store, rs, settings, NOW, cache=cache)

    live = timed(append_and_build, args.runs)
    snap = build_snapshot(store, rs, settings, NOW, cache=cache)
    print(f"machine: {machine()}")
    print(f"store: {count['events']:,} events, {count['limits']:,} limit observations, "
          f"{path.stat().st_size / 1e6:.0f} MB")
    for name, xs in (("cold (empty cache, empty kv)", cold), ("kv-warm (new process)", kv_warm),
                     ("hot (daemon, in-memory cache)", hot),
                     ("insert 1 event + build (daemon)", live)):
        print(f"{name:<34} median {statistics.median(xs):7.1f} ms   max {max(xs):7.1f} ms"
              f"   (n={len(xs)})")
    for a in snap.agents:
        for w in a.windows:
            pct = "-" if w.percent is None else f"{w.percent:.1f}%"
            print(f"  {a.agent}/{a.account} {w.kind:<6} {pct:>7} {w.provenance:<10} "
                  f"{w.used_tokens:>12,} tok  {w.basis[:60]}")
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)  # the store, unless --store put it elsewhere
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the daemon publishes: the Snapshot, written as ``status.json`` and ``statusline.txt``.

Both files are written via a temp file in the same dir and ``os.replace``, so readers
(the statusline, 100 at a time) never see half a file. :func:`daemon_status_line`
reads ``status.json`` back for ``tokend status``, which is why writer and reader of
the ``daemon`` block live together here.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.daemon_lock import lock_holder

if TYPE_CHECKING:
    from tokend.context import Context
    from tokend.paths import Paths
    from tokend.snapshot import DaemonInfo, Snapshot
    from tokend.sources.base import Root, Source
    from tokend.store import Store

__all__ = ["build_snapshot", "daemon_status_line", "publish"]


def build_snapshot(
    ctx: Context,
    store: Store,
    now: datetime,
    info: DaemonInfo,
    roots: list[tuple[Source, Root]],
    paused_until: datetime | None,
    cache: Any = None,
) -> Snapshot:
    """The Snapshot for ``now``, via :func:`tokend.state.build_snapshot`.

    The one call site of the windows/limits code, so that a change of its signature
    is a change here only.
    """
    from tokend import state

    return state.build_snapshot(
        store, roots, ctx.settings, now, cache=cache, daemon=info,
        alerts_paused_until=paused_until,
    )


# -- the published files ----------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    # No fsync: the runtime dir is usually tmpfs and the daemon rewrites both files
    # at start; readers only need "old or new, never half", which os.replace gives.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


def publish(paths: Paths, snapshot: Snapshot, refresh_seconds: int, now: float) -> dict[str, Any]:
    """Write ``status.json`` and ``statusline.txt``; return the dict published."""
    from tokend.statusline import render

    data = snapshot.to_dict()
    data["publish"] = {"epoch": now, "refresh_seconds": refresh_seconds}
    _atomic_write(paths.status_json, json.dumps(data, separators=(",", ":")))
    _atomic_write(paths.statusline_txt, render(data, None, now) + "\n")
    return data

# -- status for `tokend status` ------------------------------------------------------


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes} min"


def daemon_status_line(ctx: Context) -> str:
    """One line for ``tokend status``: whether the daemon runs, its pid, uptime, last ingest."""
    pid = lock_holder(ctx.paths.lock_file)
    if pid is None:
        return "daemon: not running (start it with 'tokend start')"
    now = ctx.clock()
    parts = [f"daemon: running, pid {pid}"]
    try:
        data = json.loads(ctx.paths.status_json.read_text(encoding="utf-8"))
        info = data.get("daemon") or {}
        started = datetime.fromisoformat(info["started_at"])
        parts.append(f"up {_ago((now - started).total_seconds())}")
        last = info.get("last_ingest_at")
        if last:
            age = (now - datetime.fromisoformat(last)).total_seconds()
            parts.append(f"last ingest {_ago(age)} ago")
        else:
            parts.append("no new log data since start")
        if info.get("tray"):
            parts.append(f"tray: {info['tray']}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        parts.append("no snapshot published yet")
    return ", ".join(parts)

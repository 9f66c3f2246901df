"""The daemon's worker thread: reads the logs into the store and republishes.

The worker is the one thread that owns the store connection: SQLite connections are
bound to their thread, and a single writer needs no locking. Everything that touches
the store (ingest, rescans, spool files, recompute, alerts, checkpoints) is a
message on its queue; messages arriving within ``debounce_ms`` of each other are
handled as one :class:`_Batch`, so a burst of appends costs one recompute.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.daemon_publish import build_snapshot, publish
from tokend.daemon_state import DaemonState
from tokend.errors import TokendError
from tokend.snapshot import DaemonInfo, Snapshot

if TYPE_CHECKING:
    from tokend.sources.base import Root, Source
    from tokend.store import Store

__all__ = ["PAUSE_KEY", "DaemonWorker", "SyncRequest"]

log = logging.getLogger("tokend.daemon")  # one logger for the whole daemon, as before the split

PAUSE_KEY = "daemon.alerts_paused_until"

_SCAN_IN_CHILD = (
    "import signal\n"
    "signal.pthread_sigmask(signal.SIG_SETMASK, ())\n"
    "from tokend.cli import main\n"
    "raise SystemExit(main(['scan', '--quiet']))\n"
)
"""``tokend scan`` for :meth:`DaemonWorker._first_load`, with no signal blocked: a child
inherits the daemon's mask (its signal thread waits for SIGTERM with it blocked), and
parse workers that ignore SIGTERM would hang the scan on its way out."""

HOT_SECONDS = 900.0
"""A file read within this long is looked at again on every sync (see :meth:`_sync_hot`)."""

MAX_LIVE_FROM_SCAN = 256
"""At most this many files written in the last :data:`HOT_SECONDS` join the hot set
through a full scan (the most recent): more sessions than anyone runs at once."""


@dataclass
class _Batch:
    """The messages of one debounce interval, merged: a file appended to ten times is
    read once, and any number of recompute requests cost one recompute."""

    files: dict[str, None] = field(default_factory=dict)
    dirs: dict[str, None] = field(default_factory=dict)
    spool: bool = False
    observations: list[dict[str, Any]] = field(default_factory=list)
    rescan: bool = False
    recompute: bool = False
    watch_check: bool = False
    reload: bool = False
    pause: bool = False
    done: list[threading.Event] = field(default_factory=list)
    syncs: list[SyncRequest] = field(default_factory=list)

    def add(self, item: tuple[str, Any]) -> None:
        kind, value = item
        match kind:
            case "file":
                self.files[value] = None
            case "dir":
                self.dirs[value] = None
            case "spool":
                self.spool = True
            case "observe":
                self.observations.append(value)
            case "rescan":
                self.rescan = True
            case "recompute":
                self.recompute = True
            case "watch":
                self.watch_check = True
            case "reload":
                self.reload = True
            case "pause":
                self.pause = True
            case "done":
                self.done.append(value)
            case "sync":
                self.syncs.append(value)


class SyncRequest:
    """A caller waiting until the store holds every change reported so far.

    Put on the worker's queue behind whatever the watcher reported before it, so
    once the worker has processed the batch holding it, those changes are stored.
    :meth:`wait` says whether that batch went through without an error.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._ok = False

    def finish(self, ok: bool) -> None:
        self._ok = ok
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout) and self._ok


class DaemonWorker(DaemonState):
    """The worker thread's part of the daemon (:meth:`_work` is the thread's target)."""

    if TYPE_CHECKING:  # the control side's, see tokend.daemon_control.DaemonControls

        def open_report(self) -> None: ...
        def _open(self, path: Path) -> None: ...

    # -- the queue -------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._store = self.ctx.open_store()
            self.paused_until = _load_pause(self._store)
            self._tailer = self.ctx.tailer(self._store)
            self._tailer_prices = self.ctx.price_fingerprint
            self._follow_prices()
            self._recompute()  # publish what the store knows before the first scan
            self._first_load()
            self._full_scan()
            if self.stop_event.is_set():
                return  # stopped half-way: the next start reads the rest
            self._ingest_spool()
            self._recompute()
            log.info("initial scan done")
            while not self.stop_event.is_set():
                try:
                    item = self.queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                batch = _Batch()
                batch.add(item)
                self._collect(batch)
                ok = False
                try:
                    self._process(batch)
                    ok = True
                except TokendError as exc:
                    log.error("%s", exc)
                except Exception:
                    log.exception("error while processing changes")
                finally:
                    for event in batch.done:
                        event.set()
                    for request in batch.syncs:
                        request.finish(ok)
        except Exception:
            log.exception("the worker failed; stopping")
            self._failed = True
            self.stop_event.set()
        finally:
            if self._store is not None:
                self._store.close()

    def _collect(self, batch: _Batch) -> None:
        debounce = self.ctx.settings.daemon.debounce_ms / 1000
        deadline = time.monotonic() + debounce
        while True:
            # A report waits on a sync: take what is queued now, not a debounce's worth.
            remaining = 0.0 if batch.syncs else deadline - time.monotonic()
            try:
                item = self.queue.get(timeout=remaining) if remaining > 0 else (
                    self.queue.get_nowait()
                )
            except queue.Empty:
                return
            batch.add(item)

    def _process(self, batch: _Batch) -> None:
        if batch.reload:
            self._reload()
        if batch.pause and self._store is not None:
            until = self.paused_until
            self._store.set_kv(PAUSE_KEY, until.isoformat() if until else "")
        if batch.watch_check:
            self._watcher.update()
        changed = False
        for path in batch.files:
            changed |= self._ingest_path(Path(path))
        for folder in batch.dirs:
            changed |= self._ingest_dir(Path(folder))
        if batch.syncs or batch.rescan:
            changed |= self._follow_prices()
        if batch.syncs:
            changed |= self._sync_hot()
        if batch.rescan:
            self._watcher.update()
            changed |= self._full_scan()
        if batch.spool or batch.rescan:
            changed |= self._ingest_spool()
        for record in batch.observations:
            changed |= self._observe(record)
        if changed or batch.recompute or batch.reload or batch.done:
            self._recompute()

    # -- reading the logs ------------------------------------------------------------

    def _match(self, path: Path) -> tuple[Source, Root] | None:
        for source, root in self._roots:
            if source.wants(root, path):
                return source, root
        return None

    def _ingest_path(self, path: Path) -> bool:
        match = self._match(path)
        if match is None or self._tailer is None:
            return False
        key = str(path)
        before = _signature(key)  # taken first: an append during the read looks new
        result = self._tailer.ingest(match[0], match[1], path)
        if result.error:
            log.warning("%s", result.error)
        if result.bytes_read:
            self._hot[key] = (time.monotonic(), before)
            self.last_ingest_at = self.ctx.clock()
            log.debug("read %d bytes of %s", result.bytes_read, path)
            return True
        if key in self._hot:
            self._hot[key] = (self._hot[key][0], before)
        return False

    def _follow_prices(self) -> bool:
        """Price with the table as it is now, and reprice the store when it changed.

        A user may edit ``prices.toml`` while the daemon runs; reports (which the
        daemon renders, or which read its store) must not mix costs from two tables.
        Cheap when nothing changed: the table's inputs are a small file and a cached
        fingerprint. A broken file is logged and the current table kept.
        """
        from tokend.context import Context

        if self._store is None or self._tailer is None:
            return False
        fresh = Context(env=self.ctx.env, home=self.ctx.home, clock=self.ctx.clock)
        try:
            fingerprint = fresh.price_fingerprint
            if fingerprint != self._tailer_prices:
                # Rows stored since the edit carry the old table's costs whatever the
                # store's mark says (a report may have repriced meanwhile): redo all.
                self._tailer.cost_fn = fresh.prices.cost
                self._tailer_prices = fingerprint
                self._store.set_kv("prices", "")
                log.info("the price table changed: repricing")
            if self._store.get_kv("prices") == fingerprint:
                return False  # the usual case: the table itself is not even loaded
            return self._store.reprice(fresh.prices.cost, fingerprint)
        except TokendError as exc:
            log.error("keeping the current prices: %s", exc)
            return False

    def _sync_hot(self) -> bool:
        """Read again the files read lately, before a sync is answered.

        The watcher's event for an append made a moment before the sync may still be
        on its way from the kernel; the file being appended is almost always one of
        these (the live session). A file whose stat is what it was just before its
        last read has nothing new and is not opened: after a start over a history
        written minutes ago (a restored backup, the bench's fresh corpus), every one
        of its thousands of files is hot, and reading each again made every served
        report 3x slower.
        """
        horizon = time.monotonic() - HOT_SECONDS
        changed = False
        for key, (seen, before) in list(self._hot.items()):
            if seen < horizon:
                del self._hot[key]
            elif before is None or _signature(key) != before:
                changed |= self._ingest_path(Path(key))
        return changed

    def _ingest_dir(self, folder: Path) -> bool:
        """A new folder (a session folder, or a whole root that appeared): read its files."""
        changed = False
        for source, root in self._roots:
            if folder == root.path or folder in root.path.parents:
                # the root itself (or a folder above it) appeared: read all of it
                for path in source.files(root, lambda exc: None):
                    changed |= self._ingest_path(path)
            elif root.path in folder.parents:
                # a new folder inside the root: walk only that folder
                for dirpath, _, names in os.walk(folder):
                    for name in sorted(names):
                        path = Path(dirpath) / name
                        if source.wants(root, path):
                            changed |= self._ingest_path(path)
        return changed

    def _first_load(self) -> None:
        """Read a long history into an empty store with ``tokend scan`` in a child.

        This process runs threads, so it cannot fork parse workers; a fresh process
        can, and reads a first history of hundreds of megabytes several times faster
        than :meth:`_full_scan` would (:mod:`tokend.tail_pool`). Only for a first run
        with at least :data:`~tokend.tail.PARALLEL_MIN_BYTES` to read; whatever the
        child leaves undone (it failed, or was stopped) the full scan that follows
        reads, and a scan cut short is safe to resume (:meth:`Store.bulk_load`).
        """
        from tokend.tail import PARALLEL_MIN_BYTES
        from tokend.tail_pool import available_workers

        if self._store is None or self._tailer is None or self._store.max_event_id() != 0:
            return
        if available_workers() < 2:
            return
        pending = 0
        for _source, _root, path in self._tailer.discover():
            with contextlib.suppress(OSError):
                pending += path.stat().st_size
        if pending < PARALLEL_MIN_BYTES:
            return
        log.info("first run: reading %.0f MB of history in a child process", pending / 1e6)
        with tempfile.TemporaryFile() as stderr:  # a pipe could fill up and block it
            child = subprocess.Popen(
                [sys.executable, "-c", _SCAN_IN_CHILD], env=dict(self.ctx.env),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
            while child.poll() is None:
                if self.stop_event.wait(0.1):
                    child.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(5)
                    child.kill()
                    child.wait()
                    return
            if child.returncode != 0:
                stderr.seek(0)
                tail = stderr.read()[-500:].decode(errors="replace").strip()
                log.warning("the first scan in a child failed (exit %d): %s; reading here "
                            "instead", child.returncode, tail)

    def _full_scan(self) -> bool:
        """Every file of every root; stops early when the daemon is asked to stop."""
        if self._tailer is None:
            return False
        changed = False
        errors: list[str] = []
        live_since = time.time() - HOT_SECONDS
        live: list[tuple[int, str, tuple[int, int, int]]] = []
        for source, root, path in self._tailer.discover(errors):
            if self.stop_event.is_set():
                break
            try:
                st: os.stat_result | None = path.stat()  # before the read, as in _ingest_path
            except OSError:
                st = None
            result = self._tailer.ingest(source, root, path)
            if result.bytes_read:
                changed = True
            if st is not None and st.st_mtime >= live_since:
                live.append((st.st_mtime_ns, str(path), _stat_signature(st)))
        # Live sessions, though read by this scan rather than a watcher event: an append
        # to one just before a sync, whose event is still on its way, must be in the
        # report that sync answers (_sync_hot). The most recent few: a history restored
        # minutes ago is all "recent", and each hot file costs every sync a stat.
        now = time.monotonic()
        for _, key, signature in heapq.nlargest(MAX_LIVE_FROM_SCAN, live):
            self._hot[key] = (now, signature)
        for error in errors:
            log.warning("%s", error)
        if changed:
            self.last_ingest_at = self.ctx.clock()
        return changed

    def _ingest_spool(self) -> bool:
        changed = False
        spool = self.ctx.paths.spool_dir
        try:
            names = sorted(p.name for p in spool.iterdir() if p.name.endswith(".json")
                           and not p.name.startswith("."))
        except OSError:
            return False
        for name in names:
            # Claim the file by renaming it first: the statusline may replace
            # claude-<session>.json with a newer figure at any moment, and an unlink
            # after reading would delete that newer file unread.
            path = spool / f".claimed-{name}"
            try:
                (spool / name).replace(path)
                record = json.loads(path.read_text(encoding="utf-8"))
                path.unlink()
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                log.warning("dropping unreadable spool file %s: %s", path, exc)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            changed |= self._observe(record)
        return changed

    def _observe(self, record: Any) -> bool:
        """Store an official observation handed in by ``tokend statusline`` or ``observe``."""
        if not isinstance(record, dict) or record.get("kind") != "claude_statusline":
            log.warning("ignoring an observation of unknown kind")
            return False
        payload = record.get("payload")
        if not isinstance(payload, dict) or self._store is None:
            return False
        from tokend.sources.claude_limits import statusline_observations

        at = record.get("observed_at")
        observed = (
            datetime.fromtimestamp(float(at), timezone.utc)
            if isinstance(at, (int, float)) else self.ctx.clock()
        )
        observations = statusline_observations(payload, observed)
        root = self._claude_root(payload.get("transcript_path"))
        if not observations or root is None:
            return False
        self._store.add_observations(observations, root.key)
        log.info("recorded %d official Claude observations", len(observations))
        return True

    def _claude_root(self, transcript: object) -> Root | None:
        roots = [root for source, root in self._roots if source.agent == "claude"]
        if isinstance(transcript, str) and transcript:
            where = Path(transcript)
            for root in roots:
                if root.path in where.parents:
                    return root
        for root in roots:
            if root.path.is_dir():
                return root
        return roots[0] if roots else None

    def _reload(self) -> None:
        from tokend.context import Context

        fresh = Context(env=self.ctx.env, home=self.ctx.home, clock=self.ctx.clock)
        try:
            fresh.settings  # noqa: B018 - validate before switching
            roots = fresh.roots()
        except TokendError as exc:
            log.error("keeping the old configuration: %s", exc)
            return
        self.ctx = fresh
        self._roots = roots
        if self._store is not None:
            self._tailer = fresh.tailer(self._store)
            self._tailer_prices = fresh.price_fingerprint
            self._follow_prices()
        self._watcher.update()
        self._full_scan()
        log.info("configuration reloaded")

    # -- computing and publishing ----------------------------------------------------

    def _recompute(self) -> None:
        if self._store is None:
            return
        now = self.ctx.clock()
        info = DaemonInfo(
            pid=os.getpid(), started_at=self.started_at, last_ingest_at=self.last_ingest_at,
            tray=self.tray_state,
        )
        if self._cache is None:
            from tokend.state import HistoryCache

            self._cache = HistoryCache()  # windows' history, kept for the daemon's life
        snapshot = build_snapshot(self.ctx, self._store, now, info, self._roots,
                                  self.paused_until, self._cache)
        with self._publish_lock:
            self.snapshot = snapshot
            self.published = publish(self.ctx.paths, snapshot,
                                     self.ctx.settings.daemon.recompute_seconds, now.timestamp())
        tray = self._tray  # once: the main thread drops it when the tray fails
        if tray is not None:
            try:
                tray.update(snapshot)
            except Exception:
                log.exception("the tray failed to update")
        self._alerts(snapshot, now)
        self._checkpoints(snapshot, now)

    def _checkpoints(self, snapshot: Snapshot, now: datetime) -> None:
        """Write the session checkpoints that are due (the module decides; never raises)."""
        if self._store is None:
            return
        from tokend.checkpoint import run_checkpoints

        notifier, store = self._notifier, self._store

        def notify(title: str, body: str, path: Path) -> None:
            if notifier is not None:
                self._notify_checkpoint(store, notifier, title, body, path, now)

        run_checkpoints(store, snapshot, self.ctx.settings.checkpoint, now, notify)

    def _notify_checkpoint(
        self, store: Store, notifier: Any, title: str, body: str, path: Path, now: datetime
    ) -> None:
        """"Checkpoint saved", through the alerts' gate: pause, quiet hours and the rate
        limit; a click opens the checkpoint file.

        The rate limit counts checkpoint notices per agent in a lane of their own
        (``checkpoint:<agent>``): a checkpoint is written when a window crosses 80 or
        95 %, the very moment the threshold alert goes out, and a notice held back is
        never sent later, so sharing the agent's lane would swallow every one of them.
        """
        from tokend.alerts import AGENT_NAMES, Alert, allowed, record_sent
        from tokend.models import utc_ms

        word = body.split(" ", 1)[0]  # the notice names the agent first
        agent = word if word in AGENT_NAMES else "unknown"
        alert = Alert(
            key=f"checkpoint|{path}|{utc_ms(now)}", agent=f"checkpoint:{agent}",
            kind="checkpoint",
            title=title, body=body, urgency="normal", extra={"path": str(path)},
        )
        if not allowed(alert, store, self.ctx.settings, now, self.paused_until):
            log.info("checkpoint notification held back (paused, quiet hours or rate "
                     "limit): %s", path)
            return
        notifier.send(title, body, "normal", on_click=lambda: self._open(path))
        record_sent(store, [alert], now)

    def _alerts(self, snapshot: Snapshot, now: datetime) -> None:
        if self._notifier is None or self._store is None:
            return
        try:
            from tokend.alerts import due_alerts, record_sent
        except ImportError:
            return
        try:
            due = due_alerts(snapshot, self._store, self.ctx.settings, now, self.paused_until)
            for alert in due:
                self._notifier.send(alert.title, alert.body, alert.urgency,
                                    on_click=self.open_report)
            if due:
                record_sent(self._store, due, now)
        except Exception:
            log.exception("cannot evaluate alerts")


def _load_pause(store: Store) -> datetime | None:
    value = store.get_kv(PAUSE_KEY)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _stat_signature(st: os.stat_result) -> tuple[int, int, int]:
    """What changes when a log is appended to, truncated, replaced or rewritten."""
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        # os.stat on the string: a sync looks at every hot file, and a Path each
        # would cost more than the stat.
        return _stat_signature(os.stat(path))  # noqa: PTH116
    except OSError:
        return None

"""What wakes the daemon's worker: file-system events (watchdog) and timers (apscheduler).

Both only put messages on the worker's queue; neither touches the store.

- :class:`RootWatcher`: one recursive watch per existing root; a root that does not
  exist yet is watched for from its nearest existing parent and gets its own watch
  (and a scan) when it appears. Created, modified and moved events are forwarded
  (an atomic replace arrives as a move whose ``dest_path`` is the log).
- :func:`start_scheduler`: a recompute every ``recompute_seconds`` even when idle
  (windows roll and reset without any log activity), a safety rescan every
  ``rescan_seconds`` (cheap: the tailer reads only new bytes), and a tick at every
  full minute so reset countdowns shown as text are never a minute behind.

watchdog and apscheduler are imported only when the daemon starts, so the commands
that merely ask about a daemon (``tokend status``, ``tokend stop``) never load them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokend.config import DaemonSettings

__all__ = ["Put", "RootWatcher", "start_scheduler"]

log = logging.getLogger("tokend.daemon")  # one logger for the whole daemon, as before the split

Put = Callable[[tuple[str, Any]], None]
"""Puts a message (``(kind, value)``) on the worker's queue."""


class RootWatcher:
    """The watchdog observer and its watches: the roots, and the parents of missing roots.

    :param put: the worker queue's ``put``.
    :param targets: the folders to watch now (the roots and the spool folder); asked
        on every :meth:`update`, since a reload changes the roots.
    :param spool_dir: the spool folder, whose ``*.json`` files are statusline
        observations rather than logs.
    """

    def __init__(
        self, put: Put, targets: Callable[[], list[Path]], spool_dir: Callable[[], Path]
    ) -> None:
        self._put = put
        self._targets = targets
        self._spool_dir = spool_dir
        self._observer: Any = None
        self._watches: dict[str, Any] = {}
        self._parent_watches: dict[str, Any] = {}

    def start(self) -> None:
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.start()
        self.update(initial=True)

    def stop(self) -> None:
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
                self._observer.join(timeout=1.0)

    def update(self, initial: bool = False) -> None:
        """Watch every existing root; watch the nearest existing parent of the others."""
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Events(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                watcher.on_event(event)

        handler = Events()
        parents: set[str] = set()
        for target in self._targets():
            key = str(target)
            if target.is_dir():
                if key not in self._watches:
                    try:
                        self._watches[key] = self._observer.schedule(
                            handler, key, recursive=True
                        )
                    except OSError as exc:
                        log.warning("cannot watch %s: %s", key, exc)
                        continue
                    if not initial:
                        log.info("root appeared: %s", key)
                        self._put(("dir", key))
                continue
            gone = self._watches.pop(key, None)
            if gone is not None:
                with contextlib.suppress(Exception):
                    self._observer.unschedule(gone)
            parent = target.parent
            while not parent.is_dir() and parent != parent.parent:
                parent = parent.parent
            parents.add(str(parent))
        for key in list(self._parent_watches):
            if key not in parents:
                with contextlib.suppress(Exception):
                    self._observer.unschedule(self._parent_watches.pop(key))
        for key in parents:
            if key not in self._parent_watches and key not in self._watches:
                try:
                    self._parent_watches[key] = self._observer.schedule(
                        handler, key, recursive=False
                    )
                except OSError as exc:
                    log.warning("cannot watch %s for a root to appear: %s", key, exc)

    def watching(self, root: Path) -> bool:
        """Whether changes below ``root`` reach the worker: it is watched, or it does
        not exist yet and its nearest existing parent is (so its creation is seen)."""
        if str(root) in self._watches:
            return True
        if root.is_dir():
            return False  # exists, but could not be watched (the inotify limit, say)
        parent = root.parent
        while not parent.is_dir() and parent != parent.parent:
            parent = parent.parent
        return str(parent) in self._parent_watches

    def on_event(self, event: Any) -> None:
        """Turn a watchdog event into a worker message (runs on the observer's thread)."""
        kind = event.event_type
        if kind == "deleted" and event.is_directory:
            # A watched root itself removed: its inotify watch is gone with it, so
            # forget it and watch for it from its parent again.
            if os.fsdecode(event.src_path) in self._watches:
                self._put(("watch", None))
            return
        if kind not in ("created", "modified", "moved"):
            return
        path = os.fsdecode(event.dest_path if kind == "moved" else event.src_path)
        parent = str(Path(path).parent)
        if parent in self._parent_watches:
            self._put(("watch", None))
        if event.is_directory:
            if kind != "modified":
                self._put(("dir", path))
            return
        if parent == str(self._spool_dir()):
            if path.endswith(".json") and not Path(path).name.startswith("."):
                self._put(("spool", None))
            return
        self._put(("file", path))


def start_scheduler(put: Put, cfg: DaemonSettings) -> Any:
    """Start the timers that put work on the queue; returns the running scheduler."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = BackgroundScheduler(
        timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                      "misfire_grace_time": 30},
    )
    scheduler.add_job(put, IntervalTrigger(seconds=cfg.recompute_seconds),
                      args=[("recompute", None)], id="recompute")
    scheduler.add_job(put, IntervalTrigger(seconds=cfg.rescan_seconds),
                      args=[("rescan", None)], id="rescan")
    scheduler.add_job(put, CronTrigger(second=0), args=[("recompute", None)],
                      id="tick")
    scheduler.start()
    return scheduler

"""The daemon's shared state: every field of :class:`tokend.daemon.Daemon`, in one place.

The daemon is one object whose methods are spread over modules by concern: the
worker thread (:mod:`tokend.daemon_worker`), the control socket and tray actions
(:mod:`tokend.daemon_control`) and the life cycle (:mod:`tokend.daemon`). They share
these fields, so the fields are declared and initialised here once, with who writes
each, rather than guessed at by every part.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.daemon_lock import InstanceLock
from tokend.daemon_watch import RootWatcher

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokend.autostart import Backend, Runner
    from tokend.context import Context
    from tokend.snapshot import Snapshot
    from tokend.sources.base import Root, Source
    from tokend.store import Store
    from tokend.tail import Tailer

__all__ = ["DaemonState"]


class DaemonState:
    """The fields of the daemon; the parameters are those of :class:`tokend.daemon.Daemon`."""

    def __init__(
        self,
        ctx: Context,
        *,
        tray: bool = True,
        notify: bool = True,
        opener: Callable[[Path], None] | None = None,
        platform: str = sys.platform,
        autostart_runner: Runner | None = None,
    ) -> None:
        # Settings and roots: replaced as a whole by the worker on a reload.
        self.ctx = ctx
        self._roots: list[tuple[Source, Root]] = []
        self.want_tray = tray
        self.want_notify = notify
        # The control side: opener (None: the desktop's default) and login item.
        self._opener = opener
        self._platform = platform
        self._autostart_runner = autostart_runner
        self._autostart_lock = threading.Lock()
        self._autostart_backend: Backend | None = None
        self._autostart_built = False
        self._report_lock = threading.Lock()
        self._report_busy = False
        # Between the threads: the worker's queue and the stop flag.
        self.stop_event = threading.Event()
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        # What is published (written by the worker; `published` under _publish_lock).
        self.started_at = ctx.clock()
        self.last_ingest_at: datetime | None = None
        self.paused_until: datetime | None = None
        self.tray_state = "off"
        self.published: dict[str, Any] | None = None
        self.snapshot: Snapshot | None = None
        self._publish_lock = threading.Lock()
        self._cache: Any = None
        # The worker's own: the store connection is bound to its thread.
        self._store: Store | None = None
        self._tailer: Tailer | None = None
        # file -> (monotonic time it was last read, its stat just before that read)
        self._hot: dict[str, tuple[float, tuple[int, int, int] | None]] = {}
        self._tailer_prices = ""  # fingerprint of the table the tailer prices with
        # The parts started by run() and stopped by the shutdown.
        self._lock = InstanceLock(ctx.paths.lock_file)
        self._watcher = RootWatcher(self.queue.put, self._watch_targets,
                                    lambda: self.ctx.paths.spool_dir)
        self._scheduler: Any = None
        self._server: Any = None
        self._worker: threading.Thread | None = None
        self._tray: Any = None
        self._notifier: Any = None
        self._failed = False
        self._old_mask: set[int | signal.Signals] | None = None
        self._signal_thread: threading.Thread | None = None
        self._signals_done = False
        self._tray_done = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    def _watch_targets(self) -> list[Path]:
        return [root.path for _, root in self._roots] + [self.ctx.paths.spool_dir]

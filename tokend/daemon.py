"""The daemon: watches the agent logs, keeps the store current, publishes the Snapshot.

Threads and who owns what:

- **worker** (one thread) owns the store connection: SQLite connections are bound to
  their thread, and a single writer needs no locking. Everything that touches the
  store (ingest, rescans, spool files, recompute, alerts) is a message on its queue;
  messages arriving within ``debounce_ms`` of each other are handled as one batch,
  so a burst of appends costs one recompute.
- **watchdog observer**: one recursive watch per existing root; a root that does not
  exist yet is watched for from its nearest existing parent and gets its own watch
  (and a scan) when it appears. Created, modified and moved events are forwarded
  (an atomic replace arrives as a move whose ``dest_path`` is the log).
- **apscheduler**: a recompute every ``recompute_seconds`` even when idle (windows
  roll and reset without any log activity), a safety rescan every
  ``rescan_seconds`` (cheap: the tailer reads only new bytes), and a tick at every
  full minute so reset countdowns shown as text are never a minute behind.
- **control socket** (:mod:`tokend.ipc`) and, when enabled, the **tray** on the main
  thread (macOS requires it); otherwise the main thread waits for the stop event.

Publishing writes ``status.json`` and ``statusline.txt`` via a temp file in the same
dir and ``os.replace``, so readers (the statusline, 100 at a time) never see half a
file. One daemon per ``TOKEND_HOME``: an ``flock`` on the lock file, which the kernel
drops when the process dies, so a lock file left by a killed daemon is not "stale"
in any way that matters; its pid is simply overwritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.errors import AlreadyRunning, TokendError
from tokend.snapshot import DaemonInfo, Snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokend.autostart import Backend, Runner
    from tokend.context import Context
    from tokend.paths import Paths
    from tokend.sources.base import Root, Source
    from tokend.store import Store
    from tokend.tail import Tailer

__all__ = [
    "Daemon",
    "InstanceLock",
    "daemon_status_line",
    "lock_holder",
    "publish",
    "setup_logging",
]

log = logging.getLogger("tokend.daemon")

PAUSE_KEY = "daemon.alerts_paused_until"
TRAY_STOP_SECONDS = 1.2
"""How long a stop waits for the tray's toolkit loop before going on without it."""
FOREVER = datetime(9999, 1, 1, tzinfo=timezone.utc)
REPORT_NAME = "report.html"
_XDG_PLATFORMS = ("linux", "freebsd", "openbsd", "netbsd", "dragonfly", "sunos")
"""Platforms whose desktops follow XDG autostart (or run systemd)."""


# -- single instance -----------------------------------------------------------------


class InstanceLock:
    """An exclusive ``flock`` on the lock file, with our pid written in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """:raises AlreadyRunning: another live process holds the lock."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = _read_pid(self.path)
            raise AlreadyRunning(
                f"tokend already runs for this TOKEND_HOME (pid {pid or '?'})",
                hint="'tokend status' shows it; 'tokend stop' stops it",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def lock_holder(path: Path) -> int | None:
    """The pid of the daemon holding the lock, or ``None`` when no daemon runs.

    "Running" means "locked": a pid in the file alone proves nothing (the process may
    have been killed, and its pid reused).
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return _read_pid(path) or -1
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None


# -- publishing ----------------------------------------------------------------------


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


def setup_logging(paths: Paths, *, stderr: bool, level: str | None = None) -> None:
    """A rotating log file, plus stderr in the foreground; uncaught errors are logged."""
    from logging.handlers import RotatingFileHandler

    paths.log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = RotatingFileHandler(paths.log_file, maxBytes=1 << 20, backupCount=3)
    file_handler.setFormatter(fmt)
    root.addHandler(file_handler)
    if stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(fmt)
        root.addHandler(console)
    root.setLevel((level or os.environ.get("TOKEND_LOG_LEVEL") or "INFO").upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job run
    # watchdog 7 warns (with megabytes of repr) when a new folder's watch is re-added;
    # harmless, see reference headless-desktop-testing.md section 4.
    import warnings

    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        log.critical("uncaught error", exc_info=(kind, exc, tb))

    sys.excepthook = hook


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


# -- the work queue ------------------------------------------------------------------


@dataclass
class _Batch:
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

    def add(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == "file":
            self.files[value] = None
        elif kind == "dir":
            self.dirs[value] = None
        elif kind == "spool":
            self.spool = True
        elif kind == "observe":
            self.observations.append(value)
        elif kind == "rescan":
            self.rescan = True
        elif kind == "recompute":
            self.recompute = True
        elif kind == "watch":
            self.watch_check = True
        elif kind == "reload":
            self.reload = True
        elif kind == "pause":
            self.pause = True
        elif kind == "done":
            self.done.append(value)


class Daemon:
    """The running daemon; also the tray's :class:`~tokend.tray.TrayActions`.

    :param ctx: paths, settings, roots.
    :param tray: show the tray icon when a tray host is available.
    :param notify: send desktop notifications for due alerts.
    :param opener: opens a file in the desktop's default application (the report in
        the browser, the config in an editor, a checkpoint); called on a thread of
        its own. Default: ``xdg-open`` / ``open`` / ``os.startfile``.
    :param platform: ``sys.platform`` (which login-item backend applies).
    :param autostart_runner: runs ``systemctl`` / ``launchctl`` for the login item.
    """

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
        self.ctx = ctx
        self.want_tray = tray
        self.want_notify = notify
        self._opener = opener or open_with_desktop
        self._platform = platform
        self._autostart_runner = autostart_runner
        self._autostart_lock = threading.Lock()
        self._autostart_backend: Backend | None = None
        self._autostart_built = False
        self._report_lock = threading.Lock()
        self._report_busy = False
        self.stop_event = threading.Event()
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.started_at = ctx.clock()
        self.last_ingest_at: datetime | None = None
        self.paused_until: datetime | None = None
        self.tray_state = "off"
        self.published: dict[str, Any] | None = None
        self.snapshot: Snapshot | None = None
        self._lock = InstanceLock(ctx.paths.lock_file)
        self._roots: list[tuple[Source, Root]] = []
        self._observer: Any = None
        self._watches: dict[str, Any] = {}
        self._parent_watches: dict[str, Any] = {}
        self._scheduler: Any = None
        self._server: Any = None
        self._worker: threading.Thread | None = None
        self._tray: Any = None
        self._notifier: Any = None
        self._store: Store | None = None
        self._tailer: Tailer | None = None
        self._publish_lock = threading.Lock()
        self._cache: Any = None
        self._failed = False
        self._old_mask: set[int | signal.Signals] | None = None
        self._signal_thread: threading.Thread | None = None
        self._signals_done = False
        self._tray_done = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    # -- life cycle ----------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code. :raises AlreadyRunning:."""
        paths = self.ctx.paths
        paths.ensure_runtime_dir()
        paths.spool_dir.mkdir(mode=0o700, exist_ok=True)
        self._lock.acquire()
        try:
            # Handlers first: a SIGHUP's default action would kill a daemon that has
            # already published but not yet installed them.
            self._install_signals()
            self._roots = self.ctx.roots()
            log.info("tokend %s starting, pid %d, %d roots", _version(), os.getpid(),
                     len(self._roots))
            self._start_ipc()
            tray = self._make_tray()  # before the first publish, which names the tray state
            self._setup_notifier()
            self._start_observer()
            self._worker = threading.Thread(target=self._work, name="tokend-worker", daemon=True)
            self._worker.start()
            self._start_scheduler()
            self._main_loop(tray)
        finally:
            self._shutdown()
        return 1 if self._failed else 0

    def _main_loop(self, tray: Any) -> None:
        if tray is None:
            while not self.stop_event.wait(1.0):
                pass
            return
        self._tray = tray
        threading.Thread(target=self._stop_tray_on_stop, name="tokend-tray-stop",
                         daemon=True).start()
        self.queue.put(("recompute", None))
        try:
            try:
                tray.run(lambda *_: None)
            except Exception as exc:  # no tray after all (TrayUnavailable): headless
                reason = str(exc) or type(exc).__name__
            else:
                # The loop ended by itself (the toolkit gave up) rather than for a
                # stop or Quit: the daemon's work does not depend on the icon.
                reason = "" if self.stop_event.is_set() else "the tray icon's loop ended"
            self._tray_done.set()
            if reason:
                self._go_headless(reason)
                while not self.stop_event.wait(1.0):
                    pass
        finally:
            self._tray_done.set()
            self.stop_event.set()

    def _go_headless(self, reason: str) -> None:
        """The tray could not start (or died): say why once, publish it, carry on."""
        self._tray = None
        self.tray_state = f"headless: {reason}"
        log.warning("no tray icon, running headless: %s", reason)
        self.queue.put(("recompute", None))  # status.json names the new tray state

    def _stop_tray_on_stop(self) -> None:
        """Stop the tray loop; if the toolkit swallows the request, stop without it.

        A stop that lands while the toolkit loop is still starting can be lost, and a
        daemon that ignores SIGTERM gets SIGKILLed by the service manager mid-write.
        So the stop is repeated, and after ``TRAY_STOP_SECONDS`` the daemon shuts
        down from this thread and exits (the 2 s budget of a clean stop).
        """
        self.stop_event.wait()
        deadline = time.monotonic() + TRAY_STOP_SECONDS
        while self._tray is not None:
            with contextlib.suppress(Exception):
                self._tray.stop()
            if self._tray_done.wait(0.25):
                return
            if time.monotonic() > deadline:
                log.warning("the tray loop did not end; stopping without it")
                self._shutdown()
                logging.shutdown()
                os._exit(1 if self._failed else 0)

    def request_stop(self) -> None:
        self.stop_event.set()

    def _shutdown(self) -> None:
        with self._shutdown_lock:  # the main thread or the tray-stop thread, once
            if self._shut_down:
                return
            self._shut_down = True
        self.stop_event.set()
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
                self._observer.join(timeout=1.0)
        if self._worker is not None:
            self.queue.put(("recompute", None))  # wake it up
            self._worker.join(timeout=1.5)
        if self._server is not None:
            self._server.stop()
        if self._notifier is not None:
            with contextlib.suppress(Exception):
                self._notifier.close()
        for path in (self.ctx.paths.status_json, self.ctx.paths.statusline_txt):
            with contextlib.suppress(OSError):
                path.unlink()
        self._lock.release()
        self._restore_signals()
        log.info("tokend stopped")

    _SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")

    def _install_signals(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads, whatever the main thread is doing.

        A Python signal handler runs only when the main thread runs Python code; with
        the tray's toolkit loop (GTK, AppKit) on the main thread that may be never. So
        on POSIX the signals are blocked before any thread starts (threads inherit
        the mask) and one thread takes them with ``sigwait``. Elsewhere, plain handlers.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        wanted = {getattr(signal, n) for n in self._SIGNALS if hasattr(signal, n)}
        if hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigwait"):
            self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
            self._signal_thread = threading.Thread(
                target=self._wait_signals, args=(wanted,), name="tokend-signals", daemon=True
            )
            self._signal_thread.start()
            return
        for signum in wanted:
            signal.signal(signum, lambda n, _frame: self._on_signal(n))

    def _wait_signals(self, wanted: set[signal.Signals]) -> None:
        while True:
            signum = signal.sigwait(wanted)
            if self._signals_done:
                return
            self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            log.info("SIGHUP: reloading the configuration")
            self.queue.put(("reload", None))
        else:
            log.info("signal %d: stopping", signum)
            self.stop_event.set()

    def _restore_signals(self) -> None:
        """Unblock the signals again (matters when run() was called in-process)."""
        if self._old_mask is None:
            return
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        self._old_mask = None
        self._signals_done = True
        thread = self._signal_thread
        if thread is not None and thread.ident is not None and thread.is_alive():
            with contextlib.suppress(OSError):
                signal.pthread_kill(thread.ident, signal.SIGHUP)  # ends its sigwait
            thread.join(timeout=1.0)

    # -- adapters --------------------------------------------------------------------

    def _make_tray(self) -> Any:
        if not self.want_tray or not self.ctx.settings.tray.enabled:
            self.tray_state = "off"
            return None
        try:
            from tokend import tray as tray_module
        except ImportError as exc:
            self.tray_state = f"headless: tray module unavailable ({exc})"
            log.info("no tray: %s", self.tray_state)
            return None
        ok, reason = tray_module.tray_available(self.ctx.env)
        if not ok:
            self.tray_state = f"headless: {reason}"
            log.info("no tray: %s", reason)
            return None
        try:
            tray = tray_module.Tray(self, self.ctx.settings, self.ctx.clock)
        except Exception as exc:
            self.tray_state = f"headless: tray failed ({exc})"
            log.exception("cannot create the tray icon")
            return None
        self.tray_state = str(reason or "on")
        return tray

    def _setup_notifier(self) -> None:
        if not self.want_notify:
            return
        try:
            from tokend.notify import Notifier
        except ImportError as exc:
            log.info("no notifications: %s", exc)
            return
        try:
            self._notifier = Notifier("tokend", None)
        except Exception:
            log.exception("cannot create the notifier")

    # -- watching --------------------------------------------------------------------

    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.start()
        self._update_watches(initial=True)

    def _watch_targets(self) -> list[Path]:
        return [root.path for _, root in self._roots] + [self.ctx.paths.spool_dir]

    def _update_watches(self, initial: bool = False) -> None:
        """Watch every existing root; watch the nearest existing parent of the others."""
        from watchdog.events import FileSystemEventHandler

        daemon = self

        class Events(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                daemon._on_event(event)

        handler = Events()
        parents: set[str] = set()
        for target in self._watch_targets():
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
                        self.queue.put(("dir", key))
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

    def _on_event(self, event: Any) -> None:
        kind = event.event_type
        if kind == "deleted" and event.is_directory:
            # A watched root itself removed: its inotify watch is gone with it, so
            # forget it and watch for it from its parent again.
            if os.fsdecode(event.src_path) in self._watches:
                self.queue.put(("watch", None))
            return
        if kind not in ("created", "modified", "moved"):
            return
        path = os.fsdecode(event.dest_path if kind == "moved" else event.src_path)
        parent = str(Path(path).parent)
        if parent in self._parent_watches:
            self.queue.put(("watch", None))
        if event.is_directory:
            if kind != "modified":
                self.queue.put(("dir", path))
            return
        if parent == str(self.ctx.paths.spool_dir):
            if path.endswith(".json") and not Path(path).name.startswith("."):
                self.queue.put(("spool", None))
            return
        self.queue.put(("file", path))

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        cfg = self.ctx.settings.daemon
        scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                          "misfire_grace_time": 30},
        )
        scheduler.add_job(self.queue.put, IntervalTrigger(seconds=cfg.recompute_seconds),
                          args=[("recompute", None)], id="recompute")
        scheduler.add_job(self.queue.put, IntervalTrigger(seconds=cfg.rescan_seconds),
                          args=[("rescan", None)], id="rescan")
        scheduler.add_job(self.queue.put, CronTrigger(second=0), args=[("recompute", None)],
                          id="tick")
        scheduler.start()
        self._scheduler = scheduler

    # -- the worker ------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._store = self.ctx.open_store()
            self.paused_until = _load_pause(self._store)
            self._tailer = self.ctx.tailer(self._store)
            self._recompute()  # publish what the store knows before the first scan
            self._full_scan()
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
                try:
                    self._process(batch)
                except TokendError as exc:
                    log.error("%s", exc)
                except Exception:
                    log.exception("error while processing changes")
                finally:
                    for event in batch.done:
                        event.set()
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
            remaining = deadline - time.monotonic()
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
            self._update_watches()
        changed = False
        for path in batch.files:
            changed |= self._ingest_path(Path(path))
        for folder in batch.dirs:
            changed |= self._ingest_dir(Path(folder))
        if batch.rescan:
            self._update_watches()
            changed |= self._full_scan()
        if batch.spool or batch.rescan:
            changed |= self._ingest_spool()
        for record in batch.observations:
            changed |= self._observe(record)
        if changed or batch.recompute or batch.reload or batch.done:
            self._recompute()

    def _match(self, path: Path) -> tuple[Source, Root] | None:
        for source, root in self._roots:
            if source.wants(root, path):
                return source, root
        return None

    def _ingest_path(self, path: Path) -> bool:
        match = self._match(path)
        if match is None or self._tailer is None:
            return False
        result = self._tailer.ingest(match[0], match[1], path)
        if result.error:
            log.warning("%s", result.error)
        if result.bytes_read:
            self.last_ingest_at = self.ctx.clock()
            log.debug("read %d bytes of %s", result.bytes_read, path)
            return True
        return False

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

    def _full_scan(self) -> bool:
        """Every file of every root; stops early when the daemon is asked to stop."""
        if self._tailer is None:
            return False
        changed = False
        errors: list[str] = []
        for source, root, path in self._tailer.discover(errors):
            if self.stop_event.is_set():
                break
            result = self._tailer.ingest(source, root, path)
            if result.bytes_read:
                changed = True
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
        from tokend.sources.claude import statusline_observations

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
        self._update_watches()
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

    # -- control: ipc.Handler and tray.TrayActions -----------------------------------

    def handle(self, cmd: str, message: dict[str, Any]) -> Any:
        if cmd == "ping":
            return {"pid": os.getpid()}
        if cmd == "status":
            with self._publish_lock:
                return self.published
        if cmd == "refresh":
            done = self._refresh()
            return {"done": done.wait(float(message.get("timeout", 30)))}
        if cmd == "pause":
            until = _pause_until(message, self.ctx.clock())
            self.pause_alerts(until)
            return {"paused_until": until.isoformat()}
        if cmd == "resume":
            self.pause_alerts(None)
            return {"paused_until": None}
        if cmd == "reload":
            self.queue.put(("reload", None))
            return {"queued": True}
        if cmd == "stop":
            threading.Timer(0.05, self.stop_event.set).start()
            return {"stopping": True}
        if cmd == "observe":
            record = {k: message.get(k) for k in ("kind", "payload", "observed_at")}
            if record["observed_at"] is None:
                record["observed_at"] = self.ctx.clock().timestamp()
            if record["kind"] != "claude_statusline" or not isinstance(record["payload"], dict):
                raise ValueError("observe needs kind 'claude_statusline' and a payload object")
            self.queue.put(("observe", record))
            return {"queued": True}
        raise ValueError(f"unknown command {cmd!r}")

    def refresh(self) -> None:
        """Rescan everything now and republish (the tray's "Refresh now")."""
        self._refresh()

    def _refresh(self) -> threading.Event:
        """Queue a rescan and a republish; the event is set when both are done."""
        done = threading.Event()
        self.queue.put(("rescan", None))
        self.queue.put(("done", done))
        return done

    def pause_alerts(self, until: datetime | None) -> None:
        """Hold alerts back until ``until``; ``None`` resumes them."""
        self.paused_until = until
        self.queue.put(("pause", None))  # persisted by the worker, which owns the store
        self.queue.put(("recompute", None))

    @property
    def report_path(self) -> Path:
        """Where "Open report" writes the HTML page (kept: it can be saved or mailed)."""
        return self.ctx.paths.state_dir / REPORT_NAME

    def open_report(self) -> None:
        """Write the HTML report and open it in the browser ("Open report", a click on
        a notification). Returns at once: the work runs on a thread of its own, with
        its own read-only store connection (the worker may be busy with a scan).
        Never raises; a click while a report is being written is ignored."""
        try:
            with self._report_lock:
                if self._report_busy:
                    return
                self._report_busy = True
            threading.Thread(target=self._write_report, name="tokend-report",
                             daemon=True).start()
        except Exception:
            self._report_busy = False
            log.exception("cannot open the report")

    def _write_report(self) -> None:
        try:
            from tokend.report_html import write_report

            with self.ctx.open_store(readonly=True) as store:
                path = write_report(store, self.ctx.settings, self.ctx.clock(),
                                    self.report_path)
            log.info("report written to %s", path)
            self._call_opener(path)
        except Exception as exc:
            log.warning("cannot write the report: %s", exc)
        finally:
            with self._report_lock:
                self._report_busy = False

    def open_config(self) -> None:
        path = self.ctx.paths.config_file
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("# tokend settings: see 'tokend config init --help'\n")
        except OSError as exc:
            log.warning("cannot create %s: %s", path, exc)
            return
        self._open(path)

    def _open(self, path: Path) -> None:
        """Open ``path`` with the opener on a thread of its own; never raises."""
        threading.Thread(target=self._call_opener, args=(path,), name="tokend-open",
                         daemon=True).start()

    def _call_opener(self, path: Path) -> None:
        try:
            self._opener(path)
        except Exception as exc:
            log.warning("cannot open %s: %s", path, exc)

    def _autostart(self) -> Backend | None:
        """The login-item backend, detected once (detection may run ``systemctl``; the
        tray asks on every menu refresh); ``None`` when none applies here."""
        with self._autostart_lock:
            if not self._autostart_built:
                self._autostart_built = True
                self._autostart_backend = self._detect_autostart()
            return self._autostart_backend

    def _detect_autostart(self) -> Backend | None:
        if self._platform not in ("win32", "darwin") and not self._platform.startswith(
            _XDG_PLATFORMS
        ):
            log.info("no login-item backend for platform %s", self._platform)
            return None
        try:
            from tokend.autostart import current_backend, run_command

            return current_backend(
                self.ctx.env, self.ctx.home, platform=self._platform,
                runner=self._autostart_runner or run_command,
            )
        except Exception as exc:
            log.warning("no login item: %s", exc)
            return None

    def autostart_enabled(self) -> bool | None:
        """Whether tokend starts at login; ``None`` hides the tray's menu item."""
        backend = self._autostart()
        if backend is None:
            return None
        try:
            return bool(backend.is_installed())
        except Exception:
            log.warning("cannot read the login item", exc_info=True)
            return None

    def set_autostart(self, enabled: bool) -> None:
        """The tray's "Start at login": register or remove the login item (never starts
        or stops a daemon), then redraw the menu's check mark."""
        backend = self._autostart()
        if backend is None:
            return
        try:
            from tokend.autostart import set_enabled

            log.info("%s", set_enabled(backend, enabled))
        except Exception as exc:
            log.warning("cannot change the login item: %s", exc)
        tray = self._tray
        if tray is not None:
            with contextlib.suppress(Exception):
                tray.tick()

    def quit(self) -> None:
        self.stop_event.set()

    def _start_ipc(self) -> None:
        from tokend.ipc import ControlServer

        self._server = ControlServer(self.ctx.paths.socket, self)
        try:
            self._server.start()
        except OSError as exc:
            raise TokendError(
                f"cannot open the control socket {self.ctx.paths.socket}: {exc}",
                hint="a unix socket path must be shorter than about 100 characters; "
                "use a shorter TOKEND_HOME or XDG_RUNTIME_DIR",
            ) from exc


def open_with_desktop(path: Path) -> None:
    """Open ``path`` in the desktop's default application, without waiting for it."""
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    # posix_spawn with an empty signal mask: a child forked from a thread would
    # inherit the daemon's blocked SIGTERM/SIGINT and could not be stopped.
    pid = os.posix_spawnp(opener, [opener, str(path)], dict(os.environ), setsid=True,
                          setsigmask=())
    threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()  # reap


def _pause_until(message: dict[str, Any], now: datetime) -> datetime:
    if message.get("until"):
        until = datetime.fromisoformat(str(message["until"]))
        return until if until.tzinfo else until.replace(tzinfo=timezone.utc)
    if message.get("minutes") is not None:
        return now + timedelta(minutes=float(message["minutes"]))
    return FOREVER


def _load_pause(store: Store) -> datetime | None:
    value = store.get_kv(PAUSE_KEY)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _version() -> str:
    from tokend import __version__

    return __version__


# -- the snapshot --------------------------------------------------------------------

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

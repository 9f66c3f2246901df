"""The daemon: watches the agent logs, keeps the store current, publishes the Snapshot.

Threads and who owns what:

- **worker** (one thread, :mod:`tokend.daemon_worker`) owns the store connection:
  SQLite connections are bound to their thread, and a single writer needs no
  locking. Everything that touches the store (ingest, rescans, spool files,
  recompute, alerts) is a message on its queue; messages arriving within
  ``debounce_ms`` of each other are handled as one batch, so a burst of appends
  costs one recompute.
- **watchdog observer** and **apscheduler** (:mod:`tokend.daemon_watch`): file events
  for the roots (and for roots that do not exist yet, from their nearest existing
  parent), a recompute every ``recompute_seconds`` even when idle, a safety rescan
  and a tick at every full minute; they only put messages on the worker's queue.
- **control socket** (:mod:`tokend.ipc`, commands in :mod:`tokend.daemon_control`)
  and, when enabled, the **tray** on the main thread (macOS requires it); otherwise
  the main thread waits for the stop event.

Publishing (:mod:`tokend.daemon_publish`) writes ``status.json`` and
``statusline.txt`` so that readers never see half a file. One daemon per
``TOKEND_HOME`` (:mod:`tokend.daemon_lock`): an ``flock`` the kernel drops when the
process dies. The daemon's fields are declared once in :mod:`tokend.daemon_state`.

This module is the life cycle (start, the main thread's loop, signals, a clean stop)
and the public face: the names other modules import from ``tokend.daemon`` are
re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from tokend.daemon_control import DaemonControls, open_with_desktop
from tokend.daemon_lock import InstanceLock, lock_holder
from tokend.daemon_publish import build_snapshot, daemon_status_line, publish
from tokend.daemon_watch import start_scheduler
from tokend.daemon_worker import DaemonWorker
from tokend.errors import TokendError

if TYPE_CHECKING:
    from tokend.paths import Paths

__all__ = [
    "Daemon",
    "InstanceLock",
    "build_snapshot",
    "daemon_status_line",
    "lock_holder",
    "open_with_desktop",
    "publish",
    "setup_logging",
]

log = logging.getLogger("tokend.daemon")

TRAY_STOP_SECONDS = 1.2
"""How long a stop waits for the tray's toolkit loop before going on without it."""


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


class Daemon(DaemonControls, DaemonWorker):
    """The running daemon; also the tray's :class:`~tokend.tray.TrayActions`.

    :param ctx: paths, settings, roots.
    :param tray: show the tray icon when a tray host is available.
    :param notify: send desktop notifications for due alerts.
    :param opener: opens a file in the desktop's default application (the report in
        the browser, the config in an editor, a checkpoint); called on a thread of
        its own. Default: ``xdg-open`` / ``open`` / ``os.startfile``.
    :param platform: ``sys.platform`` (which login-item backend applies).
    :param autostart_runner: runs ``systemctl`` / ``launchctl`` for the login item.

    The constructor and the fields are :class:`~tokend.daemon_state.DaemonState`'s.
    """

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
            self._watcher.start()
            self._worker = threading.Thread(target=self._work, name="tokend-worker", daemon=True)
            self._worker.start()
            self._scheduler = start_scheduler(self.queue.put, self.ctx.settings.daemon)
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
        self._watcher.stop()
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

    # -- signals ---------------------------------------------------------------------

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

    def _start_ipc(self) -> None:
        from tokend.ipc_server import ControlServer

        self._server = ControlServer(self.ctx.paths.socket, self)
        try:
            self._server.start()
        except OSError as exc:
            raise TokendError(
                f"cannot open the control socket {self.ctx.paths.socket}: {exc}",
                hint="a unix socket path must be shorter than about 100 characters; "
                "use a shorter TOKEND_HOME or XDG_RUNTIME_DIR",
            ) from exc


def _version() -> str:
    from tokend import __version__

    return __version__

"""The daemon's controls: the control socket's commands and the tray's menu actions.

:class:`DaemonControls` implements :class:`tokend.ipc_server.Handler` (``tokend pause``,
``refresh``, ``observe``, ... over the socket) and :class:`tokend.tray.TrayActions`
(the menu). These run on the socket's and the toolkit's threads, never on the
worker's: whatever needs the store is put on the worker's queue, and slow work
(writing the report, opening a file, ``systemctl``) runs on a thread of its own, so
a click never blocks the menu and a command never blocks the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tokend.daemon_state import DaemonState

if TYPE_CHECKING:
    from tokend.autostart import Backend
    from tokend.context import Context

__all__ = ["FOREVER", "REPORT_NAME", "DaemonControls", "open_with_desktop"]

log = logging.getLogger("tokend.daemon")  # one logger for the whole daemon, as before the split

FOREVER = datetime(9999, 1, 1, tzinfo=timezone.utc)
REPORT_NAME = "report.html"
_XDG_PLATFORMS = ("linux", "freebsd", "openbsd", "netbsd", "dragonfly", "sunos")
"""Platforms whose desktops follow XDG autostart (or run systemd)."""


class _BadArguments(Exception):
    """A command line sent by a client that its own parser would refuse."""


def _wait(message: dict[str, Any]) -> float:
    """The seconds a client lets a sync take (``wait``), within reason."""
    value = message.get("wait", 10)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("'wait' must be a number of seconds")
    return min(max(float(value), 0.0), 60.0)


class DaemonControls(DaemonState):
    """The control side of the daemon: :class:`~tokend.ipc_server.Handler` and
    :class:`~tokend.tray.TrayActions`."""

    def handle(self, cmd: str, message: dict[str, Any]) -> Any:
        if cmd == "ping":
            return {"pid": os.getpid()}
        if cmd == "status":
            with self._publish_lock:
                return self.published
        if cmd == "refresh":
            done = self._refresh()
            return {"done": done.wait(float(message.get("timeout", 30)))}
        if cmd == "sync":
            return {"current": self._sync(message)}
        if cmd == "report":
            return self.render_report(message)
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

    def _sync(self, message: dict[str, Any]) -> bool:
        """Whether the store now holds what the caller's own scan would read.

        A report asks this instead of walking every log file itself (most of its
        time on a long history); see :meth:`_caught_up`.
        """
        return self._caught_up(self._caller(message), _wait(message))

    def render_report(self, message: dict[str, Any]) -> dict[str, str] | None:
        """The text of a report for a client (:mod:`tokend.report_client`), or ``None``
        when the client should run it itself.

        Rendered with the client's environment and home (its time zone, its roots),
        on this socket thread with connections of its own. ``None`` for a command
        line that does not parse (the client's own run prints argparse's message)
        and when the store cannot be vouched for.
        """
        from tokend.cli import build_parser
        from tokend.commands import Parser

        argv = message.get("argv")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("report needs 'argv', a list of strings")

        class Quiet(Parser):
            def error(self, message: str) -> NoReturn:
                raise _BadArguments(message)

            def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
                raise _BadArguments(message or "")

        try:
            args = build_parser(argv, Quiet).parse_args(argv)
        except _BadArguments:
            return None
        render = getattr(args, "render", None)  # a command that can be served sets one
        if render is None:
            return None
        ctx = self._caller(message)
        if not args.no_scan and not self._caught_up(ctx, _wait(message)):
            return None
        with ctx.open_store(readonly=True) as store:
            if store.get_kv("prices") != ctx.price_fingerprint:
                # The sync follows the price file, so this is a table the daemon could
                # not load (a broken prices.toml): the caller's own run says why.
                return None
        return {"text": str(render(args, ctx, tty=message.get("tty") is True))}

    def _caller(self, message: dict[str, Any]) -> Context:
        """A context with the caller's environment and home, and this daemon's clock."""
        from tokend.context import Context

        env, home = message.get("env"), message.get("home")
        if not isinstance(env, dict) or not isinstance(home, str):
            raise ValueError("the caller's 'env' (an object) and 'home' are needed")
        return Context(env={str(k): str(v) for k, v in env.items()}, home=Path(home),
                       clock=self.ctx.clock)

    def _caught_up(self, caller: Context, wait: float) -> bool:
        """Whether the store holds every change under the caller's roots reported so far.

        Yes only when this daemon watches every root the caller's environment names
        (a shell may set another ``CLAUDE_CONFIG_DIR``) and its worker has processed
        the queue up to this request; otherwise the caller scans, as with no daemon.
        """
        from tokend.daemon_worker import SyncRequest

        if caller.paths.store != self.ctx.paths.store:
            return False
        wanted = {root.key for _, root in caller.roots()}
        mine = {root.key: root for _, root in self._roots}
        if not wanted <= mine.keys() or not all(
            self._watcher.watching(mine[key].path) for key in wanted
        ):
            return False
        request = SyncRequest()
        self.queue.put(("sync", request))
        return request.wait(wait)

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
            (self._opener or open_with_desktop)(path)
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

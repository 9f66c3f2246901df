"""``tokend run | start | stop | restart``: the daemon in the foreground or the background.

``run`` is what a service manager (systemd, launchd, XDG autostart) starts. ``start``
launches ``python -m tokend run`` in a new session (detached from the terminal, stdio
to the log file), then waits until the control socket answers, so a script that
runs ``tokend start && tokend statusline`` sees a live daemon. ``stop`` asks over the
socket, falls back to SIGTERM and, after a grace period, SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

from tokend.context import Context
from tokend.errors import DaemonNotRunning, TokendError

__all__ = ["register", "restart", "run", "start", "stop"]

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, func, text in (
        ("run", run, "run the daemon in the foreground (what the login item starts)"),
        ("start", start, "start the daemon in the background"),
        ("restart", restart, "stop the daemon if it runs, then start it"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--no-tray", action="store_true", help="no tray icon (headless)")
        p.add_argument("--no-notify", action="store_true", help="no desktop notifications")
        if name == "run":
            p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
        p.set_defaults(func=func)
    p = sub.add_parser("stop", help="stop the background daemon")
    p.set_defaults(func=stop)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from tokend.daemon import Daemon, setup_logging

    detached = bool(getattr(args, "detached", False))
    ctx.settings  # noqa: B018 - a bad config fails here, before the lock is taken
    setup_logging(ctx.paths, stderr=not detached)
    return Daemon(ctx, tray=not args.no_tray, notify=not args.no_notify).run()


def start(args: argparse.Namespace, ctx: Context) -> int:
    from tokend.daemon import lock_holder

    pid = lock_holder(ctx.paths.lock_file)
    if pid is not None:
        print(f"tokend already runs (pid {pid})")
        return 0
    ctx.settings  # noqa: B018 - report a bad config here, not in a log nobody reads
    pid = _spawn(args, ctx)
    print(f"tokend started (pid {pid}); log: {ctx.paths.log_file}")
    return 0


def _spawn(args: argparse.Namespace, ctx: Context) -> int:
    from tokend import ipc

    argv = [sys.executable, "-m", "tokend", "run", "--detached"]
    if args.no_tray:
        argv.append("--no-tray")
    if args.no_notify:
        argv.append("--no-notify")
    ctx.paths.log_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.paths.log_file, "ab") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=dict(ctx.env), cwd="/",
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise TokendError(
                f"the daemon exited at start (code {code}):\n{_tail(ctx)}",
                hint=f"the whole log is {ctx.paths.log_file}",
            )
        try:
            ipc.request(ctx.paths.socket, "ping", timeout=1.0)
            return child.pid
        except TokendError:
            time.sleep(0.05)
    raise TokendError(
        f"the daemon (pid {child.pid}) did not answer within {START_TIMEOUT:g} s",
        hint=f"see {ctx.paths.log_file}; 'tokend stop' ends it",
    )


def _tail(ctx: Context, lines: int = 15) -> str:
    try:
        text = ctx.paths.log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def stop(args: argparse.Namespace, ctx: Context) -> int:
    pid = _stop(ctx)
    print("tokend is not running" if pid is None else f"tokend stopped (pid {pid})")
    return 0


def _stop(ctx: Context) -> int | None:
    """Stop the daemon of this TOKEND_HOME; returns its pid, ``None`` if none ran."""
    from tokend import ipc
    from tokend.daemon import lock_holder

    pid = lock_holder(ctx.paths.lock_file)
    if pid is None:
        return None
    try:
        ipc.request(ctx.paths.socket, "stop", timeout=2.0)
    except (DaemonNotRunning, TokendError):
        if pid > 0:
            _signal(pid, signal.SIGTERM)
    if _wait_unlocked(ctx, STOP_TIMEOUT):
        return pid
    if pid > 0:
        _signal(pid, signal.SIGKILL)
    if not _wait_unlocked(ctx, 2.0):
        raise TokendError(f"the daemon (pid {pid}) did not stop",
                          hint=f"end it by hand: kill -9 {pid}")
    return pid


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_unlocked(ctx: Context, timeout: float) -> bool:
    from tokend.daemon import lock_holder

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_holder(ctx.paths.lock_file) is None:
            return True
        time.sleep(0.05)
    return lock_holder(ctx.paths.lock_file) is None


def restart(args: argparse.Namespace, ctx: Context) -> int:
    old = _stop(ctx)
    ctx.settings  # noqa: B018
    pid = _spawn(args, ctx)
    was = f" (was pid {old})" if old is not None else ""
    print(f"tokend restarted: pid {pid}{was}")
    return 0

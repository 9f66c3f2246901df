"""``tokend autostart enable | disable | status``: the login item.

The work is in :mod:`tokend.autostart`; this module only picks the backend, asks
whether a daemon runs already (a second one would exit on the lock and be
restarted over and over by the service manager) and says what happened.
"""

from __future__ import annotations

import argparse
import json

from tokend.autostart import (
    BACKENDS,
    InstallResult,
    UninstallResult,
    current_backend,
)
from tokend.context import Context

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("autostart", help="start tokend at login (enable, disable, status)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    enable = actions.add_parser("enable", help="start tokend at every login")
    enable.add_argument("--backend", choices=BACKENDS,
                        help="systemd user unit, XDG autostart file, LaunchAgent or Run key "
                        "(default: the one for this machine)")
    enable.add_argument("--no-start", action="store_true",
                        help="only register; do not start the daemon now")
    enable.set_defaults(func=run_enable)
    disable = actions.add_parser("disable", help="stop starting tokend at login")
    disable.add_argument("--backend", choices=BACKENDS)
    disable.add_argument("--stop", action="store_true",
                         help="also stop a daemon the service manager runs")
    disable.set_defaults(func=run_disable)
    status = actions.add_parser("status", help="show the login item")
    status.add_argument("--backend", choices=BACKENDS)
    status.add_argument("--json", action="store_true", help="print it as JSON")
    status.set_defaults(func=run_status)


def _daemon_running(ctx: Context) -> bool:
    from tokend.doctor import daemon_pid

    return daemon_pid(ctx.paths) is not None


def run_enable(args: argparse.Namespace, ctx: Context) -> int:
    backend = current_backend(ctx.env, ctx.home, name=args.backend)
    running = _daemon_running(ctx)
    start = not args.no_start and not running and backend.name in ("systemd", "launchd")
    result = backend.install(start=start)
    state = backend.state()
    if result is InstallResult.KEPT:
        print(f"{backend.location}: {state.detail}")
        print("tokend did not change it; remove it yourself to let tokend write its own")
        return 1
    verb = {InstallResult.CREATED: "enabled", InstallResult.UPDATED: "updated",
            InstallResult.UNCHANGED: "already enabled"}[result]
    print(f"autostart {verb}: {backend.name} ({backend.location})")
    if start:
        print("started it now through the service manager")
    elif not running:
        print("it starts at your next login; 'tokend start' starts it now")
    return 0


def run_disable(args: argparse.Namespace, ctx: Context) -> int:
    backend = current_backend(ctx.env, ctx.home, name=args.backend)
    result = backend.uninstall(stop=args.stop)
    if result is UninstallResult.KEPT:
        print(f"{backend.location}: {backend.state().detail}")
        print("left in place: delete it yourself if you want it gone")
        return 1
    if result is UninstallResult.ABSENT:
        print(f"autostart was not enabled ({backend.name}: {backend.location})")
    else:
        print(f"autostart disabled: removed {backend.location}")
    if _daemon_running(ctx) and not args.stop:
        print("the running daemon keeps running; 'tokend stop' stops it")
    return 0


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    state = current_backend(ctx.env, ctx.home, name=args.backend).state()
    if args.json:
        print(json.dumps({
            "backend": state.backend, "location": state.location,
            "installed": state.installed, "owner": state.owner, "current": state.current,
            "enabled": state.enabled, "detail": state.detail,
        }, indent=2))
    else:
        print(f"{'on' if state.installed else 'off'}: {state.backend} ({state.location})")
        print(f"  {state.detail}")
        if state.enabled is False and state.installed:
            print("  the service manager has it disabled: run 'tokend autostart enable'")
    return 0

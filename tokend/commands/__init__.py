"""One module per group of subcommands; each exposes ``register(subparsers)``.

A command function takes ``(args, ctx)`` and returns the exit code. Only the module
of the command being run is imported (a report should not pay for the daemon's
imports); ``tokend --help`` imports them all, in the order listed here.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

__all__ = ["COMMANDS", "Register"]

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

_MODULES = (
    "status", "reports", "blocks", "scan", "daemon", "integrate", "checkpoint", "hook",
    "autostart", "doctor", "config",
)
_MODULE_OF = {
    "status": "status",
    "daily": "reports", "weekly": "reports", "monthly": "reports", "sessions": "reports",
    "blocks": "blocks",
    "scan": "scan",
    "run": "daemon", "start": "daemon", "stop": "daemon", "restart": "daemon",
    "integrate": "integrate",
    "checkpoint": "checkpoint",
    "hook": "hook",
    "autostart": "autostart",
    "doctor": "doctor",
    "config": "config",
}


def COMMANDS(argv: Sequence[str] = ()) -> list[Register]:
    """The ``register`` functions needed to parse ``argv``: one module when the first
    word names a known command, every module otherwise (help, typos)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in _MODULE_OF:
        names: Sequence[str] = (_MODULE_OF[first],)
    elif first is None and not {"-h", "--help"} & set(argv):
        names = ()  # --version, or no command at all
    else:
        names = _MODULES
    return [importlib.import_module(f"tokend.commands.{n}").register for n in names]

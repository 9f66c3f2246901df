"""One module per group of subcommands; each exposes ``register(subparsers)``.

A command function takes ``(args, ctx)`` and returns the exit code. Only the module
of the command being run is imported (a report should not pay for the daemon's
imports); ``tokend --help`` imports them all, in the order listed here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["COMMANDS", "Parser", "Register"]

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


_ONE_COMMAND = frozenset({"reports"})
"""Modules whose ``register(sub, only=name)`` can add just the command named."""


def COMMANDS(argv: Sequence[str] = ()) -> list[Register]:
    """The ``register`` functions needed to parse ``argv``: one module when the first
    word names a known command (one command of it, where the module can), every
    module otherwise (help, typos)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in _MODULE_OF and _MODULE_OF[first] in _ONE_COMMAND:
        register = importlib.import_module(f"tokend.commands.{_MODULE_OF[first]}").register
        return [lambda sub: register(sub, only=first)]
    if first in _MODULE_OF:
        names: Sequence[str] = (_MODULE_OF[first],)
    elif first is None and not {"-h", "--help"} & set(argv):
        names = ()  # --version, or no command at all
    else:
        names = _MODULES
    return [importlib.import_module(f"tokend.commands.{n}").register for n in names]


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, computed the same way."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, minus its ``import shutil`` (with bz2 and lzma, ~2 ms).

    argparse builds a formatter for every ``add_argument`` (to check the metavar), so
    every command paid that import, a report included, just to learn the width.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """The CLI's parser: :class:`_Formatter` unless told otherwise, in subparsers too
    (``add_subparsers`` builds them with the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

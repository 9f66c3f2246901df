"""One module per group of subcommands; each exposes ``register(subparsers)``.

A command function takes ``(args, ctx)`` and returns the exit code. Registered
in the order ``tokend --help`` lists them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

__all__ = ["COMMANDS", "Register"]

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

_MODULES = ("scan",)


def COMMANDS() -> list[Register]:
    """The ``register`` function of every command module, imported on demand."""
    out: list[Register] = []
    for name in _MODULES:
        module = importlib.import_module(f"tokend.commands.{name}")
        out.append(module.register)
    return out

"""The ``tokend`` command: argument parsing and exit codes only.

Each subcommand lives in a module of :mod:`tokend.commands` that adds its parser
and names the function to run; this module only builds the tree and maps
``TokendError`` to exit codes (1 user error, 2 usage/config, 3 daemon not running).
``tokend statusline`` and ``tokend hook`` are dispatched before anything else is
imported: the first must answer in tens of milliseconds with the standard library
only, the second delays every prompt Claude Code sends.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["statusline"]:
        from tokend.statusline import main as statusline_main

        return statusline_main(args[1:])
    if args == ["hook"]:
        # Claude Code waits for this on every prompt: skip building the whole CLI.
        from tokend.commands.hook import main as hook_main

        return hook_main()
    return _main(args)


def _main(argv: list[str]) -> int:
    import argparse
    from typing import cast

    from tokend import __version__
    from tokend.commands import COMMANDS, Parser
    from tokend.context import Context
    from tokend.errors import TokendError

    parser = Parser(
        prog="tokend",
        description="Know where your AI coding tokens go: usage windows, reports and alerts "
        "for Claude Code, Codex CLI and Gemini CLI.",
    )
    parser.add_argument("--version", action="version", version=f"tokend {__version__}")
    # Subparsers are Parsers too; the commands only need ArgumentParser's interface.
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND"),
    )
    for register in COMMANDS(argv):
        register(sub)
    # Dispatched in main() before argparse; listed here so --help shows it.
    sub.add_parser("statusline", help="print one status line (for a shell prompt or "
                   "Claude Code's statusLine); see tokend statusline --help")
    ns = parser.parse_args(argv)
    func = getattr(ns, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(ns, Context()))
    except TokendError as exc:
        print(f"tokend: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

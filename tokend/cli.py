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

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms: a report served by the daemon never needs it
    import argparse

    from tokend.commands import Parser

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
    if args[:1] and args[0] in _SERVED:
        # A running daemon renders reports itself, with everything imported and the
        # store current; this process then only passes the text on.
        from tokend.report_client import print_served

        if print_served(args):
            return 0
    return _main(args)


_SERVED = frozenset({"daily", "weekly", "monthly", "sessions", "blocks", "status"})
"""Commands a running daemon can answer for this process (:mod:`tokend.report_client`)."""


def build_parser(argv: Sequence[str], parser_class: type[Parser] | None = None) -> Parser:
    """The parser for ``argv``: the top level plus the subcommands it may name."""
    from typing import cast

    from tokend import __version__
    from tokend.commands import COMMANDS
    from tokend.commands import Parser as DefaultParser

    parser = (parser_class or DefaultParser)(
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
    return parser


def _main(argv: list[str]) -> int:
    from tokend.context import Context
    from tokend.errors import TokendError

    parser = build_parser(argv)
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

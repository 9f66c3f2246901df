"""``tokend integrate claude [--hooks] [--remove]`` and ``tokend integrate shell``.

Without ``--hooks`` it sets Claude Code's statusLine; with it, the SessionStart /
UserPromptSubmit hook that tells a new session about an earlier checkpoint. The two
are installed and removed independently (each keeps its own record of the original
file), so any order of install and remove leaves the user's settings as they were.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tokend.context import Context

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("integrate", help="show tokend in Claude Code's statusline or a prompt")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    claude = targets.add_parser(
        "claude",
        help="set Claude Code's statusLine to 'tokend statusline' (records official limits)",
    )
    claude.add_argument("--hooks", action="store_true",
                        help="the SessionStart/UserPromptSubmit hook ('tokend hook') that "
                        "points a new session at the last checkpoint, instead of the statusLine")
    claude.add_argument("--remove", action="store_true",
                        help="put back exactly what was there before")
    claude.add_argument("--command", help="the command to install (default: this tokend's "
                        "'statusline', or 'hook' with --hooks)")
    claude.set_defaults(func=run_claude)
    shell = targets.add_parser("shell", help="print a prompt snippet for bash, zsh or fish")
    shell.add_argument("--shell", choices=("bash", "zsh", "fish"),
                       help="default: the one $SHELL names")
    shell.set_defaults(func=run_shell)


def run_claude(args: argparse.Namespace, ctx: Context) -> int:
    from tokend.integrate import (
        claude_settings_path,
        install_claude,
        remove_claude,
        statusline_command,
    )

    settings = claude_settings_path(ctx.env, ctx.home)
    if args.hooks:
        from tokend.hooks_integration import claude_hooks

        hooks = claude_hooks(settings, ctx.paths.state_dir, remove=args.remove,
                             command=args.command, now=ctx.clock())
        print(hooks.message)
        if hooks.backup is not None:
            print(f"backup of the previous file: {hooks.backup}")
        return 0
    if args.remove:
        result = remove_claude(settings, ctx.paths.state_dir)
    else:
        command = args.command or statusline_command()
        result = install_claude(settings, ctx.paths.state_dir, command, ctx.clock())
    print(result.message)
    if result.backup is not None:
        print(f"backup of the previous file: {result.backup}")
    return 0


def run_shell(args: argparse.Namespace, ctx: Context) -> int:
    from tokend.errors import TokendError
    from tokend.integrate import SHELLS, shell_snippet

    shell = args.shell or Path(ctx.env.get("SHELL", "")).name
    if shell not in SHELLS:
        raise TokendError(
            f"cannot tell the shell from SHELL={ctx.env.get('SHELL', '')!r}",
            hint="name it: tokend integrate shell --shell bash|zsh|fish",
        )
    print(shell_snippet(shell), end="")
    return 0

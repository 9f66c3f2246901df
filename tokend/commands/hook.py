"""``tokend hook``: Claude Code's SessionStart / UserPromptSubmit hook.

Claude Code runs the command with the hook's JSON on stdin. For SessionStart and
UserPromptSubmit, when the session's folder has a checkpoint nobody was told about
yet, the answer is the hook contract's JSON
``{"hookSpecificOutput": {"hookEventName": ..., "additionalContext": ...}}`` so the
new session learns where the earlier one stopped — once per checkpoint, never again
on later prompts (:func:`tokend.checkpoint.announce`). Every other event gets no
output at once.

A hook runs inside the user's session, so this command must never get in the way:
whatever goes wrong (no store, a locked store, bad JSON), it prints nothing, exits
0 and leaves one line in tokend's log.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from tokend.context import Context

__all__ = ["ANNOUNCE_EVENTS", "main", "register", "run"]

ANNOUNCE_EVENTS = ("SessionStart", "UserPromptSubmit")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "hook",
        help="Claude Code hook: tell a new session about an unread checkpoint (reads stdin)",
    )
    p.set_defaults(func=run)


def main() -> int:
    """The fast path: ``tokend hook`` without building the whole command tree.

    A UserPromptSubmit hook delays every prompt of every session, so ``cli.main``
    may dispatch here before importing the other commands (as it does for the
    statusline); the behaviour is the same as through argparse.
    """
    return run(argparse.Namespace(), Context())


def run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        answer = _answer(sys.stdin.read() if not sys.stdin.isatty() else "", ctx)
        if answer is not None:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    except Exception as exc:  # the user's session must never see a failing hook
        _log_error(ctx, exc)
    return 0


def _answer(raw: str, ctx: Context) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        return None
    event = payload.get("hook_event_name")
    cwd = payload.get("cwd")
    if event not in ANNOUNCE_EVENTS or not isinstance(cwd, str) or not cwd:
        return None
    store_path = ctx.paths.store
    if not store_path.exists():
        return None  # tokend never ran here: nothing to announce, nothing to create
    from tokend.checkpoint import announce
    from tokend.store import Store

    session = payload.get("session_id")
    with Store(store_path) as store:
        text = announce(store, cwd, ctx.clock(), session if isinstance(session, str) else "")
    if text is None:
        return None
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def _log_error(ctx: Context, exc: BaseException) -> None:
    """One line in tokend's log; a log that cannot be written is not an error either."""
    try:
        path = ctx.paths.log_file
        path.parent.mkdir(parents=True, exist_ok=True)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{when} ERROR tokend.hook: {type(exc).__name__}: {exc}\n")
    except Exception:
        pass

"""``tokend checkpoint write | list | show``: session checkpoints on demand.

The daemon writes checkpoints by itself when a window nears its limit; these
commands write one now (``write``), list the known ones (``list``) and print the
latest of a folder (``show``), so a user can hand it to a fresh session by hand.
They work whether the daemon runs or not: ``write`` reads new log lines first.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tokend.context import Context
from tokend.errors import TokendError

__all__ = ["register", "run_list", "run_show", "run_write"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("checkpoint", help="save or find where a session stands")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    write = actions.add_parser(
        "write", help="write a session's checkpoint now (default: latest session here)"
    )
    which = write.add_mutually_exclusive_group()
    which.add_argument("--session", metavar="ID", help="a session id (a unique prefix is enough)")
    which.add_argument("--latest", action="store_true",
                       help="the most recent Claude Code or Codex session, wherever it ran")
    write.set_defaults(func=run_write)
    listing = actions.add_parser("list", help="list the checkpoints tokend wrote")
    listing.add_argument("--cwd", metavar="DIR", help="only those of this folder")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    show = actions.add_parser("show", help="print the latest checkpoint of a folder")
    show.add_argument("--cwd", metavar="DIR", help="default: the current folder")
    show.add_argument("--session", metavar="ID", help="this session's checkpoint instead")
    show.set_defaults(func=run_show)


def run_write(args: argparse.Namespace, ctx: Context) -> int:
    from tokend.checkpoint import find_session, write_session_checkpoint

    now = ctx.clock()
    with ctx.open_store() as store:
        ctx.catch_up(store)
        if args.session:
            session = find_session(store, session_id=args.session)
            missing = f"no Claude Code or Codex session matches {args.session!r}"
        elif args.latest:
            session = find_session(store)
            missing = "no Claude Code or Codex session was found"
        else:
            session = find_session(store, cwd=str(Path.cwd()))
            missing = f"no Claude Code or Codex session ran in {Path.cwd()}"
        if session is None:
            raise TokendError(missing, hint="name one with --session ID, or use --latest")
        snapshot = None
        try:
            from tokend.state import build_snapshot

            snapshot = build_snapshot(store, ctx.roots(), ctx.settings, now)
        except Exception as exc:  # the numbers are a bonus; the checkpoint still matters
            log.warning("checkpoint without window figures: %s", exc)
        result = write_session_checkpoint(
            store, session, ctx.settings.checkpoint, "it was asked for (tokend checkpoint write)",
            now, snapshot,
        )
    if not result.written:
        raise TokendError(
            f"checkpoint of session {session.session_id} not written: {result.reason}",
            hint="see 'checkpoint.path' in the config to write it elsewhere",
        )
    print(result.path)
    return 0


def _rows(ctx: Context, cwd: str | None) -> list[dict[str, str | None]]:
    from tokend.checkpoint import normalize_cwd
    from tokend.models import utc_from_ms

    if not ctx.paths.store.exists():
        return []
    with ctx.open_store(readonly=True) as store:
        if cwd is None:
            rows = store.checkpoints()
        else:
            # the agents log the real path; the user may type one through a symlink
            given = Path(cwd)
            forms = {normalize_cwd(str(given.absolute())), normalize_cwd(str(given.resolve()))}
            rows = sorted((r for f in forms for r in store.checkpoints(f)),
                          key=lambda r: -r.written_ms)
    return [
        {
            "session": r.session_id, "agent": r.agent, "cwd": r.cwd, "path": r.path,
            "reason": r.reason, "written": utc_from_ms(r.written_ms).isoformat(),
            "announced": utc_from_ms(r.announced_ms).isoformat() if r.announced_ms else None,
        }
        for r in rows
    ]


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = _rows(ctx, args.cwd)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no checkpoints yet" + (f" for {args.cwd}" if args.cwd else ""))
        return 0
    for r in rows:
        written = str(r["written"])[:16].replace("T", " ")
        missing = "" if Path(str(r["path"])).is_file() else "  (file gone)"
        print(f"{written} UTC  {r['agent']:<6}  {str(r['session'])[:8]}  {r['path']}{missing}")
        print(f"    {r['reason']}")
    return 0


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    rows = _rows(ctx, None if args.session else (args.cwd or str(Path.cwd())))
    if args.session:
        rows = [r for r in rows if str(r["session"]).startswith(args.session)]
    for r in rows:
        path = Path(str(r["path"]))
        try:
            print(path.read_text(encoding="utf-8"), end="")
        except OSError:
            continue
        return 0
    where = f"session {args.session}" if args.session else (args.cwd or str(Path.cwd()))
    raise TokendError(
        f"no checkpoint found for {where}",
        hint="'tokend checkpoint list' shows them all; 'tokend checkpoint write' makes one",
    )

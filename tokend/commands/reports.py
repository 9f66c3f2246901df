"""``tokend daily | weekly | monthly | sessions``: usage reports, like ccusage's.

Each report first brings the store up to date (reprice if the price table changed,
read new log bytes), so it is right whether the daemon runs or not, then reads the
pre-aggregated rollup (see :mod:`tokend.reports`). Flags follow ccusage's names and
short forms where it has them (``-s/--since``, ``-u/--until``, ``-z/--timezone``,
``-w/--start-of-week``, ``-j/--json``, ``-b/--breakdown``, ``-i/--instances``).
"""

from __future__ import annotations

import argparse
import json
import sys

from tokend.context import Context
from tokend.models import AGENTS
from tokend.reports import (
    WEEKDAYS,
    Kind,
    ReportOptions,
    Rollup,
    build_report,
    parse_day,
    render_csv,
    render_json,
    render_table,
    resolve_zone,
)

__all__ = ["register", "render", "run"]

_HELP: dict[Kind, str] = {
    "daily": "token usage and cost per day",
    "weekly": "token usage and cost per week",
    "monthly": "token usage and cost per month",
    "sessions": "token usage and cost per agent session",
}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add the report commands; just ``only`` when the command line names it (building
    the other three parsers took about a millisecond of every report)."""
    kinds: tuple[Kind, ...] = ("daily", "weekly", "monthly", "sessions")
    for kind in kinds if only is None else tuple(k for k in kinds if k == only):
        p = sub.add_parser(kind, help=_HELP[kind], description=_HELP[kind])
        out = p.add_mutually_exclusive_group()
        out.add_argument("-j", "--json", action="store_true", help="print ccusage-style JSON")
        out.add_argument("--csv", action="store_true", help="print CSV")
        p.add_argument("-s", "--since", metavar="DATE",
                       help="first day to include (YYYY-MM-DD or YYYYMMDD); default: all")
        p.add_argument("-u", "--until", metavar="DATE",
                       help="last day to include (YYYY-MM-DD or YYYYMMDD); default: all")
        p.add_argument("--agent", choices=AGENTS, help="only this agent (default: all)")
        p.add_argument("--project", metavar="TEXT",
                       help="only projects whose folder contains TEXT")
        p.add_argument("-b", "--breakdown", action="store_true",
                       help="show each model on its own line")
        if kind != "sessions":
            p.add_argument("-i", "--instances", action="store_true",
                           help="one group of rows per project")
        p.add_argument("-z", "--tz", "--timezone", dest="tz", metavar="ZONE",
                       help="IANA time zone the days are cut in (default: local)")
        if kind == "weekly":
            p.add_argument("-w", "--start-of-week", choices=WEEKDAYS, default="sunday",
                           help="first day of a week (default: sunday, as ccusage)")
        p.add_argument("--no-scan", action="store_true",
                       help="report from the store as it is, without reading new log lines")
        p.set_defaults(func=run, render=render, report_kind=kind)


def run(args: argparse.Namespace, ctx: Context) -> int:
    tty = sys.stdout.isatty()
    options = _options(args, ctx)  # a bad --since fails before any scan
    with ctx.open_store() as store:
        if not args.no_scan:
            ctx.catch_up(store)
    sys.stdout.write(render(args, ctx, tty=tty, options=options))
    return 0


def _options(args: argparse.Namespace, ctx: Context) -> ReportOptions:
    kind: Kind = args.report_kind
    return ReportOptions(
        kind=kind,
        since=parse_day(args.since, "--since") if args.since else None,
        until=parse_day(args.until, "--until") if args.until else None,
        agent=args.agent,
        project=args.project,
        zone=resolve_zone(args.tz, dict(ctx.env)),
        start_of_week=WEEKDAYS.index(getattr(args, "start_of_week", "sunday")),
        breakdown=args.breakdown,
        instances=getattr(args, "instances", False),
    )


def render(
    args: argparse.Namespace, ctx: Context, *, tty: bool, options: ReportOptions | None = None
) -> str:
    """The report's text from the store as it is (the caller brings it up to date).

    The daemon calls this too, for a report asked over its socket: ``tty`` is whether
    the asking terminal is one (indented JSON for a person, compact for a pipe).
    """
    if options is None:
        options = _options(args, ctx)
    rollup_path = ctx.paths.data_dir / "rollup.sqlite3"
    with Rollup(rollup_path, ctx.paths.store) as rollup:
        rollup.sync()
        report = build_report(rollup, options)
    if args.json:
        data = render_json(report)
        if tty:
            return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        # The C encoder: indenting a year of rows in pure Python costs ~0.1 s.
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    if args.csv:
        return render_csv(report)
    return render_table(report) + "\n"

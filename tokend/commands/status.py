"""``tokend status``: every agent account's windows in one table.

Reads new log lines first (so it works without the daemon), builds the Snapshot
and prints, per window: used %, where that percent comes from and how old it is,
when the window resets, the burn rate, the projection at reset and the pace.
``--json`` prints the whole Snapshot (``Snapshot.to_dict()``, with its version);
its ``daemon`` is the running daemon's (pid, start, last ingest, tray) or ``null``.
The table starts with a line saying whether the daemon runs.
With nothing measured it says so and lists the folders it looked in: it never
prints zeros as if they had been measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from tokend.context import Context
from tokend.snapshot import AgentState, DaemonInfo, Snapshot, WindowState

if TYPE_CHECKING:
    from tokend.store import Store

__all__ = [
    "daemon_lines", "format_status", "human_delta", "register", "render", "run", "running_daemon",
]

_KIND_NAMES = {"5h": "5-hour", "weekly": "weekly", "daily": "daily"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="usage windows: used %%, resets, burn, projection, pace")
    p.add_argument("--json", action="store_true", help="the full snapshot as JSON")
    p.add_argument("--no-scan", action="store_true", help="do not read new log lines first")
    p.set_defaults(func=run, render=render)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_store() as store:
        if not args.no_scan:
            ctx.catch_up(store)
        text = _render(args, ctx, store)
    sys.stdout.write(text)
    return 0


def render(args: argparse.Namespace, ctx: Context, *, tty: bool) -> str:
    """The status for a client of the daemon (:mod:`tokend.report_client`): the daemon
    has caught up already, and reads on a connection of its own that writes nothing
    (its worker is the one writer; its history cache is warm in memory anyway)."""
    del tty
    with ctx.open_store(readonly=True) as store:
        return _render(args, ctx, store)


def _render(args: argparse.Namespace, ctx: Context, store: Store) -> str:
    """Build and format the snapshot in the caller's zones (``ctx.env``), not this
    process's: in the daemon they may differ."""
    from tokend.state import build_snapshot, resolve_zone

    zone = resolve_zone("local", ctx.env)
    settings = ctx.settings
    snapshot = build_snapshot(store, ctx.roots(), settings, ctx.clock(),
                              zone=resolve_zone(settings.weekly.timezone, ctx.env))
    if args.json:
        info = running_daemon(ctx)
        if info is not None:
            snapshot = replace(snapshot, daemon=info)
        return json.dumps(snapshot.to_dict(), indent=2) + "\n"
    return format_status(snapshot, extra=daemon_lines(ctx, snapshot), zone=zone) + "\n"


def daemon_lines(ctx: Context, snapshot: Snapshot) -> list[str]:
    """Lines about the daemon printed above the table: whether it runs, its pid,
    uptime and last ingest, or how to start it."""
    del snapshot
    from tokend.daemon import daemon_status_line

    return [daemon_status_line(ctx)]


def running_daemon(ctx: Context) -> DaemonInfo | None:
    """The running daemon's :class:`DaemonInfo` from its ``status.json``, else ``None``.

    ``status --json`` prints the Snapshot it computed itself (the same schema as
    ``status.json``); its ``daemon`` field is filled from here, so a script sees
    whether a daemon runs (``null`` when none does or it has not published yet).
    """
    from tokend.daemon import lock_holder

    if lock_holder(ctx.paths.lock_file) is None:
        return None
    try:
        data = json.loads(ctx.paths.status_json.read_text(encoding="utf-8"))
        return Snapshot.from_dict(data).daemon
    except Exception:  # absent, half-written by an older version, another schema
        return None


def human_delta(delta: timedelta) -> str:
    """``2 h 15 m``, ``3 d 4 h``, ``45 s``: a duration at a glance."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} m"
    if minutes:
        return f"{minutes} m"
    return f"{secs} s"


def _clock(at: datetime, now: datetime) -> str:
    """``at`` as a wall-clock time in ``now``'s zone (the user's, see :func:`format_status`)."""
    local, local_now = at.astimezone(now.tzinfo), now
    if local.date() == local_now.date():
        return f"{local:%H:%M}"
    if abs((local - local_now).days) < 6:
        return f"{local:%a %H:%M}"
    return f"{local:%b %d %H:%M}"


def _tokens(n: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def _used(w: WindowState) -> str:
    amount = f"{w.requests:,} req" if w.unit == "requests" else f"{_tokens(w.used_tokens)} tok"
    if w.percent is None:
        return f"?  ({amount})"
    return f"{w.percent:.0f}%  ({amount})"


def _source(w: WindowState, now: datetime) -> str:
    if w.provenance == "official" and w.observed_at is not None:
        return f"official, {human_delta(now - w.observed_at)} ago"
    return w.provenance


def _resets(w: WindowState, now: datetime) -> str:
    if w.rolling:
        if w.drift is None:
            return "rolling 7 d"
        return f"rolling; {_tokens(w.drift.frees_tokens)} frees at {_clock(w.drift.at, now)}"
    if w.resets_at is None:
        return "starts with next use"
    return f"{_clock(w.resets_at, now)} (in {human_delta(w.resets_at - now)})"


def _burn(w: WindowState) -> str:
    if w.burn_tokens_per_min <= 0:
        return "idle"
    text = f"{_tokens(w.burn_tokens_per_min)}/min"
    if w.burn_usd_per_hour:
        text += f" ${w.burn_usd_per_hour:.2f}/h"
    return text


def _projection(w: WindowState, now: datetime) -> str:
    if w.runs_out_at is not None:
        if w.runs_out_at <= now:
            return "limit reached"
        return f"runs out {_clock(w.runs_out_at, now)}"
    if w.projected_percent is None:
        return "-"
    return f"{w.projected_percent:.0f}% at reset"


def _pace(w: WindowState) -> str:
    return "-" if w.pace is None else f"{w.pace:+.0f}"


def _who(a: AgentState, snapshot: Snapshot) -> str:
    """The agent, plus the account name when the agent has more than one root."""
    several = sum(1 for b in snapshot.agents if b.agent == a.agent and b.windows) > 1
    if not several or a.account in ("", a.agent):
        return a.agent
    return f"{a.agent} ({a.account})"


def format_status(
    snapshot: Snapshot, extra: list[str] | None = None, zone: tzinfo | None = None
) -> str:
    """The status table, or a plain statement that nothing has been measured yet.

    Times are shown in ``zone``, by default this process's own: the daemon renders a
    client's status in the client's zone.
    """
    now = snapshot.generated_at.astimezone(zone)
    lines = list(extra or [])
    measured = [a for a in snapshot.agents if a.windows]
    if not measured:
        lines.append("No agent usage recorded yet: nothing to show (no figure is shown as 0 %).")
        lines.append("Looked for logs in:")
        for a in snapshot.agents:
            lines.append(f"  {a.agent:<7} {'found, empty' if a.found else 'missing':<13} {a.root}")
        if not snapshot.agents:
            lines.append("  (no agent is enabled in the config)")
        lines.append("Use Claude Code, Codex CLI or Gemini CLI, then run 'tokend status' again.")
        return "\n".join(lines)
    header = ("AGENT", "WINDOW", "USED", "SOURCE", "RESETS", "BURN", "PROJECTION", "PACE")
    rows: list[tuple[str, ...]] = []
    for a in measured:
        for w in a.windows:
            rows.append((
                _who(a, snapshot), _KIND_NAMES.get(w.kind, w.kind), _used(w), _source(w, now),
                _resets(w, now), _burn(w), _projection(w, now), _pace(w),
            ))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    bases = [
        f"  {_who(a, snapshot)} {_KIND_NAMES.get(w.kind, w.kind)}: {w.basis}"
        for a in measured for w in a.windows if w.provenance != "official"
    ]
    if bases:
        lines.append("")
        lines.append("Where 100 % comes from:")
        lines.extend(bases)
    if any(w.provenance == "unknown" for a in measured for w in a.windows):
        lines.append(
            "  ('?' = nothing says what 100 % is yet: set a plan or your own numbers, e.g. "
            "[claude] plan / five_hour_tokens, see 'tokend config init')"
        )
    empty = [a for a in snapshot.agents if not a.windows]
    if empty:
        lines.append("")
        lines.append("No usage recorded in:")
        lines.extend(
            f"  {a.agent:<7} {'found, empty' if a.found else 'missing':<13} {a.root}"
            for a in empty
        )
    return "\n".join(lines)

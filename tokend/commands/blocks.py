"""``tokend blocks``: 5-hour billing blocks, compatible with ``ccusage blocks``.

Same block rule, gap blocks, burn rate, projection and ``--token-limit`` semantics
as ccusage (see :mod:`tokend.windows`), and ``--json`` prints the same keys, so a
script written against ``ccusage claude blocks --json`` reads ours unchanged. The
blocks come from the store (deduplicated across every root of the agent, as
ccusage merges every Claude folder); ``--agent`` picks another agent.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, tzinfo
from typing import Any

from tokend.context import Context
from tokend.models import utc_from_ms, utc_ms
from tokend.store import Store
from tokend.windows import HOUR_MS, Block, build_blocks, ccusage_burn, ccusage_projection

__all__ = [
    "block_json", "blocks_json", "chain_start", "model_label", "register", "render", "run",
]

RECENT_MS = 3 * 24 * HOUR_MS
WARNING = 0.8
"""ccusage's BLOCKS_WARNING_THRESHOLD: projected use above 80 % of the limit warns."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "blocks", help="5-hour usage blocks with burn rate and projection (ccusage-compatible)"
    )
    p.add_argument("--agent", default="claude", choices=("claude", "codex", "gemini"),
                   help="whose blocks (default: claude, as ccusage claude blocks)")
    p.add_argument("--json", "-j", action="store_true", help="ccusage's blocks --json shape")
    p.add_argument("--active", "-a", action="store_true", help="only the active block")
    p.add_argument("--recent", "-r", action="store_true",
                   help="blocks that started in the last 3 days, plus the active one")
    p.add_argument("--token-limit", "-t", metavar="N|max",
                   help="limit for quota warnings: a number, or 'max' (largest completed block)")
    p.add_argument("--session-length", "-n", type=float, default=5.0, metavar="HOURS",
                   help="block length in hours (default 5)")
    p.add_argument("--no-scan", action="store_true", help="do not read new log lines first")
    p.set_defaults(func=run, render=render)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_store() as store:
        if not args.no_scan:
            ctx.catch_up(store)
    sys.stdout.write(render(args, ctx, tty=sys.stdout.isatty()))
    return 0


def render(args: argparse.Namespace, ctx: Context, *, tty: bool) -> str:
    """The blocks' text from the store as it is (the caller brings it up to date);
    the daemon calls this too, for a report asked over its socket."""
    del tty  # the JSON is indented either way, as ccusage's
    now = ctx.clock()
    duration = int(args.session_length * HOUR_MS)
    with ctx.open_store(readonly=True) as store:
        since = None
        if args.active or args.recent:
            cutoff = utc_ms(now) - (duration if args.active else RECENT_MS)
            since = chain_start(store, args.agent, cutoff, utc_ms(now), duration)
        blocks = build_blocks(store.events(agent=args.agent, since_ms=since), duration,
                              label=model_label)
        resets = [
            (utc_ms(r.observed_at), r.resets_at)
            for r in store.limit_rows(agent=args.agent)
            if r.reached and r.resets_at is not None
        ]
    now_ms = utc_ms(now)
    blocks = select(blocks, now_ms, duration, active=args.active, recent=args.recent)
    limit = token_limit(args.token_limit, blocks, now_ms, duration)
    if args.json:
        return json.dumps(blocks_json(blocks, now_ms, duration, limit,
                                      args.token_limit is not None, resets),
                          indent=2, sort_keys=True) + "\n"
    if not blocks and (args.active or args.recent):
        # The store may hold plenty: nothing falls in the window asked for.
        which = "is active" if args.active else "started in the last 3 days"
        return f"No {args.agent} usage block {which}; 'tokend blocks' lists them all.\n"
    from tokend.reports import local_zone

    return _table(blocks, now_ms, duration, limit, local_zone(dict(ctx.env))) + "\n"


def chain_start(store: Store, agent: str, cutoff_ms: int, now_ms: int,
                duration: int) -> int | None:
    """The first event after the last pause longer than a block, before ``cutoff_ms``.

    Blocks from there on are exactly those the whole history gives, so ``--recent``
    and ``--active`` read days of events, not years. ``None``: read everything.
    """
    span = 24 * HOUR_MS
    while span <= 800 * 24 * HOUR_MS:
        lo = cutoff_ms - span
        hours = store.hourly(agent=agent, root=None, since_ms=lo, until_ms=now_ms + 1)
        if not hours:
            return cutoff_ms
        for i in range(len(hours) - 1, 0, -1):
            if hours[i][3] <= cutoff_ms and hours[i][3] - hours[i - 1][4] > duration:
                return hours[i][3]
        if hours[0][3] - lo > duration:
            return hours[0][3]
        span *= 2
    return None


def model_label(event: Any) -> str:
    """The model as ccusage lists it: fast-mode responses as ``<model>-fast``."""
    model = str(event.model)
    return f"{model}-fast" if getattr(event, "speed", None) == "fast" else model


def select(blocks: list[Block], now_ms: int, duration: int, *, active: bool,
           recent: bool) -> list[Block]:
    if active:
        return [b for b in blocks if b.is_active(now_ms, duration)]
    if recent:
        return [
            b for b in blocks
            if b.start_ms >= now_ms - RECENT_MS or b.is_active(now_ms, duration)
        ]
    return blocks


def token_limit(value: str | None, blocks: list[Block], now_ms: int, duration: int) -> int | None:
    """``N``, or for ``max``/empty the largest completed block (``None`` without one)."""
    if value not in (None, "", "max"):
        assert value is not None
        try:
            return int(value)
        except ValueError:
            from tokend.errors import TokendError

            raise TokendError(f"--token-limit {value!r} is not a number",
                              hint="use a token count such as 500000, or 'max'") from None
    best = max(
        (b.total for b in blocks if not b.is_gap and not b.is_active(now_ms, duration)),
        default=0,
    )
    return best or None


def _iso(ms: int) -> str:
    return utc_from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def block_json(
    b: Block, now_ms: int, duration: int, limit: int | None = None, with_limit: bool = False,
    resets: list[tuple[int, datetime]] | None = None,
) -> dict[str, Any]:
    """One block in ccusage's ``blocks --json`` shape."""
    active = b.is_active(now_ms, duration)
    burn = ccusage_burn(b) if active else None
    proj = ccusage_projection(b, now_ms) if active else None
    out: dict[str, Any] = {
        "id": ("gap-" if b.is_gap else "") + _iso(b.start_ms),
        "startTime": _iso(b.start_ms),
        "endTime": _iso(b.end_ms),
        "actualEndTime": None if b.is_gap or b.last_ms is None else _iso(b.last_ms),
        "isActive": active,
        "isGap": b.is_gap,
        "entries": b.entries,
        "tokenCounts": {
            "inputTokens": b.input,
            "outputTokens": b.output,
            "cacheCreationInputTokens": b.cache_create,
            "cacheReadInputTokens": b.cache_read,
        },
        "totalTokens": b.total,
        "costUSD": b.cost,
        "models": list(b.models),
        "burnRate": None if burn is None else {
            "tokensPerMinute": burn.tokens_per_minute,
            "tokensPerMinuteForIndicator": burn.tokens_per_minute_for_indicator,
            "costPerHour": burn.cost_per_hour,
        },
        "projection": None if proj is None else {
            "totalTokens": proj[0], "totalCost": proj[1], "remainingMinutes": proj[2],
        },
    }
    if with_limit and active and limit:
        projected = proj[0] if proj is not None else b.total
        out["tokenLimitStatus"] = {
            "limit": limit,
            "projectedUsage": projected,
            "percentUsed": projected / limit * 100,
            "status": "exceeds" if projected > limit
            else "warning" if projected > limit * WARNING else "ok",
        }
    if resets and not b.is_gap:
        inside = [r for at, r in resets if b.start_ms <= at < b.end_ms]
        if inside:
            out["usageLimitResetTime"] = _iso(utc_ms(max(inside)))
    return out


def blocks_json(
    blocks: list[Block], now_ms: int, duration: int, limit: int | None, with_limit: bool,
    resets: list[tuple[int, datetime]] | None = None,
) -> dict[str, Any]:
    return {"blocks": [block_json(b, now_ms, duration, limit, with_limit, resets)
                       for b in blocks]}


def _table(
    blocks: list[Block], now_ms: int, duration: int, limit: int | None, zone: tzinfo
) -> str:
    """The human table, times in ``zone`` (the user's, which in the daemon is not the
    process's own)."""
    if not blocks:
        return "No usage blocks found. Run 'tokend scan' to read the agent logs first."
    head = f"{'Block start (local)':<22} {'Status':<10} {'Entries':>7} {'Tokens':>13} "
    head += f"{'% of limit':>10} {'Cost':>9}  Models"
    lines = [head, "-" * len(head)]
    for b in blocks:
        start = datetime.fromtimestamp(b.start_ms / 1000, tz=zone)
        if b.is_gap:
            hours = (b.end_ms - b.start_ms) / HOUR_MS
            lines.append(f"{start:%Y-%m-%d %H:%M}       (gap {hours:.1f} h)")
            continue
        status = "ACTIVE" if b.is_active(now_ms, duration) else ""
        pct = f"{b.total / limit * 100:.1f}%" if limit else ""
        lines.append(
            f"{start:%Y-%m-%d %H:%M}       {status:<10} {b.entries:>7} {b.total:>13,} "
            f"{pct:>10} {'$' + format(b.cost, '.2f'):>9}  {', '.join(b.models)}"
        )
        if status:
            burn = ccusage_burn(b)
            proj = ccusage_projection(b, now_ms)
            end = datetime.fromtimestamp(b.end_ms / 1000, tz=zone)
            lines.append(f"  ends {end:%H:%M}, {round((b.end_ms - now_ms) / 60000)} min left")
            if burn is not None:
                lines.append(f"  burn {burn.tokens_per_minute:,.0f} tokens/min, "
                             f"${burn.cost_per_hour:.2f}/h")
            if proj is not None:
                tail = f" ({proj[0] / limit * 100:.0f}% of {limit:,})" if limit else ""
                lines.append(f"  projected at block end: {proj[0]:,} tokens, ${proj[1]:.2f}{tail}")
    return "\n".join(lines)

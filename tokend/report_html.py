"""The tray's "Open report": one self-contained HTML page of today and this week.

Why a file and not a web server: the tray opens it with the desktop's browser via
``xdg-open``/``open``, it works offline, it needs no port, and it can be saved or
mailed as is. Everything is inline (CSS, bars drawn with plain ``div`` widths); no
script, no font, no external asset. The store is read directly with SQL sums, so
the page is correct whether or not the daemon runs.

Per agent and model: requests, input, output, cache read, cache write, total tokens
and cost (costs are computed at ingest time by the price table; an unknown model's
cost is shown as "—", never as $0).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from tokend.models import utc_ms

if TYPE_CHECKING:
    from tokend.config import Settings
    from tokend.store import Store

__all__ = ["ModelRow", "period_rows", "week_start", "write_report"]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class ModelRow:
    """Usage of one model of one agent over a period."""

    agent: str
    model: str
    requests: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    cost: float | None
    """``None`` when no event of the model has a known price."""
    unpriced: int
    """Events of this model without a price (their cost is not in ``cost``)."""

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


def period_rows(store: Store, since: datetime, until: datetime) -> list[ModelRow]:
    """Usage per agent and model between ``since`` (inclusive) and ``until``."""
    rows = store.db.execute(
        "SELECT agent, model, COUNT(*), SUM(input), SUM(output), SUM(cache_read), "
        "SUM(cache_write_5m + cache_write_1h), SUM(cost), SUM(cost IS NULL) "
        "FROM events WHERE ts >= ? AND ts < ? GROUP BY agent, model "
        "ORDER BY agent, SUM(input + output + cache_read + cache_write_5m + cache_write_1h) DESC",
        (utc_ms(since), utc_ms(until)),
    ).fetchall()
    return [
        ModelRow(
            agent=r[0], model=r[1], requests=int(r[2]), input=int(r[3] or 0),
            output=int(r[4] or 0), cache_read=int(r[5] or 0), cache_write=int(r[6] or 0),
            cost=None if r[7] is None else float(r[7]), unpriced=int(r[8] or 0),
        )
        for r in rows
    ]


def week_start(settings: Settings, now: datetime, tz: tzinfo | None = None) -> datetime:
    """The start of "this week": the last weekly anchor (``"mon 09:00"``), or seven
    days back when the weekly window is rolling."""
    anchor = settings.weekly.anchor
    if anchor == "rolling":
        return now - timedelta(days=7)
    zone = tz
    if zone is None and settings.weekly.timezone != "local":
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(settings.weekly.timezone)
    day, _, clock = anchor.partition(" ")
    hour, minute = (int(x) for x in clock.split(":"))
    local = now.astimezone(zone)
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    start -= timedelta(days=(local.weekday() - _WEEKDAYS.index(day)) % 7)
    if start > local:
        start -= timedelta(days=7)
    return start


def write_report(
    store: Store, settings: Settings, now: datetime, path: Path, *, tz: tzinfo | None = None
) -> Path:
    """Write the report to ``path`` (atomically: a browser never sees half a page)."""
    local = now.astimezone(tz)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = week_start(settings, now, tz)
    sections = [
        _section("Today", f"since {today:%a %d %b %H:%M}", period_rows(store, today, now)),
        _section(
            "This week",
            f"since {week.astimezone(tz):%a %d %b %H:%M}"
            + (" (rolling 7 days)" if settings.weekly.anchor == "rolling" else ""),
            period_rows(store, week, now),
        ),
    ]
    page = _PAGE.format(
        generated=html.escape(f"{local:%Y-%m-%d %H:%M %Z}".strip()),
        sections="\n".join(sections),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _section(title: str, subtitle: str, rows: Sequence[ModelRow]) -> str:
    head = f"<h2>{html.escape(title)} <small>{html.escape(subtitle)}</small></h2>"
    if not rows:
        return f"<section>{head}<p class=empty>No usage recorded.</p></section>"
    biggest = max(r.total for r in rows) or 1
    body: list[str] = []
    for agent in dict.fromkeys(r.agent for r in rows):
        mine = [r for r in rows if r.agent == agent]
        body.append(
            f"<tr class=agent><th colspan=9>{html.escape(agent.title())}</th></tr>"
        )
        body.extend(_row(r, biggest) for r in mine)
        body.append(_total_row(mine))
    return (
        f"<section>{head}<table><thead><tr><th>Model</th><th>Requests</th><th>Input</th>"
        "<th>Output</th><th>Cache read</th><th>Cache write</th><th>Total</th><th>Cost</th>"
        f"<th class=bar>Share</th></tr></thead><tbody>{''.join(body)}</tbody>"
        f"<tfoot>{_total_row(rows, 'All agents')}</tfoot></table></section>"
    )


def _row(r: ModelRow, biggest: int) -> str:
    width = 100.0 * r.total / biggest
    return (
        f"<tr><td>{html.escape(r.model)}</td><td>{r.requests:,}</td><td>{r.input:,}</td>"
        f"<td>{r.output:,}</td><td>{r.cache_read:,}</td><td>{r.cache_write:,}</td>"
        f"<td>{r.total:,}</td><td>{_money(r.cost, r.unpriced)}</td>"
        f"<td class=bar><div style=\"width:{width:.1f}%\"></div></td></tr>"
    )


def _total_row(rows: Sequence[ModelRow], label: str = "Total") -> str:
    costs = [r.cost for r in rows if r.cost is not None]
    cost = sum(costs) if costs else None
    unpriced = sum(r.unpriced for r in rows)
    return (
        f"<tr class=total><td>{html.escape(label)}</td>"
        f"<td>{sum(r.requests for r in rows):,}</td><td>{sum(r.input for r in rows):,}</td>"
        f"<td>{sum(r.output for r in rows):,}</td><td>{sum(r.cache_read for r in rows):,}</td>"
        f"<td>{sum(r.cache_write for r in rows):,}</td><td>{sum(r.total for r in rows):,}</td>"
        f"<td>{_money(cost, unpriced)}</td><td></td></tr>"
    )


def _money(cost: float | None, unpriced: int) -> str:
    if cost is None:
        return "—"
    text = f"${cost:,.2f}"
    if unpriced:
        text += (
            f' <span class=note title="events without a known price">+{unpriced} unpriced</span>'
        )
    return text


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokend report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1f2328; background: #fff; }}
h1 {{ font-size: 1.4rem; margin: 0 0 .2rem; }}
h2 {{ font-size: 1.1rem; margin: 2rem 0 .5rem; }}
h2 small, .meta {{ color: #667; font-weight: normal; }}
table {{ border-collapse: collapse; width: 100%; max-width: 70rem; }}
th, td {{ padding: .3rem .6rem; text-align: right; border-bottom: 1px solid #e3e6ea; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.agent th {{ text-align: left; background: #f3f5f7; }}
tr.total td {{ font-weight: 600; }}
tfoot td {{ border-top: 2px solid #2b3038; }}
td.bar {{ width: 12rem; }}
td.bar div {{ height: .7rem; background: #2ec4b6; border-radius: 2px; }}
.note {{ color: #a15c00; font-size: .8em; }}
.empty {{ color: #667; }}
@media (prefers-color-scheme: dark) {{
  body {{ color: #e6e8eb; background: #1d2127; }}
  tr.agent th {{ background: #2b3038; }}
  th, td {{ border-color: #39404a; }}
  tfoot td {{ border-top-color: #e6e8eb; }}
}}
</style>
</head>
<body>
<h1>tokend report</h1>
<p class=meta>Generated {generated}. Tokens as the agents' logs count them; costs from
tokend's bundled price table (estimates, not your bill).</p>
{sections}
</body>
</html>
"""

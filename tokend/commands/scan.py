"""``tokend scan``: read every agent log into the store and summarise what was found."""

from __future__ import annotations

import argparse
import sys
import time

from tokend.context import Context
from tokend.tail import ScanReport

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scan", help="read new agent log lines into the store")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    started = time.monotonic()
    show = not args.quiet and not args.json and sys.stderr.isatty()
    bar = _ProgressBar() if show else None
    with ctx.open_store() as store:
        report = ctx.refresh(store, bar.update if bar else None)
        if bar:
            bar.close()
        counts = store.counts()
        unpriced = store.unpriced_models()
    elapsed = time.monotonic() - started
    if args.json:
        import json

        print(json.dumps(_as_json(report, counts, unpriced, elapsed), indent=2))
    else:
        print(_as_text(report, counts, unpriced, elapsed))
    return 0


def _as_json(
    report: ScanReport, counts: dict[str, int], unpriced: list[str], elapsed: float
) -> dict[str, object]:
    return {
        "roots": [
            {"agent": r.agent, "path": str(r.path), "account": r.account,
             "found": r not in report.missing_roots}
            for r in report.roots
        ],
        "files": report.files,
        "filesRead": report.files_read,
        "bytesRead": report.bytes_read,
        "newEvents": report.events,
        "newLimitObservations": report.observations,
        "malformedLines": report.malformed,
        "errors": report.errors,
        "storedEvents": counts["events"],
        "storedMalformedLines": counts["malformed"],
        "unpricedModels": unpriced,
        "seconds": round(elapsed, 3),
    }


def _as_text(
    report: ScanReport, counts: dict[str, int], unpriced: list[str], elapsed: float
) -> str:
    lines = []
    for root in report.roots:
        mark = "missing" if root in report.missing_roots else "found"
        lines.append(f"  {root.agent:<7} {mark:<8} {root.path}")
    lines.append(
        f"{report.files} files ({report.files_read} with new data, "
        f"{report.bytes_read / 1e6:.1f} MB read), {report.events} new events, "
        f"{report.observations} limit observations, in {elapsed:.2f} s"
    )
    lines.append(f"store: {counts['events']} events, {counts['limits']} limit observations")
    if report.malformed or counts["malformed"]:
        lines.append(
            f"skipped {report.malformed} malformed lines in this scan "
            f"({counts['malformed']} in all): they are counted, not fatal"
        )
    for error in report.errors:
        lines.append(f"warning: {error}")
    if unpriced:
        lines.append(
            "unpriced models (no cost shown for them; add prices in prices.toml): "
            + ", ".join(unpriced)
        )
    if not any(r not in report.missing_roots for r in report.roots):
        lines.append("no agent log folder was found in the places listed above")
    return "\n".join(lines)


class _ProgressBar:
    """A one-line bytes progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self) -> None:
        self.last = 0.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        width = 30
        frac = done / total if total else 1.0
        filled = int(frac * width)
        sys.stderr.write(
            f"\rscanning [{'#' * filled}{'.' * (width - filled)}] "
            f"{frac * 100:5.1f}%  {done / 1e6:8.1f}/{total / 1e6:.1f} MB"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 70 + "\r")
        sys.stderr.flush()

"""``tokend doctor``: run every check, print what is wrong and the command that fixes it.

Exit status 1 when a check found an error (``--strict``: a warning too); see
:mod:`tokend.doctor` for what counts as which.
"""

from __future__ import annotations

import argparse
import json

from tokend.context import Context
from tokend.doctor import Finding, exit_status, run_checks

__all__ = ["register"]

_MARK = {"ok": "ok", "info": "--", "warn": "WARN", "error": "FAIL"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check the setup and say how to fix problems")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings as well")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    findings = run_checks(ctx)
    status = exit_status(findings, strict=args.strict)
    if args.json:
        print(json.dumps({"ok": status == 0, "findings": [f.to_dict() for f in findings]},
                         indent=2))
    else:
        print(render_text(findings))
    return status


def render_text(findings: list[Finding]) -> str:
    """One line per finding, the fix indented below it, a count at the end."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        lines.append(f"{_MARK[f.status]:<4}  {f.check:<{width}}  {f.summary}")
        if f.fix and f.status != "ok":
            lines.append(f"{'':<4}  {'':<{width}}  fix: {f.fix}")
    errors = sum(f.status == "error" for f in findings)
    warnings = sum(f.status == "warn" for f in findings)
    lines.append(f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    return "\n".join(lines)

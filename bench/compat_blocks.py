"""Compare ``tokend blocks --json`` with ``ccusage claude blocks --json --offline``.

Generates a Claude Code ``projects/`` tree (deterministic, timestamps relative to
now so the last block is active) with the cases the block rule must get right:
long continuous runs that cross a block end, pauses just under and over 5 hours,
an entry exactly on a block end, duplicated responses (resumed sessions copy
lines into a new file; streaming writes one response as several lines), several
projects and models. Then runs both tools on it, each with an empty ``HOME``, and
compares block for block: id, start, end, last entry, gap/active flags, entry
count and the four token counts. Costs are listed but not required to match
(price tables differ).

    python bench/compat_blocks.py [--ccusage PATH] [--keep DIR] [--seed N]

Exit status 0 when every block matches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

CCUSAGE = "/opt/ccusage/node_modules/.bin/ccusage"
MODELS = ("claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-haiku-4-5-20251001")
KEYS = ("id", "startTime", "endTime", "actualEndTime", "isGap", "isActive", "entries",
        "tokenCounts", "totalTokens")


def _iso(t: datetime) -> str:
    # milliseconds, as Claude Code writes them (ccusage skips microsecond timestamps)
    utc = t.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _line(t: datetime, mid: str, rid: str, session: str, model: str, usage: dict[str, object],
          cwd: str) -> str:
    obj = {
        "parentUuid": None, "isSidechain": False, "userType": "external", "cwd": cwd,
        "sessionId": session, "version": "2.0.14", "type": "assistant",
        "message": {"id": mid, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "ok"}], "usage": usage},
        "requestId": rid, "uuid": f"u-{mid}-{rid}-{len(usage)}", "timestamp": _iso(t),
    }
    return json.dumps(obj, separators=(",", ":"))


def generate(top: Path, now: datetime, seed: int) -> int:
    """Write the corpus under ``top/projects``; returns the number of lines."""
    rnd = random.Random(seed)
    now = now.replace(second=0, microsecond=0)
    lines_by_file: dict[Path, list[str]] = {}
    n = 0

    def emit(project: str, session: str, t: datetime, model: str | None = None,
             dup_into: str | None = None, stream: bool = False) -> None:
        nonlocal n
        n += 1
        mid, rid = f"msg_{seed}_{n}", f"req_{seed}_{n}"
        usage: dict[str, object] = {
            "input_tokens": rnd.randrange(1, 5000), "output_tokens": rnd.randrange(1, 3000),
            "cache_creation_input_tokens": rnd.randrange(0, 20000),
            "cache_read_input_tokens": rnd.randrange(0, 200000),
        }
        model = model or rnd.choice(MODELS)
        if "opus" in model and rnd.random() < 0.2:
            usage["speed"] = "fast"  # ccusage lists these as <model>-fast
        cwd = f"/home/dev/{project}"
        path = top / "projects" / f"-home-dev-{project}" / f"{session}.jsonl"
        if stream:  # a streamed response: an early partial copy, then the final one
            partial = dict(usage, output_tokens=1)
            lines_by_file.setdefault(path, []).append(
                _line(t, mid, rid, session, model, partial, cwd))
        lines_by_file.setdefault(path, []).append(_line(t, mid, rid, session, model, usage, cwd))
        if dup_into:  # a resumed session copies earlier lines into its own file
            other = top / "projects" / f"-home-dev-{project}" / f"{dup_into}.jsonl"
            lines_by_file.setdefault(other, []).append(
                _line(t, mid, rid, dup_into, model, usage, cwd))

    start = now - timedelta(days=12)
    t = start.replace(minute=17)
    # day-by-day sessions with short and long pauses
    while t < now - timedelta(hours=30):
        project = rnd.choice(("api", "web", "infra"))
        session = f"s{rnd.randrange(10**6):06d}"
        for _ in range(rnd.randrange(3, 25)):
            emit(project, session, t, stream=rnd.random() < 0.15,
                 dup_into=f"{session}-resumed" if rnd.random() < 0.1 else None)
            t += timedelta(minutes=rnd.randrange(1, 50), seconds=rnd.randrange(60),
                           milliseconds=rnd.randrange(1000))
        t += rnd.choice((timedelta(hours=4, minutes=59), timedelta(hours=5, minutes=1),
                         timedelta(hours=rnd.randrange(1, 20))))
    # a 9-hour continuous run that crosses a block end, with an entry exactly on it
    t = (now - timedelta(hours=27)).replace(minute=0, second=0, microsecond=0)
    emit("api", "long", t + timedelta(minutes=12))
    emit("api", "long", t + timedelta(hours=5))  # exactly the block end: same block
    for k in range(1, 50):
        emit("api", "long", t + timedelta(hours=5, minutes=10 * k))
    # the active block: started two hours ago, last entry a few minutes ago
    t = now - timedelta(hours=2, minutes=3)
    while t < now - timedelta(minutes=4):
        emit("web", "active", t)
        t += timedelta(minutes=rnd.randrange(3, 17))
    for path, lines in lines_by_file.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(v) for v in lines_by_file.values())


def run_ccusage(binary: str, top: Path, home: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    env = dict(os.environ, CLAUDE_CONFIG_DIR=str(top), HOME=str(home), NO_COLOR="1")
    out = subprocess.run([binary, "claude", "blocks", "--json", "--offline", *extra], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return dict(json.loads(out.stdout))


def run_tokend(top: Path, home: Path, tokend_home: Path,
               extra: tuple[str, ...] = ()) -> dict[str, Any]:
    env = dict(os.environ, CLAUDE_CONFIG_DIR=str(top), HOME=str(home),
               TOKEND_HOME=str(tokend_home))
    env.pop("CODEX_HOME", None)
    out = subprocess.run([sys.executable, "-m", "tokend", "blocks", "--json", *extra], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return dict(json.loads(out.stdout))


def compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[str]:
    problems = []
    if len(ours) != len(theirs):
        problems.append(f"block count: tokend {len(ours)}, ccusage {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        for key in KEYS:
            if a.get(key) != b.get(key):
                problems.append(f"block {i} ({b.get('id')}): {key}: tokend {a.get(key)!r}, "
                                f"ccusage {b.get(key)!r}")
        if sorted(a.get("models", [])) != sorted(b.get("models", [])):
            problems.append(f"block {i}: models differ: {a.get('models')} / {b.get('models')}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ccusage", default=CCUSAGE)
    ap.add_argument("--keep", type=Path, help="write the corpus here and keep it")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokend-compat-"))
    try:
        return _compare_all(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compare_all(args: argparse.Namespace, tmp: Path) -> int:
    top = args.keep or tmp / "claude"
    lines = generate(top, datetime.now(timezone.utc), args.seed)
    (tmp / "home-cc").mkdir()
    (tmp / "home-td").mkdir()
    theirs = run_ccusage(args.ccusage, top, tmp / "home-cc")["blocks"]
    ours = run_tokend(top, tmp / "home-td", tmp / "tokend")["blocks"]
    problems = compare(ours, theirs)
    real = [b for b in theirs if not b["isGap"]]
    active = [b for b in theirs if b["isActive"]]
    cost_diffs = [abs(a["costUSD"] - b["costUSD"]) for a, b in zip(ours, theirs, strict=False)]
    print(f"corpus: {lines} lines in {sum(1 for _ in top.rglob('*.jsonl'))} files")
    print(f"ccusage: {len(theirs)} blocks ({len(real)} with usage, "
          f"{len(theirs) - len(real)} gaps, {len(active)} active), "
          f"{sum(b['entries'] for b in theirs)} entries, "
          f"{sum(b['totalTokens'] for b in theirs):,} tokens")
    print(f"tokend:  {len(ours)} blocks, {sum(b['entries'] for b in ours)} entries, "
          f"{sum(b['totalTokens'] for b in ours):,} tokens")
    print(f"compared per block: {', '.join(KEYS)}, models")
    if cost_diffs:
        print(f"cost (not compared; price tables differ): max |diff| ${max(cost_diffs):.4f}, "
              f"totals tokend ${sum(b['costUSD'] for b in ours):.2f} / ccusage "
              f"${sum(b['costUSD'] for b in theirs):.2f}")
    if active and ours:
        a = next((b for b in ours if b["isActive"]), None)
        if a is not None:
            print(f"active block burn: tokend {a['burnRate']}, ccusage {active[0]['burnRate']}")
    for flag in ("--recent", "--active"):
        sub_theirs = run_ccusage(args.ccusage, top, tmp / "home-cc", (flag,))["blocks"]
        sub_ours = run_tokend(top, tmp / "home-td", tmp / "tokend", (flag, "--no-scan"))["blocks"]
        sub = compare(sub_ours, sub_theirs)
        print(f"{flag}: ccusage {len(sub_theirs)} blocks, tokend {len(sub_ours)}: "
              f"{'match' if not sub else 'MISMATCH'}")
        problems += [f"{flag}: {p}" for p in sub]
    if problems:
        print(f"MISMATCH ({len(problems)}):")
        for p in problems[:40]:
            print("  " + p)
        return 1
    print("MATCH: every block identical on the compared keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

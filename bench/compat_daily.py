"""Per-day token totals of ``tokend daily --json`` against ccusage, on one corpus.

Generates a corpus without quirks (``gen_corpus.py``), then compares, day by day,
``tokend daily --json --agent claude`` with ``ccusage claude daily --json --offline``
and ``tokend daily --json --agent codex`` with ``ccusage codex daily --json --offline``:
input, output, cache creation, cache read and total tokens must be equal.
Exit status 1 on any difference. Usage::

    python bench/compat_daily.py [--size-mb 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import CCUSAGE, corpus_env, machine

FIELDS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")


def by_day(rows: list[dict[str, object]]) -> dict[str, tuple[int, ...]]:
    out = {}
    for row in rows:
        out[str(row["date"])] = tuple(int(row.get(f, 0) or 0) for f in FIELDS)  # type: ignore[call-overload]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=30)
    ap.add_argument("--keep", type=Path, help="write the corpus here and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tokend-compat-"))
    corpus = work / "corpus"
    if not corpus.exists():
        subprocess.run([sys.executable, str(Path(__file__).parent / "gen_corpus.py"),
                        "--out", str(corpus), "--size-mb", str(args.size_mb),
                        "--agents", "claude,codex"], check=True)
    env = corpus_env(corpus, work / "tokend-home")
    ok = True
    print(f"machine: {machine()}")
    for agent in ("claude", "codex"):
        ours = json.loads(subprocess.run(
            [sys.executable, "-m", "tokend", "daily", "--json", "--agent", agent, "--tz", "UTC"],
            env=env, capture_output=True, text=True, check=True).stdout)
        theirs = json.loads(subprocess.run(
            [CCUSAGE, agent, "daily", "--json", "--offline"],
            env=env, capture_output=True, text=True, check=True).stdout)
        a, b = by_day(ours["daily"]), by_day(theirs["daily"])
        diff = sorted(d for d in set(a) | set(b) if a.get(d) != b.get(d))
        total = tuple(sum(v[i] for v in a.values()) for i in range(len(FIELDS)))
        print(f"{agent}: {len(a)} days (tokend) vs {len(b)} days (ccusage); "
              f"{len(diff)} days differ; tokend totals {dict(zip(FIELDS, total, strict=True))}")
        for day in diff[:5]:
            print(f"  {day}: tokend {a.get(day)} ccusage {b.get(day)}")
        ok = ok and not diff
    if not args.keep:
        shutil.rmtree(work)
    print("EQUAL" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

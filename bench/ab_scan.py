"""Cold ``tokend scan`` of two builds against each other and ccusage, in one sitting.

Timings on a shared VM drift by a third from one stretch of minutes to the next, and
the ratio against ccusage drifts with them; two builds compared an hour apart say
little. Here the runs alternate (build A, build B, ccusage; round after round) on the
same corpus, each scan into an empty TOKEND_HOME, and the result is the median time of
each and the median of the per-round ratios. Build a venv per revision first::

    git worktree add /tmp/old <rev> && python -m venv /tmp/venv-old
    /tmp/venv-old/bin/pip install /tmp/old
    python -m venv /tmp/venv-new && /tmp/venv-new/bin/pip install .
    python bench/gen_corpus.py --out /tmp/c400 --size-mb 400 --agents claude
    python bench/ab_scan.py --corpus /tmp/c400 /tmp/venv-old /tmp/venv-new --rounds 7

The stores the builds leave are not compared here (``bench/compat_daily.py`` checks
the numbers against ccusage).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import CCUSAGE, corpus_env, machine, median, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("venvs", nargs=2, type=Path, help="two venvs with tokend installed")
    ap.add_argument("--corpus", type=Path, required=True, help="from gen_corpus.py")
    ap.add_argument("--agent", choices=("claude", "codex"), default="claude")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    names = [str(v) for v in args.venvs]
    times: dict[str, list[float]] = {name: [] for name in [*names, "ccusage"]}
    work = Path(tempfile.mkdtemp(prefix="tokend-ab-"))
    try:
        for _ in range(args.rounds):
            for venv, name in zip(args.venvs, names, strict=True):
                home = work / "home"
                shutil.rmtree(home, ignore_errors=True)
                env = corpus_env(args.corpus, home)
                times[name].append(run([str(venv / "bin" / "tokend"), "scan", "--quiet"],
                                       env).seconds)
            env = corpus_env(args.corpus, work / "home")
            times["ccusage"].append(
                run([CCUSAGE, args.agent, "daily", "--json", "--offline"], env).seconds
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {machine()}; {args.rounds} rounds on {args.corpus} ({args.agent})\n")
    print("| build | median | every round | ratio to ccusage (median of rounds) |")
    print("|---|---|---|---|")
    theirs = times["ccusage"]
    for name, values in times.items():
        ratio = median([a / b for a, b in zip(values, theirs, strict=True)])
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {median(values):.2f} s | {rounds} | {ratio:.2f}× |")
    a, b = (median(times[n]) for n in names)
    print(f"\n{names[1]} / {names[0]}: {b / a:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

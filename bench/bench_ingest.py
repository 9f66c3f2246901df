"""Ingest benchmarks, side by side with ccusage in one run.

1. Cold ``tokend scan`` (empty store) against ``ccusage claude daily --json --offline``
   on the same Claude corpus (``--agent codex``: a Codex corpus and ``ccusage codex
   daily``): wall time and peak RSS, at growing corpus sizes so that "flat as the
   corpus grows" can be seen.
2. Warm ``tokend daily --json`` (store up to date) against ccusage's daily: run alone
   (it checks every log file for new bytes itself), and beside a running daemon
   (``tokend start``; the daemon vouches for the store and renders the report).
3. ``tokend scan`` after appending 1 MB to one session file.

tokend runs from a fresh venv with a regular ``pip install`` of this checkout (what
the README tells a user to do); each tool gets an empty store / no cache; the timed
commands alternate (tokend, ccusage, tokend, ...) so a load change hits both. Peak
RSS is GNU time's (the largest process); "tree RSS" sums tokend and its parse
workers, sampled in a separate run.

Usage::

    python bench/bench_ingest.py --sizes 100,400 [--runs 3] [--venv DIR] [--agent codex]

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import CCUSAGE, corpus_env, machine, median, run, tree_peak_rss_mb, user_install

REPO = Path(__file__).resolve().parents[1]


def append_one_mb(corpus: Path, agent: str) -> None:
    """Append ~1 MB of new usage lines (real format) to the largest session file."""
    if agent == "codex":
        _append_codex(corpus)
        return
    target = max((corpus / "claude" / "projects").rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    last = [ln for ln in target.read_text().splitlines() if '"type":"assistant"' in ln][-1]
    out = []
    size = 0
    n = 0
    while size < 1_000_000:
        line = last.replace('"id":"msg_', f'"id":"msg_new{n}_').replace(
            '"requestId":"req_', f'"requestId":"req_new{n}_')
        out.append(line)
        size += len(line) + 1
        n += 1
    with open(target, "a") as handle:
        handle.write("\n".join(out) + "\n")


def _append_codex(corpus: Path) -> None:
    """~1 MB of new turns: each a ``token_count`` whose running total grows (a repeated
    total would be a re-emit, not usage) after a tool output line."""
    target = max((corpus / "codex" / "sessions").rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    lines = target.read_text().splitlines()
    count = json.loads([ln for ln in lines if '"token_count"' in ln][-1])
    filler = [ln for ln in lines if '"function_call_output"' in ln][-1]
    total = count["payload"]["info"]["total_token_usage"]
    last = count["payload"]["info"]["last_token_usage"]
    out: list[str] = []
    size = 0
    while size < 1_000_000:
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            total[key] += last[key]
        for line in (filler, json.dumps(count, separators=(",", ":"))):
            out.append(line)
            size += len(line) + 1
    with open(target, "a") as handle:
        handle.write("\n".join(out) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,400", help="corpus sizes in MB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--venv", type=Path,
                    help="keep the tokend venv in DIR/venv (reused when present)")
    ap.add_argument("--agent", choices=("claude", "codex"), default="claude",
                    help="the corpus and the ccusage command to compare with")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tokend-bench-"))
    bindir = user_install(args.venv or work, REPO)

    def tokend(*a: str) -> list[str]:
        return [str(bindir / "tokend"), *a]

    print(f"machine: {machine()}\n")
    agent = args.agent
    print(f"| corpus | files | tokend cold scan | ccusage {agent} daily | time ratio | "
          "tokend peak RSS (tree) | ccusage peak RSS | tokend warm daily --json | "
          "ccusage daily | warm speed-up | warm daily, daemon running | speed-up | "
          "`python -c pass` | scan after +1 MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        for size in [float(x) for x in args.sizes.split(",")]:
            corpus = work / f"c{size:g}"
            subprocess.run([sys.executable, str(Path(__file__).parent / "gen_corpus.py"),
                            "--out", str(corpus), "--size-mb", str(size), "--agents", agent],
                           check=True, capture_output=True)
            files = list((corpus / agent).rglob("*.jsonl"))
            mb = sum(p.stat().st_size for p in files) / 1e6
            ccusage_daily = [CCUSAGE, agent, "daily", "--json", "--offline"]
            cold, theirs, warm, theirs_daily, floor, served = [], [], [], [], [], []
            for i in range(args.runs):
                env = corpus_env(corpus, work / f"home{size:g}-{i}")
                cold.append(run(tokend("scan", "--quiet"), env))
                theirs.append(run(ccusage_daily, env))
                run(tokend("daily", "--json", "--agent", agent), env)  # builds the rollup
                for _ in range(3):
                    warm.append(run(tokend("daily", "--json", "--agent", agent), env))
                    theirs_daily.append(run(ccusage_daily, env))
                    floor.append(run([str(bindir / "python"), "-c", "pass"], env))
                subprocess.run(tokend("start", "--no-tray", "--no-notify"), env=env,
                               check=True, capture_output=True)
                try:
                    run(tokend("daily", "--json", "--agent", agent), env)  # waits for it
                    for _ in range(3):
                        served.append(run(tokend("daily", "--json", "--agent", agent), env))
                        theirs_daily.append(run(ccusage_daily, env))
                finally:
                    subprocess.run(tokend("stop"), env=env, check=True, capture_output=True)
                if served[-1].stdout != warm[-1].stdout:
                    raise RuntimeError("the daemon's report differs from the local one")
            tree = tree_peak_rss_mb(tokend("scan", "--quiet"),
                                    corpus_env(corpus, work / f"home{size:g}-rss"))
            env = corpus_env(corpus, work / f"home{size:g}-0")
            append_one_mb(corpus, agent)
            rescan = run(tokend("scan", "--quiet"), env)
            c = median([r.seconds for r in cold])
            t = median([r.seconds for r in theirs])
            w = median([r.seconds for r in warm])
            td = median([r.seconds for r in theirs_daily])
            fl = median([r.seconds for r in floor])
            sv = median([r.seconds for r in served])
            print(f"| {mb:.0f} MB | {len(files)} | {c:.2f} s | {t:.2f} s | {c / t:.2f}× | "
                  f"{max(r.peak_rss_mb for r in cold):.0f} MB ({tree:.0f} MB) | "
                  f"{max(r.peak_rss_mb for r in theirs):.0f} MB | {w * 1000:.0f} ms | "
                  f"{td:.2f} s | {td / w:.1f}× | {sv * 1000:.0f} ms | {td / sv:.1f}× | "
                  f"{fl * 1000:.0f} ms | "
                  f"{rescan.seconds * 1000:.0f} ms |", flush=True)
            shutil.rmtree(corpus)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmarks of the live path: statusline speed, append -> status.json latency, idle cost.

Generates a synthetic corpus (``gen_corpus.py``, newest sessions ending now so the
current windows hold data), starts ``tokend run --no-tray --no-notify`` on it in a
private TOKEND_HOME and measures:

1. **statusline**: wall time of N calls (default 200) each of ``python -c pass``
   (the floor: interpreter start-up), the ``tokend statusline`` console script,
   ``python -m tokend statusline``, the ``--format`` path, the Claude stdin path,
   and ``ccusage statusline`` on the same corpus with the same stdin (with its
   default output cache and with ``--no-cache``). Every command is spawned the same
   way (``subprocess.run`` from this process), so the spawn overhead is equal.
2. **latency**: N appends of one Claude assistant line to a live session file, each
   timed until ``status.json`` shows the new tokens (polled every 0.5 ms).
3. **idle**: the daemon's CPU time over 60 s with no log activity, and its RSS.

    python bench/bench_daemon.py [--size-mb 50] [--runs 200] [--idle 60] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CCUSAGE, corpus_env, machine, median, pct

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def claude_line(tokens: int, session: str) -> str:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({
        "parentUuid": None, "isSidechain": False, "userType": "external",
        "cwd": "/home/dev/bench", "sessionId": session, "version": "2.1.240",
        "type": "assistant", "requestId": f"req_{uuid.uuid4().hex}",
        "message": {
            "model": "claude-sonnet-4-5-20250929", "id": f"msg_{uuid.uuid4().hex}",
            "type": "message", "role": "assistant", "content": [{"type": "text", "text": "k"}],
            "usage": {"input_tokens": tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1},
        },
        "uuid": str(uuid.uuid4()), "timestamp": now,
    }) + "\n"


def _call(argv: list[str], env: dict[str, str], stdin: bytes | None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, check=False,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stderr[-500:]!r}")
    return elapsed


def time_interleaved(cases: list[tuple[str, list[str], bytes | None, int]],
                     env: dict[str, str]) -> dict[str, list[float]]:
    """Round-robin over the commands, so a change in machine load hits all alike."""
    for _, argv, data, _ in cases:
        for _ in range(5):  # warm the page cache and the bytecode cache
            _call(argv, env, data)
    out: dict[str, list[float]] = {name: [] for name, _, _, _ in cases}
    for i in range(max(runs for _, _, _, runs in cases)):
        for name, argv, data, runs in cases:
            if i < runs:
                out[name].append(_call(argv, env, data))
    return out


def claude_used(status: Path) -> int:
    try:
        data = json.loads(status.read_text())
    except (OSError, ValueError):
        return -1
    total = 0
    for agent in data.get("agents", []):
        if agent["agent"] == "claude":
            for window in agent["windows"]:
                if window["kind"] == "5h":
                    total += window["used_tokens"]
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=50.0)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="tkb", dir="/tmp"))
    corpus = base / "corpus"
    end = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    subprocess.run([sys.executable, str(HERE / "gen_corpus.py"), "--out", str(corpus),
                    "--size-mb", str(args.size_mb), "--days", "10", "--end", end], check=True,
                   stdout=subprocess.DEVNULL)
    (corpus / "home").mkdir(exist_ok=True)
    env = corpus_env(corpus, base / "home")
    env["PYTHONPATH"] = str(REPO)
    env.pop("XDG_RUNTIME_DIR", None)
    # An installed package has its bytecode compiled (pip does it); a dev tree run with
    # PYTHONDONTWRITEBYTECODE would recompile every module on every call instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    status = base / "home" / "run" / "status.json"
    log = base / "home" / "log" / "tokend.log"
    daemon = subprocess.Popen([sys.executable, "-m", "tokend", "run", "--no-tray", "--no-notify"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, object] = {"machine": machine(), "corpus_mb": args.size_mb,
                                  "load_before": os.getloadavg()[0]}
    try:
        started = time.monotonic()
        while not (log.exists() and "initial scan done" in log.read_text()):
            if daemon.poll() is not None:
                raise RuntimeError("the daemon exited")
            time.sleep(0.05)
        results["initial_scan_s"] = time.monotonic() - started

        # -- 1. statusline --------------------------------------------------------------
        py = sys.executable
        script = Path(py).parent / "tokend"
        stdin_payload = {
            "session_id": "bench-session", "cwd": "/home/dev/bench",
            "transcript_path": str(next((corpus / "claude" / "projects").rglob("*.jsonl"))),
            "model": {"id": "claude-sonnet-4-5-20250929", "display_name": "Sonnet 4.5"},
            "workspace": {"current_dir": "/home/dev/bench", "project_dir": "/home/dev/bench"},
            "version": "2.1.240", "output_style": {"name": "default"},
            "cost": {"total_cost_usd": 0.41, "total_duration_ms": 1000,
                     "total_api_duration_ms": 500, "total_lines_added": 1,
                     "total_lines_removed": 0},
            "context_window": {"total_input_tokens": 20000, "total_output_tokens": 100,
                               "context_window_size": 200000, "used_percentage": 10,
                               "remaining_percentage": 90},
            "exceeds_200k_tokens": False,
            "rate_limits": {
                "five_hour": {"used_percentage": 30, "resets_at": int(time.time()) + 3600},
                "seven_day": {"used_percentage": 50, "resets_at": int(time.time()) + 86400},
            },
        }
        stdin = json.dumps(stdin_payload).encode()
        n = args.runs
        cases: list[tuple[str, list[str], bytes | None, int]] = [
            ("python -c pass", [py, "-c", "pass"], None, n),
            ("tokend statusline (console script)", [str(script), "statusline"], None, n),
            ("python -m tokend statusline", [py, "-m", "tokend", "statusline"], None, n),
            ("tokend statusline --format", [str(script), "statusline", "--format",
                                            "{agent} {5h} {weekly} {reset} {burn}"], None, n),
            ("tokend statusline < Claude stdin", [str(script), "statusline"], stdin, n),
            # Without site (-S): this container's .pth files (a sandbox CA hook importing
            # certifi, the editable-install finder) cost ~35 ms before any user code; the
            # -S pair shows what tokend itself adds to a bare interpreter.
            ("python -S -c pass", [py, "-S", "-c", "pass"], None, n),
            ("python -S -m tokend statusline", [py, "-S", "-m", "tokend", "statusline"],
             None, n),
            # what the console script does (pip's launcher imports re, then cli.main)
            ("python -S <console-script body> statusline",
             [py, "-S", "-c", "import re, sys; from tokend.cli import main; "
              "sys.exit(main(['statusline']))"], None, n),
            # the leanest launcher: no runpy, no re
            ("python -S -c 'from tokend.statusline import main; main()'",
             [py, "-S", "-c", "from tokend.statusline import main; raise SystemExit(main([]))"],
             None, n),
        ]
        if Path(CCUSAGE).exists():
            cases += [
                ("ccusage statusline < Claude stdin (its cache on)",
                 [CCUSAGE, "statusline", "--offline"], stdin, n),
                ("ccusage statusline < Claude stdin --no-cache",
                 [CCUSAGE, "statusline", "--offline", "--no-cache"], stdin, min(n, 50)),
            ]
        timings = {}
        for name, values in time_interleaved(cases, env).items():
            timings[name] = {"runs": len(values), "p50": median(values),
                             "p95": pct(values, 95)}
            print(f"{name:55s} p50 {median(values):7.1f} ms  p95 {pct(values, 95):7.1f} ms",
                  file=sys.stderr)
        results["statusline"] = timings

        # -- 2. append -> status.json ---------------------------------------------------
        live = corpus / "claude" / "projects" / "-home-dev-bench" / "bench-session.jsonl"
        live.parent.mkdir(parents=True, exist_ok=True)
        live.write_text(claude_line(1, "bench-session"))
        time.sleep(1.0)
        latencies = []
        for i in range(args.runs):
            before = claude_used(status)
            tokens = 1000 + i
            line = claude_line(tokens, "bench-session")
            start = time.perf_counter()
            with open(live, "a") as handle:
                handle.write(line)
            deadline = start + 5
            last_mtime = 0
            while time.perf_counter() < deadline:
                try:
                    mtime = status.stat().st_mtime_ns
                except OSError:
                    mtime = 0
                if mtime != last_mtime:
                    last_mtime = mtime
                    if claude_used(status) >= before + tokens + 1:
                        break
                time.sleep(0.0005)
            latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(0.05 + (i % 7) * 0.01)
        results["append_to_status_ms"] = {"runs": args.runs, "p50": median(latencies),
                                          "p95": pct(latencies, 95), "max": max(latencies)}
        print(f"append -> status.json p50 {median(latencies):.1f} ms "
              f"p95 {pct(latencies, 95):.1f} ms", file=sys.stderr)

        # -- 3. idle -----------------------------------------------------------------------
        time.sleep(3)
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.idle)
        cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
        rss, hwm = rss_mb(daemon.pid)
        results["idle"] = {"seconds": t1 - t0, "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
                           "rss_mb": rss, "peak_rss_mb": hwm}
        print(f"idle: {results['idle']}", file=sys.stderr)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    if args.markdown:
        print(markdown(results))
    else:
        print(json.dumps(results, indent=2))


def markdown(r: dict[str, object]) -> str:
    timings = r["statusline"]
    assert isinstance(timings, dict)
    floor = timings["python -c pass"]["p50"]
    lines = [
        "## Daemon: statusline, live latency, idle cost (`bench/bench_daemon.py`)",
        "",
        f"Machine: {r['machine']}. Corpus: {r['corpus_mb']} MB synthetic "
        f"(`gen_corpus.py --days 10`, newest session now); initial scan "
        f"{r['initial_scan_s']:.1f} s. Load average before the run: "
        f"{r['load_before']:.1f} (other jobs shared the machine); commands are timed "
        "round-robin so load changes hit all alike.",
        "",
        "| command | runs | p50 ms | p95 ms | p50 / `python -c pass` |",
        "|---|---|---|---|---|",
    ]
    bare = timings.get("python -S -c pass", {}).get("p50")
    for name, t in timings.items():
        base = bare if " -S " in name and bare else floor
        lines.append(f"| `{name}` | {t['runs']} | {t['p50']:.1f} | {t['p95']:.1f} | "
                     f"{t['p50'] / base:.2f}x |")
    lines += ["", "(`-S` rows are divided by `python -S -c pass`, the others by "
              "`python -c pass`.)"]
    a = r["append_to_status_ms"]
    i = r["idle"]
    assert isinstance(a, dict) and isinstance(i, dict)
    lines += [
        "",
        f"Append -> `status.json` shows it: p50 {a['p50']:.1f} ms, p95 {a['p95']:.1f} ms, "
        f"max {a['max']:.1f} ms over {a['runs']} appends (goal p95 <= 250 ms).",
        "",
        f"Idle daemon over {i['seconds']:.0f} s: CPU {i['cpu_percent']:.2f} % (goal <= 1 %), "
        f"RSS {i['rss_mb']:.0f} MB, peak {i['peak_rss_mb']:.0f} MB (goal <= 120 MB).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

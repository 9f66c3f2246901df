"""Shared helpers for the benchmark scripts: running a command with its wall time
and peak RSS, describing the machine, and the environment that points tokend and
ccusage at a corpus."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CCUSAGE = os.environ.get("CCUSAGE", "/opt/ccusage/node_modules/.bin/ccusage")


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str


def run(cmd: list[str], env: dict[str, str]) -> Run:
    """Run ``cmd`` under GNU time and return wall seconds, peak RSS and stdout."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss = int(match.group(1)) / 1024 if match else float("nan")
    return Run(elapsed, rss, proc.stdout)


def tree_peak_rss_mb(cmd: list[str], env: dict[str, str], interval: float = 0.005) -> float:
    """Peak of the summed RSS of ``cmd`` and every process it starts (parse workers).

    Sampled from ``/proc`` every few milliseconds in a run of its own (the sampling
    costs CPU, so timed runs don't do it). Shared copy-on-write pages of forked
    workers are counted once per process: an upper bound, never an underestimate.
    """
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while proc.poll() is None:
        family = {proc.pid}
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in family and pid not in family:
                    family.add(pid)
                    grew = True
        total = 0.0
        for pid in family:
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page_mb
        peak = max(peak, total)
        time.sleep(interval)
    if proc.wait() != 0:
        err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        raise RuntimeError(f"{cmd} failed: {err}")
    return peak


def user_install(work: Path, repo: Path) -> Path:
    """A fresh venv with tokend installed from ``repo`` the way the README does it
    (``pip install .``, not editable), so timings carry no editable-install finder
    or sitewide ``.pth`` hooks: the interpreter start a user's machine has."""
    venv = work / "venv"
    if not (venv / "bin" / "tokend").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", str(repo)], check=True,
            stdout=subprocess.DEVNULL,
        )
    return venv / "bin"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def compile_package() -> None:
    """Byte-compile tokend, as ``pip install`` does, so no run pays for compiling.

    Some environments set PYTHONDONTWRITEBYTECODE, which would make every timed
    tokend command recompile its modules from source (tens of milliseconds).
    """
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "tokend"), quiet=1)


def corpus_env(corpus: Path, tokend_home: Path) -> dict[str, str]:
    """Point both tools at the corpus and tokend at a private home."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        CLAUDE_CONFIG_DIR=str(corpus / "claude"),
        CODEX_HOME=str(corpus / "codex"),
        GEMINI_CLI_HOME=str(corpus / "gemini"),
        TOKEND_HOME=str(tokend_home),
        HOME=str(corpus / "home"),
        TZ="UTC",
    )
    return env


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)

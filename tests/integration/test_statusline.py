"""``tokend statusline``: what it imports, what it prints, how it marks old numbers.

The published files are made with the daemon's own :func:`tokend.daemon.publish`
from a real Snapshot, and the lock file names a live pid (this test process) or a
dead one; the command runs as a subprocess, as a shell prompt or Claude Code runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tokend.daemon import publish
from tokend.paths import Paths
from tokend.snapshot import AgentState, DaemonInfo, Snapshot, WindowState
from tokend.statusline import render, runtime_dir

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pydantic", "pydantic_settings", "watchdog", "PIL", "apscheduler", "sqlite3",
         "_sqlite3", "pystray", "desktop_notifier", "argparse", "subprocess", "tiktoken")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKEND_", "XDG_"))}
    env.update(TOKEND_HOME=str(home), HOME=str(home), PYTHONPATH=str(REPO), **extra)
    return env


def _snapshot(now: datetime, *, percent: float | None = 42.0,
              provenance: str = "official") -> Snapshot:
    five = WindowState(
        kind="5h", start=now - timedelta(hours=1), resets_at=now + timedelta(hours=2, minutes=5),
        used_tokens=12345, used_cost=1.5, requests=3, percent=percent,
        provenance=provenance,  # type: ignore[arg-type]
        burn_usd_per_hour=2.25, runs_out_at=now + timedelta(minutes=90),
    )
    week = WindowState(
        kind="weekly", start=now - timedelta(days=2), resets_at=now + timedelta(days=3),
        used_tokens=99999, used_cost=9.0, requests=30, percent=61.0, provenance="plan",
    )
    idle = WindowState(kind="5h", start=None, resets_at=None, used_tokens=0, used_cost=None,
                       requests=0, percent=None, provenance="unknown")
    return Snapshot(
        generated_at=now,
        agents=(
            AgentState("claude", "~/.claude", "/x/.claude/projects", (five, week)),
            AgentState("gemini", "~/.gemini", "/x/.gemini", (idle,)),
        ),
        daemon=DaemonInfo(pid=os.getpid(), started_at=now - timedelta(hours=1)),
    )


def _publish(home: Path, now: datetime, pid: int | None = None, **kw: Any) -> Paths:
    paths = Paths.from_env({"TOKEND_HOME": str(home)})
    paths.ensure_runtime_dir()
    publish(paths, _snapshot(now, **kw), 30, now.timestamp())
    paths.lock_file.write_text(f"{pid or os.getpid()}\n")
    return paths


def _statusline(home: Path, *args: str, stdin: bytes | None = None,
                **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokend", "statusline", *args], env=_env(home, **env),
        input=stdin.decode() if stdin is not None else None,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True, text=True, timeout=30, check=False,
    )


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- lean imports ---------------------------------------------------------------------


_PROBE = """
import sys, io
from tokend.cli import main
sys.stdin = io.TextIOWrapper(io.BytesIO({stdin!r}))
main(["statusline"] + {args!r})
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        ([], b""),
        (["--format", "{agent} {5h} {burn} {runs-out}", "--color"], b""),
        ([], json.dumps({"session_id": "s", "model": {"display_name": "Opus"},
                         "rate_limits": {"five_hour": {"used_percentage": 5,
                                                       "resets_at": 2_000_000_000}}}).encode()),
    ],
    ids=["default", "format", "claude-stdin"],
)
def test_statusline_imports_nothing_heavy(tmp_path: Path, args: list[str], stdin: bytes) -> None:
    _publish(tmp_path, datetime.now(timezone.utc))
    probe = _PROBE.format(stdin=stdin, args=args, heavy=HEAVY)
    # stdin is replaced inside the probe, but isatty() of a BytesIO is False, as in Claude
    done = subprocess.run([sys.executable, "-c", probe], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "HEAVY=\n" in done.stdout, done.stdout


def test_importtime_of_the_console_path(tmp_path: Path) -> None:
    _publish(tmp_path, datetime.now(timezone.utc))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "tokend", "statusline"],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "tokend.statusline" in imported
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, imported


# -- what it prints -------------------------------------------------------------------


def test_default_line_comes_from_statusline_txt(tmp_path: Path) -> None:
    paths = _publish(tmp_path, datetime.now(timezone.utc))
    done = _statusline(tmp_path)
    assert done.returncode == 0
    assert done.stdout == paths.statusline_txt.read_text()
    assert done.stdout.startswith("claude 5h 42% ↻2h0") and "wk ~61%" in done.stdout
    assert "gemini" not in done.stdout  # nothing measured there: no segment


def test_format_fields_colour_and_agent(tmp_path: Path) -> None:
    _publish(tmp_path, datetime.now(timezone.utc))
    fmt = "{agent}|{5h}|{weekly}|{reset}|{runs-out}|{burn}|{provenance}|{weekly_provenance}|{cost}"
    out = _statusline(tmp_path, "--format", fmt).stdout.strip()
    parts = out.split("|")
    assert parts[0] == "claude" and parts[1] == "42%" and parts[2] == "~61%"
    assert parts[3].startswith("2h0") and parts[4] in ("1h29m", "1h30m")
    assert parts[5:] == ["$2.25/h", "official", "plan", "$1.50"]
    coloured = _statusline(tmp_path, "--format", "{5h}", "--color").stdout
    assert "\033[32m42%\033[0m" in coloured
    gem = _statusline(tmp_path, "--agent", "gemini", "--format", "{agent} {5h}").stdout
    assert gem.strip() == "gemini ?"  # unknown is "?", never 0 %


def test_unknown_percent_is_never_zero() -> None:
    now = datetime.now(timezone.utc)
    line = render(_snapshot(now, percent=None, provenance="unknown").to_dict(), None,
                  now.timestamp())
    assert "5h ?" in line and "0%" not in line


def test_stale_and_not_running_markers(tmp_path: Path) -> None:
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    paths = _publish(tmp_path, old)
    os.utime(paths.statusline_txt, (old.timestamp(), old.timestamp()))
    assert _statusline(tmp_path).stdout.startswith("stale 10m · claude")
    assert _statusline(tmp_path, "--format", "{5h}").stdout.strip() == "stale 10m · 42%"
    paths.lock_file.write_text(f"{_dead_pid()}\n")
    assert _statusline(tmp_path).stdout.strip() == "tokend: not running"
    paths.lock_file.unlink()
    assert _statusline(tmp_path).stdout.strip() == "tokend: not running"


def test_corrupt_status_json_gives_a_marker_not_a_traceback(tmp_path: Path) -> None:
    paths = _publish(tmp_path, datetime.now(timezone.utc))
    paths.status_json.write_text('{"version": 1, "agents": [')
    done = _statusline(tmp_path, "--format", "{5h}")
    assert done.returncode == 0 and done.stdout.strip() == "tokend: no status yet"
    assert not done.stderr
    paths.statusline_txt.unlink()
    assert _statusline(tmp_path).stdout.strip() == "tokend: no status yet"


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    done = _statusline(tmp_path, "--bogus")
    assert done.returncode == 2 and "unknown argument" in done.stderr
    assert "--format" in _statusline(tmp_path, "--help").stdout


def test_runtime_dir_matches_paths() -> None:
    for env in ({"TOKEND_HOME": "~/x/../y"}, {"XDG_RUNTIME_DIR": "/run/user/7"},
                {"HOME": "/home/z", "XDG_CACHE_HOME": "/c"}):
        assert runtime_dir(env) == str(Paths.from_env(env).runtime_dir), env


# -- Claude Code stdin ----------------------------------------------------------------


def _claude_payload(now: float, **over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "session_id": "5b1f/../6c2e", "cwd": "/home/dev/secret-project",
        "transcript_path": "/home/dev/.claude/projects/p/s.jsonl",
        "model": {"id": "claude-opus-4-6", "display_name": "Opus 4.6"},
        "cost": {"total_cost_usd": 0.4127}, "context_window": {"used_percentage": 12},
        "rate_limits": {
            "five_hour": {"used_percentage": 37.5, "resets_at": int(now + 3 * 3600 + 600)},
            "seven_day": {"used_percentage": 61.0, "resets_at": int(now + 86400)},
        },
    }
    payload.update(over)
    return payload


def test_claude_stdin_spools_the_official_limits_and_prints_the_session(tmp_path: Path) -> None:
    _publish(tmp_path, datetime.now(timezone.utc))
    now = time.time()
    done = _statusline(tmp_path, stdin=json.dumps(_claude_payload(now)).encode())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("Opus 4.6 · $0.41 · ctx 12% · 5h 38% ↻3h")
    assert done.stdout.strip().endswith("wk 61%")
    spooled = list((tmp_path / "run" / "spool").glob("*.json"))
    assert [p.name for p in spooled] == ["claude-5b1f6c2e.json"]  # no path tricks in the name
    record = json.loads(spooled[0].read_text())
    assert record["kind"] == "claude_statusline" and record["version"] == 1
    assert set(record["payload"]) == {"session_id", "transcript_path", "rate_limits"}
    assert "secret-project" not in spooled[0].read_text()
    # the same session replaces its file: the spool stays bounded without a daemon
    _statusline(tmp_path, stdin=json.dumps(_claude_payload(now)).encode())
    assert len(list((tmp_path / "run" / "spool").iterdir())) == 1


def test_claude_stdin_without_rate_limits_uses_the_snapshot(tmp_path: Path) -> None:
    _publish(tmp_path, datetime.now(timezone.utc))
    payload = _claude_payload(time.time())
    del payload["rate_limits"]
    out = _statusline(tmp_path, stdin=json.dumps(payload).encode()).stdout.strip()
    assert out.startswith("Opus 4.6 · $0.41 · ctx 12% · 5h 42% ↻2h")
    assert not (tmp_path / "run" / "spool").exists()


def test_chain_runs_the_previous_command_with_the_same_stdin(tmp_path: Path) -> None:
    _publish(tmp_path, datetime.now(timezone.utc))
    previous = (f"{sys.executable} -c \"import sys, json; "
                f"print('mine:' + json.load(sys.stdin)['model']['display_name'])\"")
    done = _statusline(tmp_path, "--chain", previous,
                       stdin=json.dumps(_claude_payload(time.time())).encode())
    assert done.stdout.startswith("mine:Opus 4.6 | Opus 4.6 · $0.41"), done.stdout
    sep = _statusline(tmp_path, "--chain", "echo left", "--join", " :: ").stdout
    assert sep.startswith("left :: claude 5h 42%")


def test_two_accounts_of_one_agent_are_told_apart() -> None:
    from dataclasses import replace

    now = datetime.now(timezone.utc)
    snap = _snapshot(now)
    work = replace(snap.agents[0], account="~/.claude-work")
    line = render(replace(snap, agents=(snap.agents[0], work)).to_dict(), None, now.timestamp())
    assert line.startswith("claude(~/.claude) 5h 42%")
    assert " · claude(~/.claude-work) 5h 42%" in line


def test_an_agent_with_only_a_daily_quota_shows_that_window() -> None:
    """Gemini has no 5-hour or weekly window: the line names its daily quota instead
    of printing "5h ? wk ?" as if two windows were unknown."""
    from dataclasses import replace

    now = datetime.now(timezone.utc)
    snap = _snapshot(now)
    daily = WindowState(
        kind="daily", start=now - timedelta(hours=3), resets_at=now + timedelta(hours=21),
        used_tokens=0, used_cost=None, requests=120, percent=12.0, provenance="learned",
    )
    gemini = replace(snap.agents[1], windows=(daily,))
    line = render(replace(snap, agents=(snap.agents[0], gemini)).to_dict(), None, now.timestamp())
    assert line.endswith(" · gemini daily ~12%")
    assert "gemini 5h" not in line
    custom = render(replace(snap, agents=(gemini,)).to_dict(), "{agent} {5h}", now.timestamp())
    assert custom == "gemini ?"  # a user's own format keeps its meaning

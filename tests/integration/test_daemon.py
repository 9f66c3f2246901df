"""The daemon as a subprocess over a temp TOKEND_HOME and fake agent homes.

Each test writes Claude / Codex log lines in the agents' real formats and watches
what the daemon publishes (``status.json``), so the whole chain runs: watchdog ->
tailer -> parsers -> store -> state -> publish.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_harness import (
    FakeMachine,
    agent_window,
    append,
    claude_line,
    fake_machine,
    now_iso,
    wait_for,
)
from tokend.errors import DaemonNotRunning, TokendError
from tokend.sources.compressed import zstd_module

zstd = zstd_module()

# -- helpers ------------------------------------------------------------------------


class Env(FakeMachine):
    """A fake machine whose daemons run without tray and notifications."""

    @property
    def store(self) -> Path:
        return self.tokend / "data" / "usage.sqlite3"

    def start(self, *extra: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return super().start("--no-tray", "--no-notify", *extra, **kwargs)

    def daemon_pid(self) -> int | None:
        data = self.read_status()
        return (data or {}).get("daemon", {}).get("pid") if data else None


@pytest.fixture
def fake() -> Iterator[Env]:
    with fake_machine(Env, "tkd") as env:
        yield env


def codex_lines(totals: list[int], session: str | None = None) -> str:
    """A Codex rollout: session_meta, turn_context, then cumulative token_count events."""
    sid = session or str(uuid.uuid4())
    out = [
        {"timestamp": now_iso(), "type": "session_meta",
         "payload": {"id": sid, "timestamp": now_iso(), "cwd": "/home/dev/acme",
                     "originator": "codex_cli_rs", "cli_version": "0.50.0"}},
        {"timestamp": now_iso(), "type": "turn_context",
         "payload": {"cwd": "/home/dev/acme", "model": "gpt-5-codex"}},
    ]
    previous = 0
    for total in totals:
        last = total - previous
        previous = total
        out.append({
            "timestamp": now_iso(), "type": "event_msg",
            "payload": {"type": "token_count", "info": {
                "total_token_usage": {"input_tokens": total, "cached_input_tokens": 0,
                                      "output_tokens": 0, "reasoning_output_tokens": 0,
                                      "total_tokens": total},
                "last_token_usage": {"input_tokens": last, "cached_input_tokens": 0,
                                     "output_tokens": 0, "reasoning_output_tokens": 0,
                                     "total_tokens": last},
                "model_context_window": 272000}},
        })
    return "".join(json.dumps(o) + "\n" for o in out)


def used(fake: Env, agent: str = "claude") -> int:
    return int(agent_window(fake.read_status(), agent).get("used_tokens") or 0)


def wait_used(fake: Env, expected: int, agent: str = "claude", timeout: float = 10) -> None:
    wait_for(lambda: used(fake, agent) == expected, timeout,
             lambda: f"{agent} used {used(fake, agent)}, expected {expected}")


def session_file(fake: Env, project: str = "-home-dev-acme", session: str = "s1") -> Path:
    return fake.claude / "projects" / project / f"{session}.jsonl"


def store_totals(db: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(db)
    try:
        row = con.execute(
            "SELECT COUNT(*), COALESCE(SUM(input + output + cache_read + cache_write_5m "
            "+ cache_write_1h), 0), COUNT(DISTINCT dedup_key) FROM events"
        ).fetchone()
    finally:
        con.close()
    return int(row[0]), int(row[1]), int(row[2])


# -- live tailing -------------------------------------------------------------------


def test_appended_lines_show_in_status_json(fake: Env) -> None:
    log = session_file(fake)
    append(log, claude_line(100))
    fake.start()
    wait_used(fake, 110)
    append(log, claude_line(200))
    wait_used(fake, 320)
    # half a line waits for its newline, then counts once
    line = claude_line(1000)
    append(log, line[:50])
    time.sleep(0.3)
    assert used(fake) == 320
    append(log, line[50:])
    wait_used(fake, 1330)
    assert fake.read_status()["daemon"]["last_ingest_at"]  # type: ignore[index]


def test_new_session_folder_and_subagent_files_are_picked_up(fake: Env) -> None:
    (fake.claude / "projects").mkdir(parents=True)
    fake.start()
    append(session_file(fake, "-home-dev-new", "s2"), claude_line(40))
    wait_used(fake, 50)
    sub = fake.claude / "projects" / "-home-dev-new" / "s2" / "subagents" / "agent-1.jsonl"
    append(sub, claude_line(90, session="s2", isSidechain=True))
    wait_used(fake, 150)


def test_roots_created_after_start_are_watched(fake: Env) -> None:
    # Neither CLAUDE_CONFIG_DIR nor CODEX_HOME exists when the daemon starts.
    fake.start()
    assert not fake.claude.exists()
    append(session_file(fake), claude_line(10))
    wait_used(fake, 20)
    rollout = fake.codex / "sessions" / "2026" / "11" / "23" / (
        f"rollout-2026-11-23T10-00-00-{uuid.uuid4()}.jsonl")
    append(rollout, codex_lines([500, 1200]))
    wait_used(fake, 1200, agent="codex")
    # and later appends to the new root are live too
    append(session_file(fake), claude_line(30))
    wait_used(fake, 60)


def test_a_root_removed_and_created_again_is_watched_again(fake: Env) -> None:
    append(session_file(fake), claude_line(10))
    fake.start()
    wait_used(fake, 20)
    subprocess.run(["rm", "-rf", str(fake.claude)], check=True)
    time.sleep(0.3)
    append(session_file(fake, session="s9"), claude_line(30))
    wait_used(fake, 60)  # the old events stay in the store; the new file counts


def test_truncated_and_atomically_replaced_files(fake: Env) -> None:
    log = session_file(fake)
    append(log, claude_line(100) + claude_line(100))
    fake.start()
    wait_used(fake, 220)
    # Truncation: the file shrinks below the offset and is read again from 0; the
    # events already stored stay (dedup keys), the new line counts.
    log.write_text(claude_line(5))
    wait_used(fake, 235)
    # Atomic replace (temp file in the same folder + os.replace) arrives as a move.
    content = log.read_text() + claude_line(7)
    tmp = log.with_suffix(".tmp")
    tmp.write_text(content)
    tmp.replace(log)
    wait_used(fake, 252)


def test_codex_compressing_rollouts_live_counts_each_once(fake: Env) -> None:
    """Codex's opt-in cold storage while the daemon runs: a rollout it read is
    rewritten as ``.jsonl.zst`` and the plain file removed; a rollout it never saw
    arrives compressed."""
    day = fake.codex / "sessions" / "2026" / "11" / "23"
    seen = day / f"rollout-2026-11-23T10-00-00-{uuid.uuid4()}.jsonl"
    append(seen, codex_lines([1000, 1500]))
    fake.start()
    wait_used(fake, 1500, agent="codex")
    seen.with_name(seen.name + ".zst").write_bytes(zstd.compress(seen.read_bytes()))
    seen.unlink()
    unseen = day / f"rollout-2026-11-23T11-00-00-{uuid.uuid4()}.jsonl.zst"
    unseen.write_bytes(zstd.compress(codex_lines([700]).encode()))
    wait_used(fake, 2200, agent="codex")
    time.sleep(0.5)  # the compressed copy of the first would show by now
    assert used(fake, "codex") == 2200
    assert store_totals(fake.store)[0] == 3


def test_kill_9_mid_ingest_then_restart_equals_a_clean_scan(fake: Env) -> None:
    projects = fake.claude / "projects"
    for n in range(12):
        lines = 3000 if n % 3 == 0 else 1000
        append(projects / f"-p{n}" / f"s{n}.jsonl",
               "".join(claude_line(i % 50 + 1, session=f"s{n}") for i in range(lines)))
    proc = fake.spawn("--no-tray", "--no-notify")
    # Kill while the initial scan is writing: some files committed, some half.
    wait_for(lambda: fake.store.exists() and _events_or_zero(fake.store) > 0, 20)
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    partial = _events_or_zero(fake.store)
    fake.start()
    expected_clean = _clean_scan_totals(fake)
    assert 0 < partial < expected_clean[0]  # the kill really landed mid-ingest
    wait_for(lambda: store_totals(fake.store) == expected_clean, 30,
             lambda: f"{store_totals(fake.store)} != {expected_clean}")


def _events_or_zero(db: Path) -> int:
    try:
        return store_totals(db)[0]
    except sqlite3.Error:
        return 0


def _clean_scan_totals(fake: Env) -> tuple[int, int, int]:
    clean = fake.base / "clean"
    env = dict(fake.env, TOKEND_HOME=str(clean))
    done = subprocess.run([sys.executable, "-m", "tokend", "scan", "--quiet", "--json"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return store_totals(clean / "data" / "usage.sqlite3")


# -- publishing -------------------------------------------------------------------------


def test_parallel_statusline_calls_never_see_a_partial_file(fake: Env) -> None:
    log = session_file(fake)
    append(log, claude_line(1))
    fake.start()
    wait_used(fake, 11)  # the first publish comes before the first scan
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            append(log, claude_line(1))
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    bad: list[str] = []
    try:
        # in-process readers: every read of status.json parses
        for _ in range(300):
            text = fake.status_json.read_text()
            json.loads(text)
            txt = (fake.run_dir / "statusline.txt").read_text()
            if not txt.endswith("\n") or not txt.startswith("claude"):
                bad.append(txt)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tokend", "statusline", "--format", "{agent}:{5h}"],
                env=fake.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            for _ in range(100)
        ]
        outs = [p.communicate(timeout=30) for p in procs]
    finally:
        stop.set()
        thread.join()
    assert not bad
    for (out, err), proc in zip(outs, procs, strict=True):
        assert proc.returncode == 0, err
        assert out.decode().startswith("claude:"), (out, err)


def test_claude_statusline_stdin_makes_provenance_official(fake: Env) -> None:
    log = session_file(fake)
    append(log, claude_line(100))
    fake.start()
    wait_used(fake, 110)
    assert agent_window(fake.read_status(), "claude")["provenance"] != "official"
    now = time.time()
    payload = {
        "session_id": "s1", "transcript_path": str(log), "cwd": "/home/dev/acme",
        "model": {"id": "claude-opus-4-6", "display_name": "Opus 4.6"},
        "cost": {"total_cost_usd": 0.41},
        "context_window": {"used_percentage": 12},
        "rate_limits": {
            "five_hour": {"used_percentage": 37.5, "resets_at": int(now + 7200)},
            "seven_day": {"used_percentage": 61.0, "resets_at": int(now + 3 * 86400)},
        },
    }
    done = fake.cli("statusline", stdin=json.dumps(payload))
    assert done.returncode == 0, done.stderr
    assert "5h 38%" in done.stdout and "wk 61%" in done.stdout and "$0.41" in done.stdout
    assert "ctx 12%" in done.stdout
    wait_for(lambda: agent_window(fake.read_status(), "claude")["provenance"] == "official", 10)
    five = agent_window(fake.read_status(), "claude")
    assert five["percent"] == pytest.approx(37.5, abs=0.01)
    assert agent_window(fake.read_status(), "claude", "weekly")["provenance"] == "official"
    assert not list((fake.run_dir / "spool").glob("*.json"))  # consumed


# -- control socket ----------------------------------------------------------------------


def test_control_socket_commands(fake: Env) -> None:
    append(session_file(fake), claude_line(10))
    fake.start()
    status = fake.request("status")
    assert status["version"] == 1 and status["daemon"]["pid"] == fake.daemon_pid()
    assert fake.request("ping")["pid"] == fake.daemon_pid()
    paused = fake.request("pause", minutes=30)
    assert paused["paused_until"]
    wait_for(lambda: (fake.read_status() or {}).get("alerts_paused_until"), 5)
    fake.request("resume")
    wait_for(lambda: (fake.read_status() or {}).get("alerts_paused_until") is None, 5)
    # refresh picks up a change even without a file event (rescan)
    assert fake.request("refresh")["done"] is True
    now = time.time()
    fake.request("observe", kind="claude_statusline", payload={
        "session_id": "x", "rate_limits": {
            "five_hour": {"used_percentage": 80, "resets_at": int(now + 3600)}}})
    wait_for(lambda: agent_window(fake.read_status(), "claude").get("percent") == 80, 5)
    with pytest.raises(TokendError, match="refused"):
        fake.request("observe", kind="nonsense", payload={})
    assert fake.request("reload")["queued"] is True
    # a request with another protocol version is refused, not crashed on
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(fake.run_dir / "tokend.sock"))
    sock.sendall(b'{"version": 99, "cmd": "status"}\nnot json\n')
    replies = b""
    while replies.count(b"\n") < 2:
        replies += sock.recv(4096)
    sock.close()
    first, second = (json.loads(r) for r in replies.splitlines())
    assert first["ok"] is False and "version" in first["error"]
    assert second["ok"] is False
    fake.request("stop")
    fake.procs[-1].wait(5)
    with pytest.raises(DaemonNotRunning):
        fake.request("status")


def test_sigterm_stops_within_two_seconds_and_cleans_up(fake: Env) -> None:
    proc = fake.start()
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(5)
    assert time.monotonic() - started < 2.0
    assert proc.returncode == 0
    assert not fake.status_json.exists() and not (fake.run_dir / "tokend.sock").exists()
    done = fake.cli("statusline")
    assert done.stdout.strip() == "tokend: not running"


def test_sighup_reloads_the_config(fake: Env) -> None:
    append(session_file(fake), claude_line(10))
    proc = fake.start()
    assert agent_window(fake.read_status(), "claude").get("percent") is None
    config = fake.tokend / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[claude]\nplan = \"custom\"\nfive_hour_tokens = 100\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: agent_window(fake.read_status(), "claude").get("percent") is not None, 10)
    # a broken file is refused and the daemon keeps running
    config.write_text("[claude\n")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None
    assert "keeping the old configuration" in (fake.tokend / "log" / "tokend.log").read_text()


def test_one_instance_per_home(fake: Env) -> None:
    fake.start()
    second = fake.cli("run", "--no-tray", "--no-notify", timeout=30)
    assert second.returncode == 1
    assert "already runs" in second.stderr


# -- bad input ---------------------------------------------------------------------------


def test_stale_lock_and_left_over_socket_and_corrupt_status(fake: Env) -> None:
    fake.run_dir.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (fake.run_dir / "tokend.lock").write_text(f"{dead.pid}\n")
    import socket

    left = socket.socket(socket.AF_UNIX)
    left.bind(str(fake.run_dir / "tokend.sock"))
    left.close()  # the file stays, nobody listens
    fake.status_json.write_text('{"version": 1, "agents": [')
    assert fake.cli("statusline").stdout.strip() == "tokend: not running"
    assert "not running" in _status_line(fake)
    append(session_file(fake), claude_line(10))
    fake.start()
    wait_used(fake, 20)
    assert fake.request("ping")["pid"] == fake.daemon_pid()
    assert (fake.run_dir / "tokend.lock").read_text().split()[0] == str(fake.daemon_pid())


def _status_line(fake: Env) -> str:
    code = (
        "from tokend.context import Context; from tokend.daemon import daemon_status_line; "
        "print(daemon_status_line(Context()))"
    )
    return subprocess.run([sys.executable, "-c", code], env=fake.env, capture_output=True,
                          text=True, check=True).stdout


def test_daemon_status_line_says_pid_uptime_and_last_ingest(fake: Env) -> None:
    assert "not running" in _status_line(fake)
    append(session_file(fake), claude_line(10))
    fake.start()
    line = _status_line(fake)
    assert f"pid {fake.daemon_pid()}" in line and "up " in line and "last ingest" in line


def test_start_stop_restart_in_the_background(fake: Env) -> None:
    started = fake.cli("start", "--no-tray", "--no-notify")
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("pid ")[1].split(")")[0])
    try:
        assert fake.request("ping")["pid"] == pid
        # detached: its own session, not our process group
        assert os.getsid(pid) == pid
        again = fake.cli("start", "--no-tray", "--no-notify")
        assert "already runs" in again.stdout
        restarted = fake.cli("restart", "--no-tray", "--no-notify")
        assert restarted.returncode == 0, restarted.stderr
        new_pid = fake.request("ping")["pid"]
        assert new_pid != pid
        stopped = fake.cli("stop")
        assert stopped.returncode == 0 and f"pid {new_pid}" in stopped.stdout
        with pytest.raises(DaemonNotRunning):
            fake.request("ping")
        assert "not running" in fake.cli("stop").stdout
    finally:
        _kill_daemon(fake)


def _kill_daemon(fake: Env) -> None:
    """Leave no background daemon behind, whatever failed."""
    from tokend.daemon import lock_holder

    pid = lock_holder(fake.run_dir / "tokend.lock")
    if pid and pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

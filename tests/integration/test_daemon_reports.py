"""Reports beside a running daemon: ``sync`` and daemon-rendered reports.

A report run while the daemon is up asks it over the control socket instead of
walking every log file (``sync``) or even importing the reporting code (``report``,
:mod:`tokend.report_client`). These tests run a real daemon over a fake machine and
check that what it answers is what a run without it prints, that it includes an
append made a moment before, and that it declines whatever it cannot vouch for.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_harness import FakeMachine, append, claude_line, fake_machine
from tests.daemon_harness import wait_for as wait_until
from tokend.errors import TokendError


class Env(FakeMachine):
    def start(self, *extra: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return super().start("--no-tray", "--no-notify", *extra, **kwargs)

    def session(self, name: str = "s1") -> Path:
        return self.claude / "projects" / "-home-dev-acme" / f"{name}.jsonl"

    def served(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Only the fast path: exit 0 and the text when the daemon rendered it, 1 if not."""
        code = ("import sys; from tokend.report_client import print_served; "
                "sys.exit(0 if print_served(sys.argv[1:]) else 1)")
        return subprocess.run(
            [sys.executable, "-c", code, *argv], env={**self.env, **env},
            capture_output=True, text=True, timeout=30, cwd=self.base, check=False,
        )

    def report(self, *argv: str, **env: str) -> Any:
        return self.request("report", argv=list(argv), env={**self.env, **env},
                            home=str(self.home), tty=False)

    def stored_input(self) -> int:
        con = sqlite3.connect(self.tokend / "data" / "usage.sqlite3")
        try:
            return int(con.execute("SELECT COALESCE(SUM(input), 0) FROM events").fetchone()[0])
        finally:
            con.close()


@pytest.fixture
def fake() -> Iterator[Env]:
    with fake_machine(Env, "tkr") as env:
        yield env


def daily_input(text: str) -> int:
    return sum(day["inputTokens"] for day in json.loads(text)["daily"])


def test_a_served_report_is_the_report_a_run_without_the_daemon_prints(fake: Env) -> None:
    append(fake.session("s1"), claude_line(100) + claude_line(250))
    append(fake.session("s2"), claude_line(40, session="s2"))
    proc = fake.start()
    for argv in (["daily", "--json"], ["monthly", "--breakdown"], ["sessions", "--csv"],
                 ["weekly", "--json", "--start-of-week", "monday"]):
        served = fake.served(*argv)
        assert served.returncode == 0, served.stderr
        assert served.stdout == fake.cli(*argv).stdout  # the CLI takes the same path
        fake.stop(proc)
        alone = fake.cli(*argv)
        assert alone.returncode == 0, alone.stderr
        assert served.stdout == alone.stdout, argv
        proc = fake.start()
    assert daily_input(fake.served("daily", "--json").stdout) == 390


def test_blocks_are_served_too(fake: Env) -> None:
    append(fake.session("s1"), claude_line(100) + claude_line(250))
    fake.start()
    served = fake.served("blocks", "--json")
    assert served.returncode == 0, served.stderr
    table = fake.served("blocks")
    assert table.returncode == 0 and "370" in table.stdout, table.stdout
    fake.stop(fake.procs[-1])
    alone = fake.cli("blocks", "--json")
    assert alone.returncode == 0, alone.stderr

    def stable(text: str) -> list[tuple[Any, ...]]:  # what does not move with the clock
        return [(b["id"], b["entries"], b["totalTokens"], b["isGap"])
                for b in json.loads(text)["blocks"]]

    assert stable(served.stdout) == stable(alone.stdout)
    assert stable(served.stdout)[0][1:] == (2, 370, False)


def test_a_served_report_is_in_the_callers_time_zone(fake: Env) -> None:
    append(fake.session("s1"), claude_line(100))
    fake.start()  # the daemon runs in UTC
    tokyo = {"TZ": "Asia/Tokyo"}
    served = {argv: fake.served(*argv, **tokyo).stdout for argv in (("blocks",), ("daily",))}
    fake.stop(fake.procs[-1])
    for argv, text in served.items():
        alone = subprocess.run(
            [sys.executable, "-m", "tokend", *argv], env={**fake.env, **tokyo},
            capture_output=True, text=True, timeout=30, cwd=fake.base, check=False,
        )
        assert alone.returncode == 0, alone.stderr
        if argv == ("blocks",):  # the active block's minutes left move with the clock
            text, local = text.splitlines()[:3], alone.stdout.splitlines()[:3]
        else:
            local = alone.stdout
        assert text == local, argv


def test_status_is_served_in_the_callers_time_zone(fake: Env) -> None:
    append(fake.session("s1"), claude_line(100))
    fake.start()  # the daemon runs in UTC

    def clocks(text: str) -> list[str]:  # the wall-clock times of the table, not the ages
        table = text.split("\n", 1)[1]  # past the daemon line (uptime, last ingest)
        return re.findall(r"\b\d\d:\d\d\b", table)

    tokyo = fake.served("status", TZ="Asia/Tokyo")
    utc = fake.served("status")
    assert tokyo.returncode == 0 and utc.returncode == 0, tokyo.stderr
    assert clocks(tokyo.stdout) and clocks(tokyo.stdout) != clocks(utc.stdout)
    served_json = json.loads(fake.served("status", "--json").stdout)
    fake.stop(fake.procs[-1])
    alone = subprocess.run(
        [sys.executable, "-m", "tokend", "status"], env={**fake.env, "TZ": "Asia/Tokyo"},
        capture_output=True, text=True, timeout=30, cwd=fake.base, check=False,
    )
    assert clocks(tokyo.stdout) == clocks(alone.stdout)
    local_json = json.loads(fake.cli("status", "--json").stdout)

    def windows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(a["agent"], w["kind"], w["used_tokens"], w["provenance"],
                 None if w["rolling"] else w["start"])  # a rolling week starts now - 7 d
                for a in data["agents"] for w in a["windows"]]

    assert windows(served_json) == windows(local_json) != []


def test_an_append_just_before_the_report_is_in_it(fake: Env) -> None:
    path = fake.session()
    append(path, claude_line(100))
    fake.start()
    append(path, claude_line(20))  # read through the watcher: the file is now a live one
    wait_until(lambda: fake.stored_input() == 120, why=fake.log)
    for tokens in (7, 11, 13):
        append(path, claude_line(tokens))
        before = fake.stored_input()
        assert fake.request("sync", env=fake.env, home=str(fake.home))["current"] is True
        assert fake.stored_input() == before + tokens
    assert daily_input(fake.report("daily", "--json")["text"]) == 151


def test_an_append_to_a_file_only_the_start_up_scan_read_is_in_the_report(
    fake: Env, tmp_path: Path
) -> None:
    """The start-up scan, not a watcher event, read this live session. The append goes
    through a hard link in a folder nobody watches, so no event ever comes: only the
    re-read of recently written files before a sync can see it (this was missed
    whenever the watcher's event came late)."""
    path = fake.session()
    append(path, claude_line(100))
    fake.start()
    assert daily_input(fake.report("daily", "--json")["text"]) == 100
    link = tmp_path / "elsewhere" / "same-inode.jsonl"
    link.parent.mkdir()
    link.hardlink_to(path)
    append(link, claude_line(25))
    assert daily_input(fake.report("daily", "--json")["text"]) == 125


def test_the_daemon_declines_what_it_cannot_vouch_for(fake: Env, tmp_path: Path) -> None:
    append(fake.session(), claude_line(100))
    fake.start()
    other = tmp_path / "other-claude"
    append(other / "projects" / "p" / "x.jsonl", claude_line(5))
    # A shell pointing at a Claude folder the daemon does not watch scans itself.
    assert fake.request("sync", env={**fake.env, "CLAUDE_CONFIG_DIR": str(other)},
                        home=str(fake.home))["current"] is False
    assert fake.report("daily", "--json", CLAUDE_CONFIG_DIR=str(other)) is None
    assert fake.served("daily", "--json", CLAUDE_CONFIG_DIR=str(other)).returncode == 1
    alone = subprocess.run(
        [sys.executable, "-m", "tokend", "daily", "--json"],
        env={**fake.env, "CLAUDE_CONFIG_DIR": f"{fake.claude},{other}"}, capture_output=True,
        text=True, timeout=30, cwd=fake.base, check=False,
    )
    assert alone.returncode == 0 and daily_input(alone.stdout) == 105
    # A command line its own parser refuses is left to the caller, which says why.
    assert fake.report("daily", "--bogus") is None
    assert fake.report("daily", "--help") is None
    with pytest.raises(TokendError, match="not a date"):
        fake.report("daily", "--since", "2026-99-01")
    bad = fake.cli("daily", "--since", "2026-99-01")
    assert bad.returncode == 2 and "not a date" in bad.stderr
    refused = fake.cli("daily", "--bogus")
    assert refused.returncode == 2 and "unrecognized arguments: --bogus" in refused.stderr
    with pytest.raises(TokendError, match="argv"):
        fake.request("report", argv="daily", env=fake.env, home=str(fake.home))


def test_with_no_daemon_the_fast_path_steps_aside(fake: Env) -> None:
    append(fake.session(), claude_line(100))
    assert fake.served("daily", "--json").returncode == 1
    alone = fake.cli("daily", "--json")
    assert alone.returncode == 0 and daily_input(alone.stdout) == 100


def test_a_stopped_daemon_costs_a_report_two_seconds_not_twenty_five(fake: Env) -> None:
    """A daemon that is stopped (SIGSTOP) or hung still has its socket, and the kernel
    queues a request; the report used to wait for the daemon's answer (15 s), then for
    its sync (11 s), and only then ran on its own."""
    append(fake.session(), claude_line(100) + claude_line(250))
    proc = fake.start()
    served = fake.served("daily", "--json")
    assert served.returncode == 0, served.stderr
    proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        alone = fake.cli("daily", "--json")
        took = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGCONT)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout == served.stdout
    assert took < 8, took  # the 2 s ping, once, and the report's own run
    assert alone.stderr.count("did not answer within 2 s; reporting without it") == 1
    assert "tokend restart" in alone.stderr
    # Running again, it answers as before.
    assert fake.served("daily", "--json").stdout == served.stdout


def test_a_price_edit_while_the_daemon_runs_reprices_what_it_serves(fake: Env) -> None:
    path = fake.session()
    append(path, claude_line(100_000, output_tokens=0))
    fake.start()

    def cost() -> float:
        text = fake.report("daily", "--json")["text"]
        return float(json.loads(text)["totals"]["totalCost"])

    before = cost()
    prices = fake.tokend / "config" / "prices.toml"
    prices.parent.mkdir(parents=True, exist_ok=True)
    # $100 per million input tokens and nothing for output, for claude_line's model.
    prices.write_text('[models."claude-sonnet-4-5-20250929"]\ninput = 100.0\noutput = 0.0\n',
                      encoding="utf-8")
    assert before != pytest.approx(10.0)
    assert cost() == pytest.approx(10.0)
    append(path, claude_line(50_000, output_tokens=0))  # priced by the daemon's own tailer
    assert cost() == pytest.approx(15.0)
    fake.stop(fake.procs[-1])
    alone = json.loads(fake.cli("daily", "--json").stdout)
    assert alone["totals"]["totalCost"] == pytest.approx(15.0)


def test_a_first_run_reads_a_long_history_in_a_child_process(fake: Env) -> None:
    # 27 MB in 8 sessions: over the 16 MB from which a scan forks parse workers.
    pad = "x" * 2000
    for n in range(8):
        line = claude_line(3, session=f"s{n}", output_tokens=0)
        padded = line.replace('"text": "ok"', f'"text": "{pad}"')
        append(fake.session(f"s{n}"), padded * 1250)
    expected = 8 * 3  # each session repeats one response 1250 times: counted once
    fake.start()
    wait_until(lambda: "initial scan done" in fake.log(), timeout=60, why=fake.log)
    assert "first run: reading 27 MB of history in a child process" in fake.log()
    assert fake.stored_input() == expected
    served = fake.served("daily", "--json")
    assert served.returncode == 0 and daily_input(served.stdout) == expected


def test_stopping_the_daemon_during_its_first_load_stops_the_child(fake: Env) -> None:
    pad = "x" * 2000
    for n in range(8):
        line = claude_line(3, session=f"s{n}", output_tokens=0)
        append(fake.session(f"s{n}"), line.replace('"text": "ok"', f'"text": "{pad}"') * 1250)
    proc = fake.start()  # published what the store holds: the first load comes next
    # Hold the store's write lock, so the child's scan waits for it and is caught alive.
    lock = sqlite3.connect(fake.tokend / "data" / "usage.sqlite3", timeout=10)
    lock.execute("BEGIN IMMEDIATE")
    try:
        def children() -> list[int]:
            found: list[int] = []
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    found += [int(p) for p in (task / "children").read_text().split()]
            return found

        child = wait_until(children, timeout=30, why=fake.log)[0]
        assert b"tokend" in Path(f"/proc/{child}/cmdline").read_bytes()
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{child}").exists()
                   or b"Z" in Path(f"/proc/{child}/stat").read_bytes().split(b")")[1][:3],
                   timeout=10, why=fake.log)
    finally:
        lock.rollback()
        lock.close()
    assert proc.wait(15) == 0, fake.log()
    assert "initial scan done" not in fake.log()  # it was not
    fake.start()  # a later start reads everything
    wait_until(lambda: "initial scan done" in fake.log(), timeout=60, why=fake.log)
    assert fake.stored_input() == 8 * 3

"""A big scan: parse workers and the bulk load must leave the store exactly as the
plain sequential scan does, and a scan cut short must leave it usable.

Real fixture trees of all three agents (streamed copies, sidechain replays read
before and after their primary, Codex re-emits, legacy Gemini whole files, a
malformed line, a partial last line), a real SQLite file, real forked workers. The
size thresholds are lowered so a small tree takes the big-scan paths.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.logbuilders import append
from tokend import store as store_module
from tokend import tail, tail_pool
from tokend.sources.base import Root, Source
from tokend.sources.claude import SOURCE as CLAUDE
from tokend.sources.codex import SOURCE as CODEX
from tokend.sources.gemini import SOURCE as GEMINI
from tokend.store import Store
from tokend.tail import Tailer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def roots(tmp_path: Path) -> list[tuple[Source, Root]]:
    """All three agents, the Claude tree twice (a resumed session's copies count once)."""
    claude = tmp_path / "claude" / "projects"
    shutil.copytree(FIXTURES / "claude" / "projects", claude)
    shutil.copytree(FIXTURES / "claude" / "projects", tmp_path / "claude-copy" / "projects")
    # A corrupt line and a line still being written: counted, and left for later.
    session = next(claude.glob("*/*.jsonl"))
    append(session, '{"type":"assistant","message":{"usage":', '{"type":"user"', newline=False)
    codex = tmp_path / "codex"
    shutil.copytree(FIXTURES / "codex" / "home", codex)
    gemini = tmp_path / "gemini"
    shutil.copytree(FIXTURES / "gemini" / "gemini-home", gemini)
    return [
        (CLAUDE, Root("claude", claude, "main")),
        (CLAUDE, Root("claude", tmp_path / "claude-copy" / "projects", "copy")),
        (CODEX, Root("codex", codex, "codex")),
        (GEMINI, Root("gemini", gemini, "gemini")),
    ]


def _dump(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    """Everything a scan writes, with file ids replaced by paths."""
    db = sqlite3.connect(path)
    try:
        events = db.execute(
            "SELECT e.dedup_key, e.shadow_key, e.rank, e.agent, e.root, e.session_id, "
            "e.project, e.model, e.ts, e.input, e.output, e.cache_read, e.cache_write_5m, "
            "e.cache_write_1h, e.reasoning, e.tools, e.sidechain, e.speed, e.cost, f.path "
            "FROM events e LEFT JOIN files f ON f.id = e.file_id ORDER BY e.dedup_key"
        ).fetchall()
        files = db.execute(
            "SELECT path, dev, ino, offset, size, mtime_ns, state, malformed FROM files "
            "ORDER BY path"
        ).fetchall()
        limits = db.execute(
            "SELECT agent, root, limit_id, window_minutes, used_percent, resets_at, "
            "observed_at, source, reached FROM limits ORDER BY 1, 2, 3, 4, 7, 8"
        ).fetchall()
        indexes = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name"
        ).fetchall()
        kv = db.execute("SELECT key FROM kv ORDER BY key").fetchall()
    finally:
        db.close()
    return events, files, limits, indexes, kv


def _scan(path: Path, roots: list[tuple[Source, Root]], workers: int) -> tail.ScanReport:
    with Store(path) as store:
        return Tailer(store, roots, cost_fn=lambda e: 0.5, clock=lambda: 0.0).scan(
            workers=workers
        )


def _sequential(tmp_path: Path, roots: list[tuple[Source, Root]]) -> Path:
    path = tmp_path / "sequential.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tail, "BULK_MIN_BYTES", 1 << 60)
        _scan(path, roots, workers=1)
    return path


def test_workers_and_bulk_load_store_what_a_sequential_scan_stores(
    tmp_path: Path, roots: list[tuple[Source, Root]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if tail_pool.available_workers() < 2:
        pytest.fail("this test needs two CPUs and fork; CI machines have both")
    expected = _sequential(tmp_path, roots)
    monkeypatch.setattr(tail, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(tail, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tail_pool, "TASK_BYTES", 2000)  # many small tasks, in flight at once
    report = _scan(tmp_path / "parallel.db", roots, workers=2)
    assert report.events > 0 and report.malformed >= 1 and not report.errors
    want, got = _dump(expected), _dump(tmp_path / "parallel.db")
    assert any(row[16] for row in want[0]), "the fixture has sidechain copies"
    assert got == want


def test_bulk_load_alone_applies_the_replay_rule_once(
    tmp_path: Path, roots: list[tuple[Source, Root]], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _sequential(tmp_path, roots)
    monkeypatch.setattr(tail, "BULK_MIN_BYTES", 0)
    _scan(tmp_path / "bulk.db", roots, workers=1)
    assert _dump(tmp_path / "bulk.db") == _dump(expected)


def test_second_scan_after_a_parallel_one_reads_nothing(
    tmp_path: Path, roots: list[tuple[Source, Root]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(tail, "PARALLEL_MIN_BYTES", 0)
    _scan(tmp_path / "s.db", roots, workers=2)
    again = _scan(tmp_path / "s.db", roots, workers=2)
    assert (again.bytes_read, again.events) == (0, 0)


def test_bulk_load_cut_short_is_finished_by_the_next_open(
    tmp_path: Path, roots: list[tuple[Source, Root]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan that dies after its first commit leaves whole batches and the mark; the
    next open rebuilds the indexes and applies the replay rule, and the next scan
    reads only what was not committed, so the store equals an uninterrupted one."""
    expected = _sequential(tmp_path, roots)
    monkeypatch.setattr(tail, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(tail, "BULK_GROUP_BYTES", 1)  # commit after every file
    path = tmp_path / "cut.db"
    store = Store(path)
    real_commit = store.commit_batch
    calls = 0

    def dying_commit(**kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise KeyboardInterrupt  # the user pressed ^C half-way
        real_commit(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "commit_batch", dying_commit)
    # _finish_bulk runs on the way out; make it fail too, as if the process died there.
    def dying_finish() -> None:
        raise sqlite3.OperationalError("killed")

    monkeypatch.setattr(store, "_finish_bulk", dying_finish)
    with pytest.raises(KeyboardInterrupt):
        Tailer(store, roots, cost_fn=lambda e: 0.5, clock=lambda: 0.0).scan()
    store.db.close()
    events, files, _limits, indexes, kv = _dump(path)
    assert events and files and ("bulk_load",) in kv
    assert ("events_session",) not in indexes  # dropped for the load, not yet rebuilt
    monkeypatch.undo()
    _scan(path, roots, workers=1)  # opening the store finishes the load first
    assert _dump(path) == _dump(expected)


def test_parallel_bulk_load_cut_while_rows_wait_loses_and_doubles_nothing(
    tmp_path: Path, roots: list[tuple[Source, Root]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load holds rows back until a group is committed. Cut short after some
    groups, with the next one's rows handed to SQLite but not committed, it keeps
    only the committed groups (offsets with their rows), leaves the indexes built,
    and the next scan reads the rest: the store equals an uninterrupted one."""
    if tail_pool.available_workers() < 2:
        pytest.fail("this test needs two CPUs and fork; CI machines have both")
    expected = _sequential(tmp_path, roots)
    monkeypatch.setattr(tail, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(tail, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tail, "BULK_GROUP_BYTES", 1)  # a group per file
    monkeypatch.setattr(tail_pool, "TASK_BYTES", 2000)
    monkeypatch.setattr(store_module, "_PENDING_ROWS", 1)  # rows go to SQLite at once
    path = tmp_path / "cut.db"
    store = Store(path)
    real_flush = store.flush_group
    flushes = 0

    def dying_flush() -> None:
        nonlocal flushes
        flushes += 1
        if flushes == 4:
            raise KeyboardInterrupt  # after 3 groups, with the 4th's rows in SQLite
        real_flush()

    monkeypatch.setattr(store, "flush_group", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        Tailer(store, roots, cost_fn=lambda e: 0.5, clock=lambda: 0.0).scan(workers=2)
    store.db.close()
    events, files, _limits, indexes, kv = _dump(path)
    assert events and 0 < len(files) <= 3 and ("bulk_load",) not in kv
    assert ("events_session",) in indexes
    assert {f for (*_, f) in events} <= {f[0] for f in files}  # no row without its offset
    monkeypatch.undo()
    _scan(path, roots, workers=2)
    assert _dump(path) == _dump(expected)


def _signal_masks(pid: int) -> tuple[int, int]:
    """A process's blocked and ignored signals, from ``/proc`` (bit n-1 is signal n)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["SigBlk"], 16), int(fields["SigIgn"], 16)


def test_parse_workers_take_sigterm_even_when_the_scan_blocks_it() -> None:
    """A child of the daemon starts with the daemon's signal mask (SIGTERM blocked).
    Its parse workers must still die of the SIGTERM that ends every parallel scan
    (a hang seen for real), and leave a ^C to the scan."""
    script = (
        "import signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
        "from tokend import tail_pool\n"
        "workers = tail_pool._Workers(2)\n"
        "print(*workers.pids, flush=True)\n"
        "sys.stdin.readline()\n"
        "workers.close()\n"
        "print('closed', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        term, interrupt = 1 << (15 - 1), 1 << (2 - 1)
        assert _signal_masks(proc.pid)[0] & term  # the scan blocks it...
        for pid in pids:
            deadline = time.monotonic() + 10  # a worker sets itself up once forked
            while (masks := _signal_masks(pid))[0] & term and time.monotonic() < deadline:
                time.sleep(0.01)
            blocked, ignored = masks
            assert not blocked & term  # ...its workers do not
            assert ignored & interrupt
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "closed"
        assert proc.wait(timeout=30) == 0
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists()  # reaped, not left as zombies
    finally:
        proc.kill()


def test_a_failing_worker_fails_the_scan_and_leaves_no_process(
    tmp_path: Path, roots: list[tuple[Source, Root]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a worker (it raises) is raised in the scan, naming it; a worker that
    dies (killed) fails the scan instead of leaving it waiting forever. Either way
    no worker outlives the scan, and the store keeps whole batches only."""
    if tail_pool.available_workers() < 2:
        pytest.fail("this test needs two CPUs and fork; CI machines have both")
    monkeypatch.setattr(tail, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(tail, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tail_pool, "TASK_BYTES", 2000)
    started: list[int] = []
    real_init = tail_pool._Workers.__init__

    def recording_init(self: tail_pool._Workers, count: int) -> None:
        real_init(self, count)
        started.extend(self.pids)

    monkeypatch.setattr(tail_pool._Workers, "__init__", recording_init)

    def broken(task: object) -> object:
        raise ZeroDivisionError("a bug in the parser")

    monkeypatch.setattr(tail_pool, "_parse_files", broken)
    with pytest.raises(tail_pool.WorkerFailed, match="ZeroDivisionError"):
        _scan(tmp_path / "raised.db", roots, workers=2)

    def dying(task: object) -> object:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    monkeypatch.setattr(tail_pool, "_parse_files", dying)
    with pytest.raises(tail_pool.WorkerFailed, match="died"):
        _scan(tmp_path / "killed.db", roots, workers=2)
    assert len(started) == 4
    for pid in started:
        assert not Path(f"/proc/{pid}").exists()

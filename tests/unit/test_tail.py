"""The tailer: offsets, partial lines, truncation, replacement, crashes, bad files.

These drive the real Claude source over real files in a temp folder and a real
SQLite store; only the clock is fixed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.logbuilders import append, claude_assistant
from tokend import tail
from tokend.errors import StoreError
from tokend.sources.base import Root
from tokend.sources.claude import SOURCE
from tokend.store import Store
from tokend.tail import Tailer

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def root(tmp_path: Path) -> Root:
    return Root("claude", tmp_path / "projects", "test")


@pytest.fixture
def log(root: Root) -> Path:
    return root.path / "-home-dev-acme-api" / "sess-1.jsonl"


def tailer(store: Store, root: Root) -> Tailer:
    return Tailer(store, [(SOURCE, root)], cost_fn=lambda e: None, clock=lambda: 0.0)


def lines(n: int, start: int = 0) -> list[str]:
    return [
        claude_assistant(T0 + timedelta(minutes=i), f"msg_{i}", f"req_{i}", output_tokens=100 + i)
        for i in range(start, start + n)
    ]


def outputs(store: Store) -> list[int]:
    return sorted(row.output for row in store.events())


def test_second_scan_reads_only_the_new_bytes(tmp_path: Path, root: Root, log: Path) -> None:
    append(log, *lines(3))
    with Store(tmp_path / "s.db") as store:
        first = tailer(store, root).scan()
        size = log.stat().st_size
        assert first.bytes_read == size and first.events == 3
        append(log, *lines(1, start=3))
        second = tailer(store, root).scan()
        assert second.bytes_read == log.stat().st_size - size
        assert second.events == 1
        assert outputs(store) == [100, 101, 102, 103]


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path, root: Root, log: Path) -> None:
    whole = lines(2)
    append(log, whole[0])
    half = len(whole[1]) // 2
    append(log, whole[1][:half], newline=False)
    with Store(tmp_path / "s.db") as store:
        report = tailer(store, root).scan()
        assert (report.events, report.malformed) == (1, 0)
        append(log, whole[1][half:])
        report = tailer(store, root).scan()
        assert (report.events, report.malformed) == (1, 0)
        assert outputs(store) == [100, 101]


def test_truncated_file_is_reread_without_double_counting(
    tmp_path: Path, root: Root, log: Path
) -> None:
    append(log, *lines(3))
    with Store(tmp_path / "s.db") as store:
        tailer(store, root).scan()
        log.write_text(lines(1)[0] + "\n")  # shorter than the offset: truncated and rewritten
        report = tailer(store, root).scan()
        assert report.events == 1
        assert outputs(store) == [100, 101, 102]


def test_atomically_replaced_file_is_reread_without_double_counting(
    tmp_path: Path, root: Root, log: Path
) -> None:
    append(log, *lines(2))
    with Store(tmp_path / "s.db") as store:
        tailer(store, root).scan()
        tmp = log.with_suffix(".tmp")
        tmp.write_text("\n".join(lines(3)) + "\n")
        tmp.replace(log)  # new inode, longer than before
        report = tailer(store, root).scan()
        assert report.bytes_read == log.stat().st_size  # read from 0, not from the old offset
        assert outputs(store) == [100, 101, 102]


def test_malformed_lines_are_counted_and_skipped_once(
    tmp_path: Path, root: Root, log: Path
) -> None:
    good = lines(2)
    append(log, good[0], '{"type":"assistant","message":{"id":', good[1])
    with Store(tmp_path / "s.db") as store:
        report = tailer(store, root).scan()
        assert (report.events, report.malformed) == (2, 1)
        tmp = log.with_suffix(".tmp")
        tmp.write_bytes(log.read_bytes())
        tmp.replace(log)  # new inode: the whole file is read again
        again = tailer(store, root).scan()
        assert again.malformed == 1
        assert store.counts()["malformed"] == 1  # the file's count, not a running sum


@pytest.mark.parametrize("mode", ["ingest", "scan"])
def test_a_crash_between_batches_neither_loses_nor_double_counts(
    tmp_path: Path, root: Root, log: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """``ingest`` (the daemon's path) commits per chunk; ``scan`` groups files into one
    transaction per GROUP_BYTES. Either way a crash leaves a prefix that a re-read
    completes exactly."""
    other = root.path / "-home-dev-other" / "sess-2.jsonl"
    append(log, *lines(40))
    append(other, *lines(40, start=100))
    monkeypatch.setattr(tail, "CHUNK", 2000)  # several batches per file
    monkeypatch.setattr(tail, "GROUP_BYTES", 1)  # a group commit after every file
    clean = Store(tmp_path / "clean.db")
    tailer(clean, root).scan()
    expected = outputs(clean)
    assert len(expected) == 80

    crashing = Store(tmp_path / "s.db")
    real_commit = crashing.commit_batch
    calls = {"n": 0}
    die_at = 3 if mode == "ingest" else 12  # mid-file; in scan mode, in the second file

    def commit_then_die(**kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == die_at:
            raise KeyboardInterrupt("power cut")
        real_commit(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(crashing, "commit_batch", commit_then_die)
    with pytest.raises(KeyboardInterrupt):
        if mode == "ingest":
            tailer(crashing, root).ingest(SOURCE, root, log)
        else:
            tailer(crashing, root).scan()
    crashing.close()
    with Store(tmp_path / "s.db") as store:
        assert 0 < len(outputs(store)) < 80
        tailer(store, root).scan()
        assert outputs(store) == expected


def test_missing_root_is_reported_not_fatal(tmp_path: Path, root: Root) -> None:
    with Store(tmp_path / "s.db") as store:
        report = tailer(store, root).scan()
        assert report.missing_roots == [root]
        assert report.files == 0 and report.errors == []


SCAN_AS_OTHER_USER = """
import sys
from pathlib import Path
from tokend.sources.base import Root
from tokend.sources.claude import SOURCE
from tokend.store import Store
from tokend.tail import Tailer
root = Root("claude", Path(sys.argv[1]), "test")
with Store(Path(sys.argv[2])) as store:
    report = Tailer(store, [(SOURCE, root)], cost_fn=lambda e: None).scan()
    print(report.events)
    for error in report.errors:
        print(error)
"""


def test_unreadable_file_and_folder_are_reported_and_the_rest_counted(
    tmp_path: Path, root: Root, log: Path
) -> None:
    append(log, *lines(2))
    secret = root.path / "-home-dev-secret" / "sess-9.jsonl"
    append(secret, *lines(1, start=5))
    locked_dir = root.path / "-home-dev-locked"
    append(locked_dir / "sess-8.jsonl", *lines(1, start=7))
    secret.chmod(0)
    locked_dir.chmod(0)
    command = [sys.executable, "-c", SCAN_AS_OTHER_USER, str(root.path), str(tmp_path / "s.db")]
    if os.geteuid() == 0:
        # root reads anything: drop the capabilities that bypass file permissions
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        ).stdout.splitlines()
    finally:
        locked_dir.chmod(0o755)
    assert out[0] == "2"
    assert any(str(secret) in line for line in out[1:])
    assert any(str(locked_dir) in line for line in out[1:])


def test_store_that_cannot_be_written_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="cannot open the store at"):
        Store(blocker / "data" / "usage.sqlite3")

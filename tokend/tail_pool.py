"""Parse log files in forked worker processes while the scanning process writes.

A first scan of a long history is CPU-bound in two places: decoding and judging
every usage line (Python, one core) and writing rows into SQLite. With workers the
first is spread over the other cores and overlaps the second. Workers never touch
the store: each gets a list of files with the offset and parser state the store
holds for them, runs the same :func:`tokend.tail.read_batches` as a sequential
scan, prices the events (:func:`tokend.store.event_rows`) and sends them and the
limit observations (:func:`tokend.store.limit_rows`) back as plain tuples. The
parent commits the results in the order the files were listed, batch by batch with
the offset after each, so the store ends up exactly as after a sequential scan, and
a crash at any point loses or doubles nothing.

Memory stays bounded: at most :data:`IN_FLIGHT_PER_WORKER` tasks per worker, of about
:data:`TASK_BYTES` of log each, are out at once. Files bigger than :data:`BIG_FILE` (which a worker
would hold whole in one result) and whole-file formats stay in the parent.

Only where ``fork`` exists (Linux): workers inherit the roots, sources and price
table instead of re-importing and pickling them, and their start costs a few
milliseconds. The daemon, which runs threads, never uses this path.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from tokend.sources.base import Root, Source
from tokend.store import CostFn, FileRow, event_rows, limit_rows

if TYPE_CHECKING:
    from tokend.tail import Batch, Progress, ScanReport, Tailer

__all__ = ["available_workers", "read_in_parallel"]

TASK_BYTES = 8 << 20
"""Log bytes per task: large enough that messaging costs little, small enough to
keep both workers busy to the end and the results in flight small. On the 408 MB
bench corpus, 8 MB tasks scanned in 1.68 s where 4 MB ones took 1.88 s (alternating
runs, bench/RESULTS.md); 16 and 32 MB were no faster."""

TASK_FILES = 256
BIG_FILE = 64 << 20
IN_FLIGHT_PER_WORKER = 4


class _Stat(NamedTuple):
    st_dev: int
    st_ino: int
    st_size: int
    st_mtime_ns: int


@dataclass
class _FileOutcome:
    index: int
    stat: _Stat | None
    batches: list[Batch]
    error: str | None


# Set in the parent just before forking, read by the workers (never pickled).
_JOBS: list[tuple[Source, Root, Path]] = []
_COST_FN: CostFn | None = None


def _worker_start() -> None:
    """Set a worker up: SIGTERM unblocked, the cycle collector rarely run.

    A worker must die of the pool's SIGTERM even when the scan runs with SIGTERM
    blocked (a child of the daemon inherits its mask): the pool's ``terminate()``, on
    every way out of :func:`read_in_parallel`, would otherwise wait for it forever.
    Parsing builds and drops hundreds of thousands of containers, none in a cycle,
    and each few hundred of them woke the collector (2 % of a worker's instructions);
    it still runs now and then, so memory stays bounded should a cycle appear.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    gc.set_threshold(100_000, 50, 100)


def available_workers(limit: int = 4) -> int:
    """CPUs this process may run on, at most ``limit``; 1 where fork is missing."""
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, limit))


def read_in_parallel(
    tailer: Tailer,
    changed: list[tuple[Source, Root, Path]],
    todo: list[int],
    report: ScanReport,
    progress: Progress | None,
    workers: int,
) -> bool:
    """Read ``changed`` into ``tailer.store`` with worker processes.

    Returns ``False`` (nothing read) when workers cannot be started here; the caller
    then reads sequentially.
    """
    from tokend.tail import FileResult

    workers = available_workers(workers)
    if workers < 2:
        return False
    global _JOBS, _COST_FN
    _JOBS, _COST_FN = changed, tailer.cost_fn
    try:
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_start)
    except OSError:
        _JOBS, _COST_FN = [], None
        return False
    store = tailer.store
    plan = _plan(changed, todo, store.file_row)
    total, done, unflushed = sum(todo), 0, 0

    def account(index: int, result: FileResult) -> None:
        nonlocal done, unflushed
        report.add(result)
        done += todo[index]
        unflushed += result.bytes_read
        if unflushed >= tailer.group_bytes:
            store.flush_group()
            unflushed = 0
        if progress is not None:
            progress(done, total)

    try:
        with _no_cycle_collection():
            # Tasks go out ahead (at most `limit` at once) and are committed strictly in
            # plan order; a file the parent reads itself is read when its turn comes.
            submitted: deque[AsyncResult[list[_FileOutcome]]] = deque()
            ahead = (item for item in plan if isinstance(item, _Task))
            limit = workers * IN_FLIGHT_PER_WORKER
            for item in plan:
                while len(submitted) < limit and (task := next(ahead, None)) is not None:
                    submitted.append(pool.apply_async(_parse_files, (task,)))
                if isinstance(item, int):
                    source, root, path = changed[item]
                    account(item, tailer.ingest(source, root, path))
                    continue
                for outcome in submitted.popleft().get():
                    source, root, path = changed[outcome.index]
                    result = FileResult(path, error=outcome.error)
                    for batch in outcome.batches:
                        assert outcome.stat is not None
                        result.reread = batch.reread
                        result.malformed += batch.new_malformed
                        tailer.commit(source, root, path, outcome.stat, batch, result)
                    account(outcome.index, result)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
        _JOBS, _COST_FN = [], None
    return True


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Keep the cyclic garbage collector off while results are committed.

    The parent unpickles and drops hundreds of thousands of row tuples, none in a
    reference cycle (reference counting frees them all), yet each surviving group
    of them moves the collector's counts on: on a first scan of a long history its
    passes cost more than building the ``files`` rows. Workers are forked before,
    with the collector as it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class _Task:
    """Files a worker parses, with the stored position of each."""

    indexes: list[int]
    rows: list[FileRow | None]


def _plan(
    changed: Sequence[tuple[Source, Root, Path]],
    todo: Sequence[int],
    get_row: Callable[[str], FileRow | None],
) -> list[_Task | int]:
    """Group files into tasks of about :data:`TASK_BYTES`, in order; a bare index is
    a file the parent reads itself (whole-file formats, very big files)."""
    plan: list[_Task | int] = []
    task = _Task([], [])
    size = 0
    for index, ((source, _root, path), nbytes) in enumerate(zip(changed, todo, strict=True)):
        if source.whole_file(path) or nbytes > BIG_FILE:
            if task.indexes:
                plan.append(task)
                task, size = _Task([], []), 0
            plan.append(index)
            continue
        task.indexes.append(index)
        task.rows.append(get_row(str(path)))
        size += nbytes
        if size >= TASK_BYTES or len(task.indexes) >= TASK_FILES:
            plan.append(task)
            task, size = _Task([], []), 0
    if task.indexes:
        plan.append(task)
    return plan


def _parse_files(task: _Task) -> list[_FileOutcome]:
    """In a worker: parse each file from its stored position, price the events."""
    from tokend.tail import coalesce, read_batches

    cost_fn = _COST_FN
    assert cost_fn is not None
    out: list[_FileOutcome] = []
    for index, row in zip(task.indexes, task.rows, strict=True):
        source, root, path = _JOBS[index]
        try:
            st = path.stat()
            batches = list(read_batches(source, root, path, st, row))
        except FileNotFoundError:
            out.append(_FileOutcome(index, None, [], None))
            continue
        except OSError as exc:
            out.append(
                _FileOutcome(index, None, [], f"cannot read {path}: {exc.strerror or exc}")
            )
            continue
        for batch in batches:
            batch.rows = event_rows(coalesce(batch.events), root.key, cost_fn)
            batch.events = []
            batch.limits = limit_rows(batch.observations, root.key)
            batch.observations = []
        stat = _Stat(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        out.append(_FileOutcome(index, stat, batches, None))
    return out

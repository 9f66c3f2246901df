"""Parse log files in forked worker processes while the scanning process writes.

A first scan of a long history is CPU-bound in two places: decoding and judging
every usage line (Python, one core) and writing rows into SQLite. With workers the
first is spread over the other cores and overlaps the second. Workers never touch
the store: the parent plans the tasks (files, with the offset and parser state the
store holds for each) before it forks, so a worker inherits them and is sent only a
task's number. It runs the same :func:`tokend.tail.read_batches` as a sequential
scan, prices the events (:func:`tokend.store.event_rows`) and sends them and the
limit observations (:func:`tokend.store.limit_rows`) back as plain tuples. The
parent commits the results in the order the files were listed, batch by batch with
the offset after each, so the store ends up exactly as after a sequential scan, and
a crash at any point loses or doubles nothing.

Memory stays bounded: at most :data:`IN_FLIGHT_PER_WORKER` tasks per worker, of about
:data:`TASK_BYTES` of log each, are out at once. Files bigger than :data:`BIG_FILE` (which a worker
would hold whole in one result) and whole-file formats stay in the parent.

The workers are plain forked processes with a pipe each way (:class:`_Workers`), not
a :class:`multiprocessing.pool.Pool`: the pool's worker-watching thread wakes up
whenever a result waits unread in its pipe, so while the parent was busy writing it
spun thousands of times per scan (4,658 rounds on the 408 MB bench corpus), taking
the GIL from the writer each time, and two more threads moved tasks and results.

Only where ``fork`` exists (Linux): workers inherit the roots, sources, price table
and plan instead of re-importing and pickling them, and their start costs a few
milliseconds. The daemon, which runs threads, never uses this path.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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

PIPE_BYTES = 1 << 20
"""Asked-for capacity of each result pipe (Linux caps it at ``pipe-max-size``, 1 MB by
default; 64 kB otherwise): room for a whole result of a few hundred kB, so a worker
can hand it over and go on parsing while the parent is busy writing."""


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
_PLAN: list[_Task | int] = []
_COST_FN: CostFn | None = None


def available_workers(limit: int = 4) -> int:
    """CPUs this process may run on, at most ``limit``; 1 where fork is missing."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
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
    global _JOBS, _PLAN, _COST_FN
    store = tailer.store
    # One query for the paths the store knows; a path it does not know has no row
    # to look up (on a first scan, none: 2,849 queries saved on the bench corpus).
    known = store.file_marks()
    plan = _plan(changed, todo, lambda path: store.file_row(path) if path in known else None)
    _JOBS, _PLAN, _COST_FN = changed, plan, tailer.cost_fn
    for source in {id(source): source for source, _root, _path in changed}.values():
        source.load_parsing()  # once here, not once per worker
    try:
        pool = _Workers(workers)
    except OSError:
        _JOBS, _PLAN, _COST_FN = [], [], None
        return False
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
            ahead = (number for number, item in enumerate(plan) if isinstance(item, _Task))
            limit = workers * IN_FLIGHT_PER_WORKER
            for number, item in enumerate(plan):
                while pool.in_flight < limit and (task := next(ahead, None)) is not None:
                    pool.submit(task)
                if isinstance(item, int):
                    source, root, path = changed[item]
                    account(item, tailer.ingest(source, root, path))
                    continue
                for outcome in pool.result(number):
                    source, root, path = changed[outcome.index]
                    result = FileResult(path, error=outcome.error)
                    for batch in outcome.batches:
                        assert outcome.stat is not None
                        result.reread = batch.reread
                        result.malformed += batch.new_malformed
                        tailer.commit(source, root, path, outcome.stat, batch, result)
                    account(outcome.index, result)
    finally:
        pool.close()
        _JOBS, _PLAN, _COST_FN = [], [], None
    return True


class WorkerFailed(RuntimeError):
    """A parse worker raised (a bug: unreadable files are reported, not raised) or died."""


class _Workers:
    """Forked parse workers, each with a task pipe and a result pipe.

    A task is its number in :data:`_PLAN` (4 bytes); a result is a length-prefixed
    pickle of the task's :class:`_FileOutcome` list, or of the exception that stopped
    it. Each worker gets the next task when it has the fewest out, and answers in the
    order it was asked, so the parent knows whose pipe holds the task it waits for.
    A worker reads its tasks until the parent closes their pipe (or dies): it exits
    then, and no worker is left behind whatever happens to the parent.
    """

    def __init__(self, count: int) -> None:
        self.pids: list[int] = []
        self._tasks: list[int] = []
        """Per worker: the write end of its task pipe."""
        self._results: list[int] = []
        """Per worker: the read end of its result pipe."""
        self._out: list[deque[int]] = []
        """Per worker: the task numbers it holds, oldest first."""
        try:
            for _ in range(count):
                self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        with suppress(AttributeError, OSError):
            import fcntl

            fcntl.fcntl(result_write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                # Only this worker's own ends stay open here: a pipe of another worker
                # held open by this one would hide the parent's exit from that worker.
                for fd in (*self._tasks, *self._results, task_write, result_read):
                    os.close(fd)
                _worker_start()
                _serve(task_read, result_write)
                code = 0
            finally:
                os._exit(code)
        os.close(task_read)
        os.close(result_write)
        self.pids.append(pid)
        self._tasks.append(task_write)
        self._results.append(result_read)
        self._out.append(deque())

    @property
    def in_flight(self) -> int:
        """Tasks handed out and not yet collected."""
        return sum(map(len, self._out))

    def submit(self, number: int) -> None:
        """Send task ``number`` to the worker with the fewest tasks out."""
        worker = min(range(len(self.pids)), key=lambda w: len(self._out[w]))
        try:
            os.write(self._tasks[worker], struct.pack("<i", number))
        except BrokenPipeError:
            raise WorkerFailed(f"parse worker {self.pids[worker]} died") from None
        self._out[worker].append(number)

    def result(self, number: int) -> list[_FileOutcome]:
        """Wait for task ``number`` (every earlier task of its worker is in already)."""
        worker = next(w for w, held in enumerate(self._out) if held and held[0] == number)
        self._out[worker].popleft()
        fd = self._results[worker]
        try:
            (size,) = struct.unpack("<q", _read_exactly(fd, 8))
            answer = pickle.loads(_read_exactly(fd, size))
        except EOFError:
            raise WorkerFailed(f"parse worker {self.pids[worker]} died") from None
        if isinstance(answer, BaseException):
            raise WorkerFailed(f"parse worker failed: {answer!r}") from answer
        outcomes: list[_FileOutcome] = answer
        return outcomes

    def close(self) -> None:
        """Stop every worker and reap it (closing the task pipes alone would let one
        finish the file it is on first; a scan cut short should not wait for that)."""
        for fd in (*self._tasks, *self._results):
            with suppress(OSError):
                os.close(fd)
        self._tasks, self._results = [], []
        for pid in self.pids:
            with suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        for pid in self.pids:
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = []


def _read_exactly(fd: int, size: int) -> bytearray:
    """``size`` bytes from ``fd``; raises ``EOFError`` if the writer is gone first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = os.readv(fd, [view[got:]])
        if count == 0:
            raise EOFError
        got += count
    return buffer


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _serve(tasks: int, results: int) -> None:
    """A worker's loop: read a task number, parse, send the outcome; until EOF."""
    while True:
        try:
            (number,) = struct.unpack("<i", _read_exactly(tasks, 4))
        except EOFError:
            return
        task = _PLAN[number]
        assert isinstance(task, _Task)
        try:
            answer: object = _parse_files(task)
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # sent to the parent, which raises it
            try:
                data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an exception that does not pickle
                data = pickle.dumps(WorkerFailed(repr(exc)))
        _write_all(results, struct.pack("<q", len(data)) + data)


def _worker_start() -> None:
    """Set a worker up: SIGTERM unblocked and fatal, ^C left to the parent, the
    cycle collector rarely run.

    A worker must die of the parent's SIGTERM even when the scan runs with SIGTERM
    blocked (a child of the daemon inherits its mask): :meth:`_Workers.close`, on
    every way out of :func:`read_in_parallel`, would otherwise wait for it forever.
    A ^C reaches the whole process group; the parent stops the workers itself, so
    they print no traceback of their own.
    Parsing builds and drops hundreds of thousands of containers, none in a cycle,
    and each few hundred of them woke the collector (2 % of a worker's instructions);
    it still runs now and then, so memory stays bounded should a cycle appear.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    gc.set_threshold(100_000, 50, 100)


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

"""Which files to read, from which offset: the only place that reads agent logs.

Per file the store keeps ``(device, inode, offset)`` and the parser's resume state.
A read goes from the offset to the last complete line; a partial last line waits
for its newline. A file that shrank or changed identity (truncation, atomic
replace, rotation) is read again from 0, and the dedup keys make that idempotent.
Records are committed in batches, each together with the offset after it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

from tokend.errors import MalformedLine
from tokend.models import LimitObservation, UsageEvent
from tokend.sources.base import FileParser, Root, Source
from tokend.sources.compressed import decompress, is_compressed
from tokend.store import CostFn, FileMark, FileRow, InsertRow, Store

__all__ = ["Batch", "FileResult", "ScanReport", "Tailer", "feed_lines", "read_batches"]

CHUNK = 4 << 20
"""Bytes read and committed at a time: bounds memory whatever the file size."""

GROUP_BYTES = 32 << 20
"""A scan commits once per this many bytes read, not once per file."""

BULK_GROUP_BYTES = 128 << 20
"""The same during a bulk load: each commit rewrites most pages of the dedup index,
and a first scan has nothing to share the store with yet."""

BULK_MIN_BYTES = 16 << 20
"""A scan of an empty store with this much to read loads in bulk (:meth:`Store.bulk_load`)."""

PARALLEL_MIN_BYTES = 16 << 20
"""Below this, forking parse workers costs more than it saves."""

Progress = Callable[[int, int], None]


@dataclass
class FileResult:
    """What one read of one file did."""

    path: Path
    bytes_read: int = 0
    events: int = 0
    observations: int = 0
    malformed: int = 0
    reread: bool = False
    error: str | None = None


@dataclass
class ScanReport:
    """A summary of a scan over every root, for the CLI and the daemon log."""

    roots: list[Root] = field(default_factory=list)
    missing_roots: list[Root] = field(default_factory=list)
    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    events: int = 0
    observations: int = 0
    malformed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, result: FileResult) -> None:
        self.files += 1
        if result.bytes_read:
            self.files_read += 1
        self.bytes_read += result.bytes_read
        self.events += result.events
        self.observations += result.observations
        self.malformed += result.malformed
        if result.error:
            self.errors.append(result.error)


def _unchanged(mark: FileMark, st: os.stat_result) -> bool:
    """The file is the one already read, to the byte (a rewrite of the same size, as
    legacy Gemini files do, changes the mtime)."""
    dev, ino, offset, size, mtime_ns = mark
    return (
        dev == st.st_dev
        and ino == st.st_ino
        and offset == size == st.st_size
        and mtime_ns == st.st_mtime_ns
    )


def coalesce(events: list[UsageEvent]) -> list[UsageEvent]:
    """Keep one event per dedup key of a batch, as the store's upsert would.

    A streamed Claude response arrives as several copies in a row (and a Gemini
    message is re-appended as it changes); writing only the winner saves most store
    writes of a cold scan. Larger rank wins, ties go to the later copy; the order of
    first appearance is kept, so sidechain shadowing works as in the store.
    """
    best: dict[str, UsageEvent] = {}
    for event in events:
        held = best.get(event.dedup_key)
        if held is None or event.rank >= held.rank:
            best[event.dedup_key] = event
    return list(best.values()) if len(best) < len(events) else events


@dataclass
class Batch:
    """What one read of up to :data:`CHUNK` bytes of a file produced, and where the
    file stands after it (offset, parser state, running count of malformed lines)."""

    offset: int
    state: dict[str, Any] | None
    malformed: int
    new_malformed: int
    nbytes: int
    reread: bool
    events: list[UsageEvent] = field(default_factory=list)
    observations: list[LimitObservation] = field(default_factory=list)
    rows: list[InsertRow] = field(default_factory=list)
    """``events`` as :func:`tokend.store.event_rows` makes them (parse workers send these)."""
    limits: list[InsertRow] = field(default_factory=list)
    """``observations`` as :func:`tokend.store.limit_rows` makes them (the same)."""


def feed_lines(
    parser: FileParser, data: bytes
) -> tuple[list[UsageEvent], list[LimitObservation], int]:
    """Feed every line of ``data`` to ``parser``: its events, its observations and
    how many lines were malformed (blank lines are skipped, not fed).

    What a parser without its own ``feed_chunk`` gets (one with it, Claude's, does
    the same with less work per line).
    """
    events: list[UsageEvent] = []
    observations: list[LimitObservation] = []
    bad = 0
    feed = parser.feed
    for line in data.split(b"\n"):
        if not line or line.isspace():
            continue
        try:
            records = feed(line)
        except MalformedLine:
            bad += 1
            continue
        for record in records:
            if type(record) is UsageEvent:
                events.append(record)
            else:
                observations.append(cast(LimitObservation, record))
    return events, observations, bad


class StatMarks(Protocol):
    """The parts of a stat result a commit records (a worker sends just these)."""

    @property
    def st_dev(self) -> int: ...
    @property
    def st_ino(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...


def read_batches(
    source: Source, root: Root, path: Path, st: os.stat_result, row: FileRow | None
) -> Iterator[Batch]:
    """Parse what is new in a line-based log, a chunk at a time; no store access.

    Resumes from ``row`` (offset and parser state) when the file is the same one and
    did not shrink, else from 0 (truncated or replaced: the dedup keys make the re-read
    idempotent). A partial last line is left for the next read. Raises ``OSError``.
    """
    same = (
        row is not None
        and row.dev == st.st_dev
        and row.ino == st.st_ino
        and st.st_size >= row.offset
    )
    if row is not None and same and st.st_size == row.offset:
        return
    offset = row.offset if same and row is not None else 0
    state = row.state if same and row is not None else None
    malformed = row.malformed if same and row is not None else 0
    reread = row is not None and not same
    parser = source.parser(root, path, state)
    feed_chunk = getattr(parser, "feed_chunk", None) or partial(feed_lines, parser)
    with open(path, "rb") as handle:
        handle.seek(offset)
        pending = b""
        expected = st.st_size - offset
        while True:
            # Ask for what the file holds (plus room for growth since the stat), not a
            # whole CHUNK: a 4 MB read buffer for a 100 kB file costs page faults.
            chunk = handle.read(min(CHUNK, max(expected - len(pending), 0) + (64 << 10)))
            if not chunk:
                break
            pending += chunk
            end = pending.rfind(b"\n")
            if end < 0:
                continue  # one line longer than a chunk: keep reading
            complete, pending = pending[: end + 1], pending[end + 1 :]
            events, observations, bad = feed_chunk(complete)
            offset += len(complete)
            malformed += bad
            yield Batch(offset, parser.state(), malformed, bad, len(complete), reread,
                        events, observations)


class Tailer:
    """Reads new bytes of agent logs into the store.

    :param store: a writable store.
    :param roots: every ``(source, root)`` pair to read.
    :param cost_fn: prices an event at insert time.
    :param clock: seconds since the epoch; injected for tests.
    """

    def __init__(
        self,
        store: Store,
        roots: Iterable[tuple[Source, Root]],
        cost_fn: CostFn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.roots = list(roots)
        self.cost_fn = cost_fn
        self.clock = clock
        self.group_bytes = GROUP_BYTES
        """Bytes read between two commits of the scan under way (set by :meth:`scan`)."""

    def discover(self, errors: list[str] | None = None) -> list[tuple[Source, Root, Path]]:
        """Every log file below every existing root."""
        return [(source, root, Path(name)) for source, root, name in self._names(errors)]

    def _names(self, errors: list[str] | None) -> list[tuple[Source, Root, str]]:
        """:meth:`discover` with the paths as strings."""
        found: list[tuple[Source, Root, str]] = []

        def on_error(exc: OSError) -> None:
            if errors is not None:
                errors.append(f"cannot read {exc.filename}: {exc.strerror or exc}")

        for source, root in self.roots:
            for name in source.file_names(root, on_error):
                found.append((source, root, name))
        return found

    def scan(self, progress: Progress | None = None, *, workers: int | None = 1) -> ScanReport:
        """Read everything new under every root.

        ``workers`` > 1 lets a big scan (a first one, or a long time away) parse files
        in that many forked processes while this one writes (:mod:`tokend.tail_pool`);
        ``None`` means one per CPU, decided only when there is much to read, so a warm
        report does not even import the pool;
        results are committed in the same order and with the same offsets as a
        sequential scan, so the store ends up identical.
        """
        report = ScanReport(roots=[r for _, r in self.roots])
        report.missing_roots = [r for _, r in self.roots if not r.path.is_dir()]
        targets = self._names(report.errors)
        known = self.store.file_marks()
        changed: list[tuple[Source, Root, Path]] = []
        todo: list[int] = []
        stat = os.stat
        for source, root, name in targets:
            try:
                st = stat(name)
            except OSError:
                st = None
            mark = known.get(name)
            if st is not None and mark is not None and _unchanged(mark, st):
                report.files += 1  # nothing new: no need to open it (warm reports)
                continue
            changed.append((source, root, Path(name)))
            size = st.st_size if st is not None else 0
            same_file = mark is not None and st is not None and mark[1] == st.st_ino
            todo.append(max(0, size - (mark[2] if mark is not None and same_file else 0)))
        if not changed:
            return report
        total = sum(todo)
        self.group_bytes = GROUP_BYTES
        with self.store.grouped():
            if total >= BULK_MIN_BYTES:
                with self.store.bulk_load() as bulk:
                    if bulk:
                        self.group_bytes = BULK_GROUP_BYTES
                    self._read_all(changed, todo, report, progress, workers)
            else:
                self._read_all(changed, todo, report, progress, workers)
        return report

    def _read_all(
        self,
        changed: list[tuple[Source, Root, Path]],
        todo: list[int],
        report: ScanReport,
        progress: Progress | None,
        workers: int | None,
    ) -> None:
        total = sum(todo)
        if (workers is None or workers > 1) and total >= PARALLEL_MIN_BYTES:
            from tokend.tail_pool import available_workers, read_in_parallel

            count = available_workers() if workers is None else workers
            if count > 1 and read_in_parallel(self, changed, todo, report, progress, count):
                return
        done, unflushed = 0, 0
        for (source, root, path), size in zip(changed, todo, strict=True):
            result = self.ingest(source, root, path)
            report.add(result)
            done += size
            unflushed += result.bytes_read
            if unflushed >= self.group_bytes:
                self.store.flush_group()
                unflushed = 0
            if progress is not None:
                progress(done, total)

    def ingest(self, source: Source, root: Root, path: Path) -> FileResult:
        """Read what is new in one file; never raises for a bad file."""
        result = FileResult(path)
        try:
            st = path.stat()
            if source.whole_file(path):
                self._ingest_whole(source, root, path, st, result)
            else:
                for batch in read_batches(source, root, path, st, self.store.file_row(str(path))):
                    result.reread = batch.reread
                    result.malformed += batch.new_malformed
                    self.commit(source, root, path, st, batch, result)
        except FileNotFoundError:
            pass  # deleted between discovery and reading: its rows stay in the store
        except OSError as exc:
            result.error = f"cannot read {path}: {exc.strerror or exc}"
        return result

    def commit(
        self,
        source: Source,
        root: Root,
        path: Path,
        st: os.stat_result | StatMarks,
        batch: Batch,
        result: FileResult,
    ) -> None:
        """Store one batch with the file's position after it; count it in ``result``."""
        events = coalesce(batch.events)
        result.bytes_read += batch.nbytes
        result.events += len(events) + len(batch.rows)
        result.observations += len(batch.observations) + len(batch.limits)
        self.store.commit_batch(
            path=str(path), agent=source.agent, root=root.key, dev=st.st_dev,
            ino=st.st_ino, offset=batch.offset, size=st.st_size, mtime_ns=st.st_mtime_ns,
            state=batch.state, malformed=batch.malformed, events=events,
            observations=batch.observations, cost_fn=self.cost_fn,
            now_ms=int(self.clock() * 1000), rows=batch.rows, limits=batch.limits,
        )

    def _ingest_whole(
        self, source: Source, root: Root, path: Path, st: os.stat_result, result: FileResult
    ) -> None:
        row = self.store.file_row(str(path))
        if (
            row is not None
            and (row.dev, row.ino, row.size, row.mtime_ns)
            == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        ):
            return
        data = path.read_bytes()
        malformed = 0
        if is_compressed(path):
            # A line log stored compressed (Codex's cold rollouts): its lines go
            # through the agent's own line parser, bad ones counted as in a plain file.
            events, observations, malformed = feed_lines(
                source.parser(root, path, None), decompress(path, data)
            )
            result.malformed += malformed
        else:
            try:
                records = source.parse_whole(path, data)
            except MalformedLine:
                # Legacy Gemini files are rewritten in place without a temp file: a
                # half-written file parses on the next change. Nothing is committed.
                result.malformed += 1
                return
            events = [r for r in records if isinstance(r, UsageEvent)]
            observations = [r for r in records if isinstance(r, LimitObservation)]
        result.bytes_read = len(data)
        result.events, result.observations = len(events), len(observations)
        self.store.commit_batch(
            path=str(path), agent=source.agent, root=root.key, dev=st.st_dev, ino=st.st_ino,
            offset=len(data), size=st.st_size, mtime_ns=st.st_mtime_ns, state=None,
            malformed=malformed, events=events, observations=observations,
            cost_fn=self.cost_fn, now_ms=int(self.clock() * 1000),
        )

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tokend.errors import MalformedLine
from tokend.models import LimitObservation, UsageEvent
from tokend.sources.base import Root, Source
from tokend.store import CostFn, FileRow, Store

__all__ = ["FileResult", "ScanReport", "Tailer"]

CHUNK = 4 << 20
"""Bytes read and committed at a time: bounds memory whatever the file size."""

GROUP_BYTES = 32 << 20
"""A scan commits once per this many bytes read, not once per file."""

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


def _unchanged(row: FileRow, st: os.stat_result) -> bool:
    """The file is the one already read, to the byte (a rewrite of the same size, as
    legacy Gemini files do, changes the mtime)."""
    return (
        row.dev == st.st_dev
        and row.ino == st.st_ino
        and row.offset == st.st_size
        and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)
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

    def discover(self, errors: list[str] | None = None) -> list[tuple[Source, Root, Path]]:
        """Every log file below every existing root."""
        found: list[tuple[Source, Root, Path]] = []

        def on_error(exc: OSError) -> None:
            if errors is not None:
                errors.append(f"cannot read {exc.filename}: {exc.strerror or exc}")

        for source, root in self.roots:
            for path in source.files(root, on_error):
                found.append((source, root, path))
        return found

    def scan(self, progress: Progress | None = None) -> ScanReport:
        """Read everything new under every root."""
        report = ScanReport(roots=[r for _, r in self.roots])
        report.missing_roots = [r for _, r in self.roots if not r.path.is_dir()]
        targets = self.discover(report.errors)
        known = {row.path: row for row in self.store.file_rows()}
        changed: list[tuple[Source, Root, Path]] = []
        todo: list[int] = []
        for source, root, path in targets:
            try:
                st = path.stat()
            except OSError:
                st = None
            row = known.get(str(path))
            if st is not None and row is not None and _unchanged(row, st):
                report.files += 1  # nothing new: no need to open it (warm reports)
                continue
            changed.append((source, root, path))
            size = st.st_size if st is not None else 0
            same_file = row is not None and st is not None and row.ino == st.st_ino
            todo.append(max(0, size - (row.offset if row is not None and same_file else 0)))
        total, done, unflushed = sum(todo), 0, 0
        with self.store.grouped():
            for (source, root, path), size in zip(changed, todo, strict=True):
                result = self.ingest(source, root, path)
                report.add(result)
                done += size
                unflushed += result.bytes_read
                if unflushed >= GROUP_BYTES:
                    self.store.flush_group()
                    unflushed = 0
                if progress is not None:
                    progress(done, total)
        return report

    def ingest(self, source: Source, root: Root, path: Path) -> FileResult:
        """Read what is new in one file; never raises for a bad file."""
        result = FileResult(path)
        try:
            st = path.stat()
            if source.whole_file(path):
                self._ingest_whole(source, root, path, st, result)
            else:
                self._ingest_lines(source, root, path, st, result)
        except FileNotFoundError:
            pass  # deleted between discovery and reading: its rows stay in the store
        except OSError as exc:
            result.error = f"cannot read {path}: {exc.strerror or exc}"
        return result

    def _ingest_lines(
        self, source: Source, root: Root, path: Path, st: os.stat_result, result: FileResult
    ) -> None:
        row = self.store.file_row(str(path))
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
        result.reread = row is not None and not same
        parser = source.parser(root, path, state)
        with open(path, "rb") as handle:
            handle.seek(offset)
            pending = b""
            while True:
                chunk = handle.read(CHUNK)
                if not chunk:
                    break
                pending += chunk
                end = pending.rfind(b"\n")
                if end < 0:
                    continue  # one line longer than a chunk: keep reading
                complete, pending = pending[: end + 1], pending[end + 1 :]
                events: list[UsageEvent] = []
                observations: list[LimitObservation] = []
                for line in complete.split(b"\n"):
                    if not line.strip():
                        continue
                    try:
                        records = parser.feed(line)
                    except MalformedLine:
                        malformed += 1
                        result.malformed += 1
                        continue
                    for record in records:
                        if isinstance(record, UsageEvent):
                            events.append(record)
                        else:
                            observations.append(record)
                events = coalesce(events)
                offset += len(complete)
                result.bytes_read += len(complete)
                result.events += len(events)
                result.observations += len(observations)
                self.store.commit_batch(
                    path=str(path), agent=source.agent, root=root.key, dev=st.st_dev,
                    ino=st.st_ino, offset=offset, size=st.st_size, mtime_ns=st.st_mtime_ns,
                    state=parser.state(), malformed=malformed, events=events,
                    observations=observations, cost_fn=self.cost_fn,
                    now_ms=int(self.clock() * 1000),
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
            malformed=0, events=events, observations=observations, cost_fn=self.cost_fn,
            now_ms=int(self.clock() * 1000),
        )

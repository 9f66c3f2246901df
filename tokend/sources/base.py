"""The contract between the tailer and a per-agent parser.

The tailer owns files, offsets and transactions; a :class:`Source` owns where an
agent's logs live and what its lines mean. A :class:`FileParser` is created per
file and fed that file's complete lines in order. Whatever context it needs across
lines (Codex's current model and last cumulative total, Gemini's session id) it keeps
itself and hands back through :meth:`FileParser.state`, which the store commits
with the file offset, so a restart resumes mid-file with the same context.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

from tokend.models import Agent, Record

__all__ = ["FileParser", "OnError", "Root", "Source", "walk_files", "walk_names"]

OnError = Callable[[OSError], None]

_NAME = attrgetter("name")
"""Sort key of directory entries (in C: a warm scan sorts thousands)."""


@dataclass(frozen=True)
class Root:
    """One folder an agent writes logs under; one account when a user has several.

    ``account`` is the name shown to the user (configurable); it defaults to the
    folder. Windows and limits are kept per root.
    """

    agent: Agent
    path: Path
    account: str

    @property
    def key(self) -> str:
        """Stable identifier stored with every row: ``agent:/abs/path``."""
        return f"{self.agent}:{self.path}"


class FileParser(Protocol):
    """Turns the lines of one log file into records."""

    def feed(self, line: bytes) -> list[Record]:
        """Parse one complete line (without the newline).

        Return the records it yields (usually none). Raise
        :class:`~tokend.errors.MalformedLine` for a line that is not JSON; the tailer
        counts it and goes on.
        """
        ...

    def state(self) -> dict[str, Any]:
        """JSON-serializable context to resume after the last fed line."""
        ...


class Source(Protocol):
    """What the tailer needs to know about one agent."""

    agent: Agent

    def roots(self, env: Mapping[str, str], home: Path) -> list[Root]:
        """The folders to watch, whether they exist yet or not.

        ``env`` and ``home`` are injected so tests can fake a user's machine.
        """
        ...

    def files(self, root: Root, on_error: OnError) -> Iterable[Path]:
        """Every log file below ``root`` that holds usage, in a stable order.

        An unreadable folder is handed to ``on_error`` and skipped, never fatal
        (:func:`walk_files` does that).
        """
        ...

    def file_names(self, root: Root, on_error: OnError) -> Iterable[str]:
        """:meth:`files` as strings: a warm scan only stats thousands of files, and
        building a ``Path`` for each costs more than the stat (:func:`walk_names`)."""
        ...

    def wants(self, root: Root, path: Path) -> bool:
        """Whether a file the watcher reports below ``root`` is a log to read."""
        ...

    def whole_file(self, path: Path) -> bool:
        """True for files the tailer reads whole on every change: formats rewritten
        in full (legacy Gemini ``.json``), which it hands to :meth:`parse_whole`, and
        compressed line logs (Codex ``.jsonl.zst``), which it decompresses and feeds
        line by line to :meth:`parser` (:mod:`tokend.sources.compressed`)."""
        ...

    def parse_whole(self, path: Path, data: bytes) -> list[Record]:
        """Parse a whole-file log; raise ``MalformedLine`` if it is (still) truncated."""
        ...

    def parser(self, root: Root, path: Path, state: dict[str, Any] | None) -> FileParser:
        """A parser for ``path`` resuming from ``state`` (``None``: from the start)."""
        ...

    def load_parsing(self) -> None:
        """Import now what parsing imports on first use: called before parse workers
        are forked, so they inherit it instead of each importing it again."""
        ...


def walk_names(top: Path, match: Callable[[str], bool], on_error: OnError) -> Iterator[str]:
    """Files below ``top`` whose name satisfies ``match``, sorted, at any depth.

    Symlinked folders are not followed (no loops); unreadable folders go to
    ``on_error``. A missing ``top`` yields nothing: roots may appear later. Uses
    ``os.scandir`` (the entry says file or folder without a ``stat``) and yields
    strings: a warm report walks thousands of session files before it can answer.
    """
    if not top.is_dir():
        return
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=_NAME)
        except OSError as exc:
            on_error(exc)  # unreadable, or removed since its parent was listed
            continue
        folders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                folders.append(entry.path)
            elif match(entry.name):
                yield entry.path
        stack.extend(reversed(folders))


def walk_files(top: Path, match: Callable[[str], bool], on_error: OnError) -> Iterator[Path]:
    """:func:`walk_names` as paths."""
    return map(Path, walk_names(top, match, on_error))

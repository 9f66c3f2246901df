"""Per-agent log parsers and root discovery.

Each module (``claude``, ``codex``, ``gemini``) exposes a :class:`~tokend.sources.base.Source`
as ``SOURCE``. Parsing is pure (bytes in, records out); the tailer does the I/O.
"""

from __future__ import annotations

from tokend.sources.base import FileParser, Root, Source

__all__ = ["FileParser", "Root", "Source", "all_sources"]


def all_sources() -> list[Source]:
    """Every source tokend knows, imported on demand so a test can load just one."""
    from tokend.sources import claude, codex, gemini

    return [claude.SOURCE, codex.SOURCE, gemini.SOURCE]

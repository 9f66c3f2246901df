"""Logs an agent stores compressed: Codex's ``.jsonl.zst`` rollouts.

Codex can rewrite a rollout untouched for a week as ``<name>.jsonl.zst`` (zstd level 3,
its opt-in ``local_thread_store_compression`` feature) and decompresses it back to
``.jsonl`` before appending. Such a file is read whole, once: decompressed here and fed
line by line to the agent's own parser, so its lines count exactly as the plain
rollout's did, under the same dedup keys.

zstd comes from the standard library on Python 3.14 (``compression.zstd``) and from
``backports.zstd`` (the same module, a dependency of tokend) before that. It is imported
only when a compressed file is met: warm reports never pay for it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

__all__ = ["SUFFIX", "decompress", "is_compressed", "zstd_module"]

SUFFIX = ".zst"


def is_compressed(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def zstd_module() -> ModuleType:
    """``compression.zstd`` (Python 3.14+), else ``backports.zstd``."""
    try:
        return importlib.import_module("compression.zstd")
    except ImportError:
        return importlib.import_module("backports.zstd")


def decompress(path: Path, data: bytes) -> bytes:
    """The lines of a compressed log.

    :raises OSError: the data is not zstd or is cut short (a crash during compression),
        or no zstd module is installed; the tailer reports it as an unreadable file and
        reads it again once it changes.
    """
    try:
        zstd = zstd_module()
    except ImportError:
        raise OSError(
            f"reading {path.name} needs zstd support: pip install backports.zstd"
        ) from None
    try:
        lines: bytes = zstd.decompress(data)
    except zstd.ZstdError as exc:
        raise OSError(f"not a complete zstd file ({exc})") from None
    return lines

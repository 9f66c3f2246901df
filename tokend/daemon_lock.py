"""One daemon per ``TOKEND_HOME``: the instance lock, and who holds it.

The lock is an ``flock`` on the lock file, which the kernel drops when the process
dies, so a lock file left by a killed daemon is not "stale" in any way that matters;
its pid is simply overwritten. ``tokend stop``, ``tokend status`` and ``tokend
doctor`` ask :func:`lock_holder` rather than trusting the pid in the file, so they
all agree on whether a daemon runs.

Kept apart from the daemon itself so that those commands need none of its machinery.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tokend.errors import AlreadyRunning

__all__ = ["InstanceLock", "lock_holder"]


class InstanceLock:
    """An exclusive ``flock`` on the lock file, with our pid written in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """:raises AlreadyRunning: another live process holds the lock."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = _read_pid(self.path)
            raise AlreadyRunning(
                f"tokend already runs for this TOKEND_HOME (pid {pid or '?'})",
                hint="'tokend status' shows it; 'tokend stop' stops it",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def lock_holder(path: Path) -> int | None:
    """The pid of the daemon holding the lock, or ``None`` when no daemon runs.

    "Running" means "locked": a pid in the file alone proves nothing (the process may
    have been killed, and its pid reused).
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return _read_pid(path) or -1
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None

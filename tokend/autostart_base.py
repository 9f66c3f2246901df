"""What every login-item backend shares: the model, the runner and the ownership rule.

The model: :class:`Command` (what the login item runs), :class:`Backend` (the
protocol each of :mod:`tokend.autostart_linux`, :mod:`tokend.autostart_macos` and
:mod:`tokend.autostart_windows` implements), the results and :class:`AutostartState`.
:class:`Runner` / :func:`run_command` run ``systemctl`` and ``launchctl``; injected,
so every backend is tested on any machine with a recording runner.

The ownership rule (why disabling never destroys a user's work): every file tokend
writes starts with a marker comment that carries a hash of the rest of the file
(:func:`with_marker`); :class:`FileBackend` deletes or overwrites a file only when
the marker is there *and* the hash still matches. See :mod:`tokend.autostart`.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal, Protocol

from tokend.errors import TokendError

__all__ = [
    "MARKER",
    "AutostartError",
    "AutostartState",
    "Backend",
    "Command",
    "FileBackend",
    "InstallResult",
    "Owner",
    "Runner",
    "UninstallResult",
    "run_command",
    "strip_marker",
    "with_marker",
]

MARKER = "tokend-autostart"
_NOTE = "written by 'tokend autostart enable'; 'tokend autostart disable' removes it unless edited"
_MARKER_RE = re.compile(rf"{MARKER} sha256=([0-9a-f]{{16}})")
Owner = Literal["tokend", "modified", "foreign", "none"]


class AutostartError(TokendError):
    """A login item could not be written, registered or removed."""


class Runner(Protocol):
    """Runs a command and returns ``(exit status, stdout + stderr)``; never raises."""

    def __call__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, str]: ...


def run_command(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 10
) -> tuple[int, str]:
    """The real :class:`Runner`: a missing program is status 127, a hang status 124,
    like a shell, so callers test one number instead of catching three exceptions."""
    try:
        proc = subprocess.run(
            list(argv), env=None if env is None else dict(env), capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    except FileNotFoundError as exc:
        return 127, str(exc)
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} did not answer within {timeout:g} s"
    except OSError as exc:
        return 126, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


class InstallResult(Enum):
    CREATED = "created"
    UPDATED = "updated"
    """tokend's own item was out of date (interpreter moved, TOKEND_HOME changed)."""
    UNCHANGED = "unchanged"
    KEPT = "kept"
    """A foreign or user-edited item is already there; it was left as it is."""


class UninstallResult(Enum):
    REMOVED = "removed"
    ABSENT = "absent"
    KEPT = "kept"
    """The item is not tokend's (or was edited): left in place, see ``state().detail``."""


@dataclass(frozen=True)
class AutostartState:
    """What is registered now, for ``tokend autostart status`` and ``tokend doctor``."""

    backend: str
    location: str
    installed: bool
    """A login item for tokend exists at ``location``, whoever wrote it."""
    owner: Owner
    current: bool
    """It is tokend's and identical to what ``install()`` would write now."""
    enabled: bool | None
    """The service manager's view (systemd ``is-enabled``); ``None`` where there is none."""
    detail: str
    target: str | None = None
    """The interpreter the installed item runs (``None``: none, or unreadable)."""


@dataclass(frozen=True)
class Command:
    """What the login item runs: the interpreter tokend is installed in, ``-m tokend run``.

    The interpreter is kept as given, never ``resolve()``-d: a pipx or venv
    ``bin/python`` is a symlink to the base interpreter, and following it would
    start a Python that cannot import tokend. An absolute path also survives the
    minimal ``PATH`` that systemd, launchd and session managers provide.
    """

    interpreter: str
    tokend_home: str | None = None

    @property
    def argv(self) -> list[str]:
        return [self.interpreter, "-m", "tokend", "run"]

    @classmethod
    def for_this_process(
        cls, env: Mapping[str, str] | None = None, platform: str = sys.platform
    ) -> Command:
        env = os.environ if env is None else env
        # absolute() and not resolve(): see the class docstring.
        interpreter = str(Path(sys.executable).absolute())
        if platform == "win32":
            # pythonw.exe sits next to python.exe and opens no console window.
            windowless = Path(interpreter).with_name("pythonw.exe")
            if windowless.exists():
                interpreter = str(windowless)
        home = env.get("TOKEND_HOME") or None
        if home:
            home = str(Path(home).expanduser().absolute())
        return cls(interpreter, home)


class Backend(Protocol):
    """One way of starting tokend at login."""

    name: str

    @property
    def location(self) -> str: ...
    def render(self) -> str: ...
    def install(self, *, start: bool = False) -> InstallResult: ...
    def uninstall(self, *, stop: bool = False) -> UninstallResult: ...
    def is_installed(self) -> bool: ...
    def state(self) -> AutostartState: ...


# -- marker and file helpers -----------------------------------------------------------


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _owner(text: str, marker_line: int) -> Owner:
    """Who wrote ``text``: the marker sits on line ``marker_line`` and hashes the rest."""
    lines = text.splitlines(keepends=True)
    if len(lines) <= marker_line:
        return "foreign"
    found = _MARKER_RE.search(lines[marker_line])
    if not found:
        return "foreign"
    rest = "".join(lines[:marker_line] + lines[marker_line + 1 :])
    return "tokend" if found.group(1) == _digest(rest) else "modified"


def with_marker(body: str, at_line: int, comment: str) -> str:
    """Insert the marker line (``comment`` formats it) at ``at_line`` of ``body``."""
    lines = body.splitlines(keepends=True)
    marker = comment.format(f"{MARKER} sha256={_digest(body)}: {_NOTE}") + "\n"
    return "".join([*lines[:at_line], marker, *lines[at_line:]])


def strip_marker(text: str) -> str:
    """``text`` without its marker line: what ``packaging/`` ships as a template."""
    return "".join(line for line in text.splitlines(keepends=True) if MARKER not in line)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AutostartError(f"cannot read {path}: {exc}") from exc


def _write(path: Path, text: str) -> None:
    """Atomic write (temp file + ``os.replace``): a login item is never half written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
    except OSError as exc:
        raise AutostartError(
            f"cannot write {path}: {exc.strerror}", hint=f"check that you own {path.parent}"
        ) from exc


class FileBackend:
    """Shared logic of the backends that are one file with a marker comment."""

    name = ""
    path: Path
    _marker_line = 0

    @property
    def location(self) -> str:
        return str(self.path)

    def render(self) -> str:
        raise NotImplementedError

    def _owner(self) -> tuple[str | None, Owner]:
        text = _read(self.path)
        return text, ("none" if text is None else _owner(text, self._marker_line))

    def is_installed(self) -> bool:
        return self.path.exists()

    def _write_if_needed(self) -> InstallResult:
        text, owner = self._owner()
        if owner in ("foreign", "modified"):
            return InstallResult.KEPT
        wanted = self.render()
        if text == wanted:
            return InstallResult.UNCHANGED
        _write(self.path, wanted)
        return InstallResult.CREATED if text is None else InstallResult.UPDATED

    def _remove_if_ours(self) -> UninstallResult:
        _, owner = self._owner()
        if owner == "none":
            return UninstallResult.ABSENT
        if owner != "tokend":
            return UninstallResult.KEPT
        try:
            self.path.unlink()
        except FileNotFoundError:
            return UninstallResult.ABSENT
        except OSError as exc:
            raise AutostartError(f"cannot remove {self.path}: {exc.strerror}") from exc
        return UninstallResult.REMOVED

    def _state(self, enabled: bool | None = None) -> AutostartState:
        text, owner = self._owner()
        current = owner == "tokend" and text == self.render()
        detail = {
            "none": "not installed",
            "tokend": "installed by tokend" if current else
            "installed by tokend for another interpreter or TOKEND_HOME "
            "('tokend autostart enable' rewrites it for this one)",
            "modified": "written by tokend and edited since: tokend leaves it alone",
            "foreign": "not written by tokend (no marker): tokend leaves it alone",
        }[owner]
        target = self.target(text) if text is not None else None
        return AutostartState(
            self.name, self.location, text is not None, owner, current, enabled, detail, target
        )

    def target(self, text: str) -> str | None:
        """The interpreter an item's ``text`` runs, so ``doctor`` can tell a login item
        whose venv was deleted (broken) from one that merely differs (another install)."""
        raise NotImplementedError


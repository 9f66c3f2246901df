"""Start tokend at login: systemd user unit, XDG autostart, LaunchAgent, Windows Run key.

Each backend has a pure :meth:`~Backend.render` (what would be written) and
``install()`` / ``uninstall()`` / ``is_installed()`` / ``state()``. The file roots, the
command runner (``systemctl``, ``launchctl``) and the Windows registry are
injected, so every backend is tested on any machine against a temp folder, a
recording runner and a fake registry. :func:`current_backend` picks the one for
this machine; the CLI (``tokend autostart``), the tray's "Start at login" toggle
and ``tokend doctor`` all go through it.

Ownership rule (why disabling never destroys a user's work): every file tokend
writes starts with a marker comment that carries a hash of the rest of the file.
``uninstall()`` deletes a file only when the marker is there *and* the hash still
matches, i.e. tokend wrote it and nobody edited it since. A file without the marker
(a unit the user wrote, a packaged copy of ``packaging/``) or with an edited body is
left in place and reported as ``foreign`` / ``modified``; ``install()`` does not
overwrite it either. The Run registry value cannot carry a comment (every value of
that key is executed), so there it is ours when its command is the shape tokend
writes (``... -m tokend run``).

What "enable" does not do: it never starts a second daemon. ``install(start=True)``
asks the service manager to start it now; the CLI passes that only when no daemon
runs, because a second instance exits on the lock and ``Restart=on-failure`` /
``KeepAlive`` would keep retrying it. ``uninstall(stop=False)`` likewise leaves a
running daemon (which may be the very tray that asked) alone.
"""

from __future__ import annotations

import hashlib
import os
import plistlib
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal, Protocol

from tokend.errors import TokendError

__all__ = [
    "BACKENDS",
    "LABEL",
    "MARKER",
    "AutostartError",
    "AutostartState",
    "Backend",
    "Command",
    "InstallResult",
    "LaunchAgent",
    "Registry",
    "Runner",
    "SystemdUnit",
    "UninstallResult",
    "WinRegRunKey",
    "WindowsRunKey",
    "XdgAutostart",
    "current_backend",
    "run_command",
    "set_enabled",
]

LABEL = "local.tokend"
"""launchd label; ``local.`` is the conventional prefix for agents a user installs."""
UNIT_NAME = "tokend.service"
DESKTOP_NAME = "tokend.desktop"
RUN_VALUE = "tokend"
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


def _with_marker(body: str, at_line: int, comment: str) -> str:
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


class _FileBackend:
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


def _first_word(
    text: str, key: str, unescape: Callable[[str], str], *, skip_env: bool = False
) -> str | None:
    """The program of the first ``key`` line (``ExecStart=`` / ``Exec=``), unquoted."""
    import shlex

    for line in text.splitlines():
        if line.startswith(key):
            try:
                words = shlex.split(unescape(line[len(key):]))
            except ValueError:
                return None
            if skip_env and words[:1] == ["env"]:
                words = words[1:]
                while words and "=" in words[0] and not words[0].startswith("/"):
                    words = words[1:]
            return words[0] if words else None
    return None


# -- systemd user unit -------------------------------------------------------------------


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart word: ``%`` is a specifier and ``$`` a variable to systemd."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not re.search(r"[\s\"'\\;]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SystemdUnit(_FileBackend):
    """``$XDG_CONFIG_HOME/systemd/user/tokend.service``, enabled with ``systemctl --user``.

    It is wanted by and part of ``graphical-session.target``: the tray needs the
    session's display, which the desktop imports into the user manager when that
    target starts, and the daemon should stop with the session.
    """

    name = "systemd"

    def __init__(self, config_home: Path, command: Command, runner: Runner = run_command) -> None:
        self.path = config_home / "systemd" / "user" / UNIT_NAME
        self.command = command
        self.runner = runner

    def render(self) -> str:
        lines = [
            "[Unit]",
            "Description=tokend: AI coding token usage windows (tray, alerts, statusline)",
            "After=graphical-session.target",
            "PartOf=graphical-session.target",
            # A crash loop (or a second instance failing on the lock) gives up after
            # five tries instead of restarting forever.
            "StartLimitIntervalSec=300",
            "StartLimitBurst=5",
            "",
            "[Service]",
            "Type=simple",
            "ExecStart=" + " ".join(_systemd_quote(a) for a in self.command.argv),
        ]
        if self.command.tokend_home:
            value = f"TOKEND_HOME={self.command.tokend_home}".replace("%", "%%")
            lines.append("Environment=" + '"' + value.replace("\\", "\\\\").replace('"', '\\"')
                         + '"')
        lines += [
            "Restart=on-failure",
            "RestartSec=10",
            "",
            "[Install]",
            "WantedBy=graphical-session.target",
        ]
        return _with_marker("\n".join(lines) + "\n", 0, "# {}")

    def target(self, text: str) -> str | None:
        return _first_word(text, "ExecStart=", lambda v: v.replace("%%", "%"))

    def _systemctl(self, *args: str) -> tuple[int, str]:
        return self.runner(["systemctl", "--user", *args])

    def _is_enabled(self) -> bool | None:
        rc, out = self._systemctl("is-enabled", UNIT_NAME)
        if rc == 0:
            return True
        return False if out.strip() in ("disabled", "not-found", "") or rc == 1 else None

    def install(self, *, start: bool = False) -> InstallResult:
        result = self._write_if_needed()
        if result is InstallResult.KEPT:
            return result
        if result is not InstallResult.UNCHANGED:
            self._check(self._systemctl("daemon-reload"), "daemon-reload")
        if not self._is_enabled():
            self._check(self._systemctl("enable", UNIT_NAME), "enable")
        if start:
            self._check(self._systemctl("start", UNIT_NAME), "start")
        return result

    def uninstall(self, *, stop: bool = False) -> UninstallResult:
        _, owner = self._owner()
        if owner != "tokend":
            return UninstallResult.ABSENT if owner == "none" else UninstallResult.KEPT
        self._check(self._systemctl("disable", *(["--now"] if stop else []), UNIT_NAME),
                    "disable")
        result = self._remove_if_ours()
        self._systemctl("daemon-reload")
        return result

    def state(self) -> AutostartState:
        return self._state(self._is_enabled() if self.is_installed() else False)

    def _check(self, outcome: tuple[int, str], what: str) -> None:
        rc, out = outcome
        if rc != 0:
            raise AutostartError(
                f"systemctl --user {what} failed ({rc}): {out}",
                hint="is a systemd user manager running? 'tokend autostart enable --backend xdg' "
                "uses an XDG autostart file instead",
            )


# -- XDG autostart ---------------------------------------------------------------------

_DESKTOP_RESERVED = re.compile(r"[\s\"'\\><~|&;$*?#()`]")


def _desktop_quote(arg: str) -> str:
    """Quote one Exec word per the Desktop Entry spec, then escape it as a string value."""
    arg = arg.replace("%", "%%")
    if _DESKTOP_RESERVED.search(arg):
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return arg.replace("\\", "\\\\")


class XdgAutostart(_FileBackend):
    """``$XDG_CONFIG_HOME/autostart/tokend.desktop``, started by the desktop session.

    The fallback when no systemd user manager runs the graphical session. Nothing
    restarts the daemon here, so there is no service manager to call.
    """

    name = "xdg"

    def __init__(self, config_home: Path, command: Command) -> None:
        self.path = config_home / "autostart" / DESKTOP_NAME
        self.command = command

    def render(self) -> str:
        argv = self.command.argv
        if self.command.tokend_home:
            argv = ["env", f"TOKEND_HOME={self.command.tokend_home}", *argv]
        lines = [
            "[Desktop Entry]",
            "Type=Application",
            "Name=tokend",
            "GenericName=AI coding token usage",
            "Comment=Rolling 5-hour and weekly usage windows of Claude Code, Codex CLI and "
            "Gemini CLI in the tray",
            "Exec=" + " ".join(_desktop_quote(a) for a in argv),
            "Terminal=false",
            "NoDisplay=true",
            "X-GNOME-Autostart-enabled=true",
        ]
        return _with_marker("\n".join(lines) + "\n", 0, "# {}")

    def target(self, text: str) -> str | None:
        return _first_word(text, "Exec=",
                           lambda v: v.replace("\\\\", "\\").replace("%%", "%"), skip_env=True)

    def install(self, *, start: bool = False) -> InstallResult:
        return self._write_if_needed()

    def uninstall(self, *, stop: bool = False) -> UninstallResult:
        return self._remove_if_ours()

    def state(self) -> AutostartState:
        return self._state(None)


# -- macOS LaunchAgent -----------------------------------------------------------------


class LaunchAgent(_FileBackend):
    """``~/Library/LaunchAgents/local.tokend.plist``, loaded with ``launchctl bootstrap``.

    ``KeepAlive = {SuccessfulExit: false}`` restarts a crash but not ``tokend stop``
    (which exits 0); ``LimitLoadToSessionType = Aqua`` keeps it to GUI logins, where
    the menu bar exists. launchd opens the log files itself, so their folder is
    created on install.
    """

    name = "launchd"
    _marker_line = 2

    def __init__(
        self, home: Path, command: Command, log_dir: Path, runner: Runner = run_command,
        uid: int | None = None,
    ) -> None:
        self.path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        self.command = command
        self.log_dir = log_dir
        self.runner = runner
        self.uid = uid if uid is not None else (os.getuid() if hasattr(os, "getuid") else 0)

    def render(self) -> str:
        data: dict[str, object] = {
            "Label": LABEL,
            "ProgramArguments": self.command.argv,
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "ProcessType": "Interactive",
            "LimitLoadToSessionType": "Aqua",
            "StandardOutPath": str(self.log_dir / "launchd.out.log"),
            "StandardErrorPath": str(self.log_dir / "launchd.err.log"),
        }
        if self.command.tokend_home:
            data["EnvironmentVariables"] = {"TOKEND_HOME": self.command.tokend_home}
        body = plistlib.dumps(data, fmt=plistlib.FMT_XML, sort_keys=True).decode("utf-8")
        return _with_marker(body, 2, "<!-- {} -->")

    def target(self, text: str) -> str | None:
        try:
            args = plistlib.loads(text.encode("utf-8")).get("ProgramArguments")
        except Exception:  # plistlib raises several types for a broken file
            return None
        return args[0] if isinstance(args, list) and args and isinstance(args[0], str) else None

    @property
    def _domain(self) -> str:
        return f"gui/{self.uid}"

    def install(self, *, start: bool = False) -> InstallResult:
        result = self._write_if_needed()
        if result is InstallResult.KEPT:
            return result
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AutostartError(f"cannot create {self.log_dir}: {exc.strerror}") from exc
        if start:
            # A changed plist only takes effect once the old job is booted out. Without
            # ``start`` nothing is booted out: the job may be the caller itself, and the
            # new file is read at the next login anyway.
            if result is InstallResult.UPDATED:
                self.runner(["launchctl", "bootout", f"{self._domain}/{LABEL}"])
            rc, out = self.runner(["launchctl", "bootstrap", self._domain, str(self.path)])
            target = f"{self._domain}/{LABEL}"
            if rc != 0 and self.runner(["launchctl", "print", target])[0] == 0:
                # Still loaded from before (disabled without --stop): just start it.
                rc, out = self.runner(["launchctl", "kickstart", target])
            if rc != 0:
                raise AutostartError(
                    f"launchctl bootstrap failed ({rc}): {out}",
                    hint="the agent still loads at your next login",
                )
        return result

    def uninstall(self, *, stop: bool = False) -> UninstallResult:
        _, owner = self._owner()
        if owner == "tokend" and stop:
            self.runner(["launchctl", "bootout", f"{self._domain}/{LABEL}"])
        return self._remove_if_ours()

    def state(self) -> AutostartState:
        return self._state(None)


# -- Windows Run key -------------------------------------------------------------------


class Registry(Protocol):
    """The values of ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``."""

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


class WinRegRunKey:
    """The real :class:`Registry`, through :mod:`winreg` (Windows only)."""

    KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"

    def get(self, name: str) -> str | None:
        if sys.platform != "win32":
            raise AutostartError("the Windows registry exists only on Windows")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.KEY) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        if sys.platform != "win32":
            raise AutostartError("the Windows registry exists only on Windows")
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, self.KEY) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        if sys.platform != "win32":
            raise AutostartError("the Windows registry exists only on Windows")
        import winreg

        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.DeleteValue(key, name)


_OURS_RE = re.compile(r"(-m tokend run|runpy\.run_module\('tokend'.*\brun)\s*$")
_RUN_MAX = 260  # Windows documents this limit for Run/RunOnce command lines


class WindowsRunKey:
    """The ``tokend`` value of the per-user Run key, running ``pythonw.exe -m tokend run``.

    A Run value has no environment of its own, so with ``TOKEND_HOME`` set the
    command becomes ``pythonw -c "<set TOKEND_HOME; run tokend>" run`` instead of a
    ``cmd /c set ...`` wrapper, which would flash a console window at every login.
    """

    name = "windows"

    def __init__(self, command: Command, registry: Registry | None = None) -> None:
        self.command = command
        self.registry: Registry = registry if registry is not None else WinRegRunKey()

    @property
    def location(self) -> str:
        return rf"HKCU\{WinRegRunKey.KEY}\{RUN_VALUE}"

    def render(self) -> str:
        if not self.command.tokend_home:
            return subprocess.list2cmdline(self.command.argv)
        script = (
            f"import os,runpy;os.environ['TOKEND_HOME']={self.command.tokend_home!r};"
            "runpy.run_module('tokend',run_name='__main__')"
        )
        return subprocess.list2cmdline([self.command.interpreter, "-c", script, "run"])

    def _owner(self) -> tuple[str | None, Owner]:
        value = self.registry.get(RUN_VALUE)
        if value is None:
            return None, "none"
        return value, ("tokend" if _OURS_RE.search(value) else "foreign")

    def is_installed(self) -> bool:
        return self.registry.get(RUN_VALUE) is not None

    def install(self, *, start: bool = False) -> InstallResult:
        value, owner = self._owner()
        if owner == "foreign":
            return InstallResult.KEPT
        wanted = self.render()
        if value == wanted:
            return InstallResult.UNCHANGED
        if len(wanted) > _RUN_MAX:
            raise AutostartError(
                f"the login command is {len(wanted)} characters, over the {_RUN_MAX} "
                "Windows runs from the Run key",
                hint="install tokend (pipx) in a shorter path, or a shorter TOKEND_HOME",
            )
        self.registry.set(RUN_VALUE, wanted)
        return InstallResult.CREATED if value is None else InstallResult.UPDATED

    def uninstall(self, *, stop: bool = False) -> UninstallResult:
        _, owner = self._owner()
        if owner == "none":
            return UninstallResult.ABSENT
        if owner != "tokend":
            return UninstallResult.KEPT
        self.registry.delete(RUN_VALUE)
        return UninstallResult.REMOVED

    def state(self) -> AutostartState:
        value, owner = self._owner()
        current = owner == "tokend" and value == self.render()
        detail = {"none": "not installed", "foreign": "the value does not run tokend: left alone",
                  "tokend": "installed by tokend" if current else
                  "installed by tokend for another interpreter or TOKEND_HOME "
                  "('tokend autostart enable' rewrites it for this one)",
                  "modified": ""}[owner]
        target = None
        if value:
            quoted = value.startswith('"')
            target = value[1:].split('"', 1)[0] if quoted else value.split(" ", 1)[0]
        return AutostartState(
            self.name, self.location, value is not None, owner, current, None, detail, target
        )


# -- choosing one ----------------------------------------------------------------------

BACKENDS = ("systemd", "xdg", "launchd", "windows")


def _config_home(env: Mapping[str, str], home: Path) -> Path:
    value = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    return Path(value) if value and Path(value).is_absolute() else home / ".config"


def systemd_session_running(runner: Runner) -> bool:
    """True when a systemd user manager runs *and* has started the graphical session.

    The unit is wanted by ``graphical-session.target``; on a desktop that never
    reaches that target (or with no user manager at all, as in most containers)
    it would never start, so the XDG autostart file is the right choice there.
    """
    rc, out = runner(["systemctl", "--user", "is-active", "graphical-session.target"], timeout=5)
    return rc == 0 and out.strip() == "active"


def current_backend(
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    *,
    name: str | None = None,
    platform: str = sys.platform,
    runner: Runner = run_command,
    registry: Registry | None = None,
    command: Command | None = None,
    log_dir: Path | None = None,
) -> Backend:
    """The login-item backend for this machine, or the one called ``name``.

    On Linux a unit or ``.desktop`` file tokend already wrote wins over detection,
    so ``status`` and ``disable`` find it even from a shell (ssh, tty) where the
    graphical session is not visible.

    :raises AutostartError: for an unknown ``name``.
    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    command = command or Command.for_this_process(env, platform)
    if name is None:
        if platform == "win32":
            name = "windows"
        elif platform == "darwin":
            name = "launchd"
        else:
            config = _config_home(env, home)
            systemd = SystemdUnit(config, command, runner)
            xdg = XdgAutostart(config, command)
            if systemd.is_installed():
                return systemd
            if xdg.is_installed():
                return xdg
            return systemd if systemd_session_running(runner) else xdg
    if name == "systemd":
        return SystemdUnit(_config_home(env, home), command, runner)
    if name == "xdg":
        return XdgAutostart(_config_home(env, home), command)
    if name == "launchd":
        if log_dir is None:
            from tokend.paths import Paths

            log_dir = Paths.from_env(env).log_dir
        return LaunchAgent(home, command, log_dir, runner)
    if name == "windows":
        return WindowsRunKey(command, registry)
    raise AutostartError(
        f"unknown autostart backend {name!r}", hint="one of " + ", ".join(BACKENDS)
    )


def set_enabled(backend: Backend, enabled: bool) -> str:
    """The tray's "Start at login" toggle: register or remove, and say what happened.

    It never starts or stops a daemon (the caller *is* the running daemon). Build
    the backend once with :func:`current_backend` and keep it: ``is_installed()`` is
    then a file check (a registry read on Windows), cheap enough for every menu
    refresh, while detection may run ``systemctl``.

    :raises AutostartError: when the service manager refuses.
    """
    if enabled:
        result = backend.install(start=False)
        if result is InstallResult.KEPT:
            return f"{backend.location} already exists and is not tokend's: left as it is"
        return f"tokend starts at login ({backend.name})"
    removed = backend.uninstall(stop=False)
    if removed is UninstallResult.KEPT:
        return f"{backend.location} is not tokend's (or was edited): remove it yourself"
    return "tokend no longer starts at login"

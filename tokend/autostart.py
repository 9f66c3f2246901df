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

Where the pieces are: the model, the runner and the marker in
:mod:`tokend.autostart_base`; the backends in :mod:`tokend.autostart_linux`
(systemd, XDG), :mod:`tokend.autostart_macos` (LaunchAgent) and
:mod:`tokend.autostart_windows` (Run key). This module chooses one and is the
public face: every name below is importable from ``tokend.autostart``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tokend.autostart_base import (
    MARKER,
    AutostartError,
    AutostartState,
    Backend,
    Command,
    InstallResult,
    Runner,
    UninstallResult,
    run_command,
    strip_marker,
)
from tokend.autostart_linux import DESKTOP_NAME, UNIT_NAME, SystemdUnit, XdgAutostart
from tokend.autostart_macos import LABEL, LaunchAgent
from tokend.autostart_windows import RUN_VALUE, Registry, WindowsRunKey, WinRegRunKey

__all__ = [
    "BACKENDS",
    "DESKTOP_NAME",
    "LABEL",
    "MARKER",
    "RUN_VALUE",
    "UNIT_NAME",
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
    "strip_marker",
    "systemd_session_running",
]

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

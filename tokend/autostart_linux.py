"""Login items on Linux and the other XDG desktops: a systemd user unit, or XDG autostart.

:class:`SystemdUnit` when a systemd user manager runs the graphical session (it
restarts a crashed daemon and stops it with the session); :class:`XdgAutostart`,
a ``.desktop`` file the session starts, where none does. Both are one file with
tokend's marker (:class:`~tokend.autostart_base.FileBackend`); which one applies is
decided in :func:`tokend.autostart.current_backend`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tokend.autostart_base import (
    AutostartError,
    FileBackend,
    InstallResult,
    UninstallResult,
    run_command,
    with_marker,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tokend.autostart_base import AutostartState, Command, Runner

__all__ = ["DESKTOP_NAME", "UNIT_NAME", "SystemdUnit", "XdgAutostart"]

UNIT_NAME = "tokend.service"
DESKTOP_NAME = "tokend.desktop"


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


class SystemdUnit(FileBackend):
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
        return with_marker("\n".join(lines) + "\n", 0, "# {}")

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


class XdgAutostart(FileBackend):
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
        return with_marker("\n".join(lines) + "\n", 0, "# {}")

    def target(self, text: str) -> str | None:
        return _first_word(text, "Exec=",
                           lambda v: v.replace("\\\\", "\\").replace("%%", "%"), skip_env=True)

    def install(self, *, start: bool = False) -> InstallResult:
        return self._write_if_needed()

    def uninstall(self, *, stop: bool = False) -> UninstallResult:
        return self._remove_if_ours()

    def state(self) -> AutostartState:
        return self._state(None)



"""The login item on Windows: the ``tokend`` value of the per-user Run key.

A registry value cannot carry a marker comment (every value of that key is
executed), so here the value is tokend's when its command is the shape tokend
writes (``... -m tokend run``). The registry is injected (:class:`Registry`), so the
backend is tested on any machine against a fake one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Protocol

from tokend.autostart_base import (
    AutostartError,
    AutostartState,
    Command,
    InstallResult,
    Owner,
    UninstallResult,
)

__all__ = ["RUN_VALUE", "Registry", "WinRegRunKey", "WindowsRunKey"]

RUN_VALUE = "tokend"


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


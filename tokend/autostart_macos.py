"""The login item on macOS: a LaunchAgent plist, loaded with ``launchctl``.

One file with tokend's marker (an XML comment on line 3, after the plist's header),
so the ownership rule of :mod:`tokend.autostart_base` applies as on Linux.
"""

from __future__ import annotations

import os
import plistlib
from typing import TYPE_CHECKING

from tokend.autostart_base import (
    AutostartError,
    FileBackend,
    InstallResult,
    run_command,
    with_marker,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tokend.autostart_base import AutostartState, Command, Runner, UninstallResult

__all__ = ["LABEL", "LaunchAgent"]

LABEL = "local.tokend"
"""launchd label; ``local.`` is the conventional prefix for agents a user installs."""


class LaunchAgent(FileBackend):
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
        return with_marker(body, 2, "<!-- {} -->")

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


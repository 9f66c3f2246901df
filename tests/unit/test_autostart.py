"""Login items: golden files, real validators, idempotence and the ownership rule."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tokend.autostart import (
    AutostartError,
    Command,
    InstallResult,
    LaunchAgent,
    SystemdUnit,
    UninstallResult,
    WindowsRunKey,
    XdgAutostart,
    current_backend,
    set_enabled,
    strip_marker,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "autostart"
PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
GOLDEN_CMD = Command("/opt/tokend/venv/bin/python", "/home/ada/tokend home")
WIN_CMD = Command(
    r"C:\Users\ada\pipx\venvs\tokend\Scripts\pythonw.exe", r"C:\Users\ada\tokend home"
)


class Recorder:
    """A fake :class:`~tokend.autostart.Runner`: records argv, answers from a table."""

    def __init__(self, answers: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = dict(answers or {})

    def __call__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, str]:
        self.calls.append(list(argv))
        joined = " ".join(argv)
        for key, answer in self.answers.items():
            if key in joined:
                return answer
        return 0, ""

    def mutating(self) -> list[list[str]]:
        return [c for c in self.calls if not {"is-enabled", "is-active"} & set(c)]


class FakeRegistry:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.writes += 1
        self.values[name] = value

    def delete(self, name: str) -> None:
        del self.values[name]


# -- golden files ----------------------------------------------------------------------


def test_systemd_golden() -> None:
    unit = SystemdUnit(Path("/home/ada/.config"), GOLDEN_CMD, Recorder())
    assert unit.render() == (FIXTURES / "tokend.service").read_text()
    assert unit.location == "/home/ada/.config/systemd/user/tokend.service"


def test_xdg_golden() -> None:
    desktop = XdgAutostart(Path("/home/ada/.config"), GOLDEN_CMD)
    assert desktop.render() == (FIXTURES / "tokend.desktop").read_text()
    assert desktop.location == "/home/ada/.config/autostart/tokend.desktop"


def test_launchd_golden() -> None:
    agent = LaunchAgent(Path("/Users/ada"), GOLDEN_CMD, Path("/Users/ada/Library/Logs/tokend"),
                        Recorder(), uid=501)
    assert agent.render() == (FIXTURES / "local.tokend.plist").read_text()
    assert agent.location == "/Users/ada/Library/LaunchAgents/local.tokend.plist"


def test_windows_golden() -> None:
    key = WindowsRunKey(WIN_CMD, FakeRegistry())
    assert key.render() + "\n" == (FIXTURES / "windows-run.txt").read_text()


def _uncommented(text: str) -> str:
    text = re.sub(r"<!--.*?-->\n", "", text, flags=re.S)
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


@pytest.mark.parametrize(
    ("template", "backend"),
    [
        ("tokend.service", SystemdUnit(Path("/c"), Command("@PYTHON@"), Recorder())),
        ("tokend.desktop", XdgAutostart(Path("/c"), Command("@PYTHON@"))),
        ("local.tokend.plist", LaunchAgent(Path("/h"), Command("@PYTHON@"), Path("@LOG_DIR@"),
                                           Recorder(), uid=1)),
    ],
)
def test_packaging_templates_agree_with_the_code(template: str, backend: SystemdUnit) -> None:
    shipped = (PACKAGING / template).read_text()
    assert _uncommented(shipped) == _uncommented(backend.render())
    assert "tokend-autostart" not in shipped  # a hand-made copy must count as foreign


# -- real validators -------------------------------------------------------------------


def _odd_interpreter(tmp_path: Path) -> str:
    """sys.executable behind a path with a space and a percent sign (quoting traps)."""
    folder = tmp_path / "my env %i" / "bin"
    folder.mkdir(parents=True)
    link = folder / "python"
    link.symlink_to(sys.executable)
    return str(link)


@pytest.mark.parametrize("odd", [False, True])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, odd: bool) -> None:
    interpreter = _odd_interpreter(tmp_path) if odd else sys.executable
    home = str(tmp_path / "home with space %h") if odd else None
    unit = SystemdUnit(tmp_path / "cfg", Command(interpreter, home), Recorder())
    path = tmp_path / "tokend.service"
    path.write_text(unit.render())
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(path)], capture_output=True, text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, check=False,
    )
    # rc 0 alone is not enough: unknown keys are only warnings on stderr.
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")


def test_systemd_analyze_catches_a_bad_unit(tmp_path: Path) -> None:
    """The validator test above is meaningful: a typo in a key is reported."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    path = tmp_path / "tokend.service"
    good = SystemdUnit(tmp_path, Command(sys.executable), Recorder()).render()
    path.write_text(good.replace("Restart=", "Restartt="))
    proc = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(path)], capture_output=True, text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, check=False,
    )
    assert "Restartt" in proc.stderr


@pytest.mark.parametrize("odd", [False, True])
def test_desktop_file_validates(tmp_path: Path, odd: bool) -> None:
    interpreter = _odd_interpreter(tmp_path) if odd else sys.executable
    home = str(tmp_path / "home $with 'quotes' %u") if odd else None
    desktop = XdgAutostart(tmp_path / "cfg", Command(interpreter, home))
    path = tmp_path / "tokend.desktop"
    path.write_text(desktop.render())
    proc = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True,
                          check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def _desktop_exec_argv(value: str) -> list[str]:
    """Undo the Desktop Entry string escaping and Exec quoting (the spec's rules)."""
    value = value.replace("\\\\", "\\")
    out, word, quoted, i, started = [], "", False, 0, False
    while i < len(value):
        c = value[i]
        if c == "%":
            # "%%" is a literal percent; anything else is a field code the launcher expands.
            assert value[i + 1] == "%", f"field code %{value[i + 1]} in Exec"
            word += "%"
            i += 2
            continue
        if quoted and c == "\\" and i + 1 < len(value):
            word += value[i + 1]
            i += 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if word or started:
                out.append(word)
            word, started = "", False
        else:
            word += c
        i += 1
    if word or started:
        out.append(word)
    return out


def test_desktop_exec_round_trips_odd_paths(tmp_path: Path) -> None:
    interpreter = _odd_interpreter(tmp_path)
    home = str(tmp_path / 'h $x "q" \\ %u')
    text = XdgAutostart(tmp_path, Command(interpreter, home)).render()
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    argv = _desktop_exec_argv(exec_line.removeprefix("Exec="))
    assert argv == ["env", f"TOKEND_HOME={home}", interpreter, "-m", "tokend", "run"]


def test_plist_parses_back_with_the_right_types(tmp_path: Path) -> None:
    agent = LaunchAgent(tmp_path, Command(sys.executable, "/th"), tmp_path / "logs",
                        Recorder(), uid=501)
    data = plistlib.loads(agent.render().encode())
    assert data["Label"] == "local.tokend"
    assert data["ProgramArguments"] == [sys.executable, "-m", "tokend", "run"]
    assert all(isinstance(a, str) for a in data["ProgramArguments"])
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StandardOutPath"] == str(tmp_path / "logs" / "launchd.out.log")
    assert data["StandardErrorPath"] == str(tmp_path / "logs" / "launchd.err.log")
    assert data["EnvironmentVariables"] == {"TOKEND_HOME": "/th"}
    no_home = LaunchAgent(tmp_path, Command(sys.executable), tmp_path, Recorder(), uid=1)
    assert "EnvironmentVariables" not in plistlib.loads(no_home.render().encode())


def test_tokend_home_is_passed_only_when_set() -> None:
    cfg = Path("/c")
    assert "TOKEND_HOME" not in SystemdUnit(cfg, Command("/p"), Recorder()).render()
    assert 'Environment="TOKEND_HOME=/x"' in SystemdUnit(cfg, Command("/p", "/x"),
                                                         Recorder()).render()
    assert "TOKEND_HOME" not in XdgAutostart(cfg, Command("/p")).render()
    assert WindowsRunKey(Command("C:\\p.exe"), FakeRegistry()).render() == "C:\\p.exe -m tokend run"


def test_command_for_this_process_keeps_venv_symlink(tmp_path: Path) -> None:
    command = Command.for_this_process({"TOKEND_HOME": "~/th"}, platform="linux")
    assert command.interpreter == str(Path(sys.executable).absolute())
    assert command.tokend_home == str(Path("~/th").expanduser().absolute())
    assert Command.for_this_process({}, platform="linux").tokend_home is None


# -- install / uninstall ---------------------------------------------------------------


def test_systemd_enable_twice_changes_nothing(tmp_path: Path) -> None:
    runner = Recorder({"is-enabled": (1, "disabled")})
    unit = SystemdUnit(tmp_path, Command(sys.executable), runner)
    assert unit.install() is InstallResult.CREATED
    assert runner.mutating() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "tokend.service"],
    ]
    stamp = unit.path.stat().st_mtime_ns
    runner.calls.clear()
    runner.answers = {"is-enabled": (0, "enabled")}
    assert unit.install() is InstallResult.UNCHANGED
    assert runner.mutating() == []
    assert unit.path.stat().st_mtime_ns == stamp
    assert unit.state().current and unit.state().enabled


def test_systemd_start_now_and_disable(tmp_path: Path) -> None:
    runner = Recorder({"is-enabled": (1, "disabled")})
    unit = SystemdUnit(tmp_path, Command(sys.executable), runner)
    unit.install(start=True)
    assert ["systemctl", "--user", "start", "tokend.service"] in runner.calls
    runner.calls.clear()
    assert unit.uninstall() is UninstallResult.REMOVED
    assert not unit.path.exists()
    assert runner.calls[0] == ["systemctl", "--user", "disable", "tokend.service"]
    assert unit.uninstall() is UninstallResult.ABSENT


def test_systemd_failure_names_the_fallback(tmp_path: Path) -> None:
    runner = Recorder({"enable": (1, "Failed to connect to bus: No medium found"),
                       "is-enabled": (1, "")})
    with pytest.raises(AutostartError) as info:
        SystemdUnit(tmp_path, Command(sys.executable), runner).install()
    assert "--backend xdg" in info.value.hint


def test_moved_interpreter_updates_the_item(tmp_path: Path) -> None:
    runner = Recorder({"is-enabled": (0, "enabled")})
    SystemdUnit(tmp_path, Command("/old/python"), runner).install()
    unit = SystemdUnit(tmp_path, Command("/new/python"), runner)
    assert not unit.state().current
    runner.calls.clear()
    assert unit.install() is InstallResult.UPDATED
    assert ["systemctl", "--user", "daemon-reload"] in runner.calls
    assert "/new/python -m tokend run" in unit.path.read_text()


@pytest.mark.parametrize("make", ["systemd", "xdg", "launchd"])
def test_disable_leaves_foreign_and_edited_files(tmp_path: Path, make: str) -> None:
    runner = Recorder({"is-enabled": (1, "disabled")})
    backend = current_backend({}, tmp_path, name=make, platform="linux", runner=runner,
                              command=Command(sys.executable), log_dir=tmp_path / "log")
    path = Path(backend.location)
    # A file the user wrote themselves (no marker): never touched.
    path.parent.mkdir(parents=True)
    foreign = backend.render().split("\n", 1)[1] if make != "launchd" else "<plist/>\n"
    path.write_text(foreign)
    assert backend.install() is InstallResult.KEPT
    assert backend.uninstall(stop=True) is UninstallResult.KEPT
    assert path.read_text() == foreign
    assert backend.state().owner == "foreign"
    assert runner.mutating() == []
    # tokend's own file, edited by the user afterwards: kept as well.
    path.unlink()
    backend.install()
    old, new = ("<true/>", "<false/>") if make == "launchd" else ("tokend run", "tokend run -v")
    edited = path.read_text().replace(old, new)
    assert edited != path.read_text()
    path.write_text(edited)
    runner.calls.clear()
    assert backend.state().owner == "modified"
    assert backend.install() is InstallResult.KEPT
    assert backend.uninstall() is UninstallResult.KEPT
    assert path.read_text() == edited
    assert runner.mutating() == []


def test_xdg_enable_twice_and_disable(tmp_path: Path) -> None:
    desktop = XdgAutostart(tmp_path, Command(sys.executable))
    assert not desktop.is_installed()
    assert desktop.install() is InstallResult.CREATED
    stamp = desktop.path.stat().st_mtime_ns
    assert desktop.install() is InstallResult.UNCHANGED
    assert desktop.path.stat().st_mtime_ns == stamp
    other = desktop.path.with_name("other-app.desktop")
    other.write_text("[Desktop Entry]\n")
    assert desktop.uninstall() is UninstallResult.REMOVED
    assert not desktop.path.exists() and other.exists()


def test_launchd_bootstrap_and_bootout(tmp_path: Path) -> None:
    runner = Recorder()
    agent = LaunchAgent(tmp_path, Command(sys.executable), tmp_path / "logs", runner, uid=501)
    assert agent.install() is InstallResult.CREATED
    assert runner.calls == []  # loads at next login; nothing started behind the tray's back
    assert (tmp_path / "logs").is_dir()
    assert agent.install(start=True) is InstallResult.UNCHANGED
    assert runner.calls == [["launchctl", "bootstrap", "gui/501", agent.location]]
    runner.calls.clear()
    assert agent.uninstall() is UninstallResult.REMOVED
    assert runner.calls == []  # a running daemon is not killed by "disable"
    agent.install()
    assert agent.uninstall(stop=True) is UninstallResult.REMOVED
    assert runner.calls == [["launchctl", "bootout", "gui/501/local.tokend"]]


def test_launchd_job_still_loaded_is_kickstarted(tmp_path: Path) -> None:
    runner = Recorder({"bootstrap": (5, "Bootstrap failed: 5: Input/output error")})
    agent = LaunchAgent(tmp_path, Command(sys.executable), tmp_path / "logs", runner, uid=501)
    agent.install(start=True)
    assert runner.calls[-1] == ["launchctl", "kickstart", "gui/501/local.tokend"]
    runner.answers["print"] = (113, "Could not find service")
    agent.uninstall()
    with pytest.raises(AutostartError):
        agent.install(start=True)


def test_windows_run_key_against_a_fake_registry() -> None:
    registry = FakeRegistry()
    key = WindowsRunKey(WIN_CMD, registry)
    assert not key.is_installed()
    assert key.install() is InstallResult.CREATED
    assert key.install() is InstallResult.UNCHANGED
    assert registry.writes == 1
    value = registry.values["tokend"]
    assert value.startswith(WIN_CMD.interpreter) and "pythonw.exe" in value
    assert key.state().current
    assert key.uninstall() is UninstallResult.REMOVED
    assert registry.values == {}
    registry.values["tokend"] = r"C:\Tools\something-else.exe --tray"
    assert key.install() is InstallResult.KEPT
    assert key.uninstall() is UninstallResult.KEPT
    assert registry.values["tokend"] == r"C:\Tools\something-else.exe --tray"


def test_windows_tokend_home_script_runs(tmp_path: Path) -> None:
    """The -c form really sets TOKEND_HOME and runs tokend's __main__ with 'run'."""
    key = WindowsRunKey(Command(sys.executable, str(tmp_path / "it's here")), FakeRegistry())
    value = key.render()
    script = value.split(" -c ", 1)[1].rsplit(" run", 1)[0]
    script = script[1:-1].replace('\\"', '"')  # list2cmdline quoting of one argument
    probe = script.replace("runpy.run_module('tokend',run_name='__main__')",
                           "print(os.environ['TOKEND_HOME'])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(tmp_path / "it's here")


def test_windows_refuses_an_overlong_command() -> None:
    key = WindowsRunKey(Command("C:\\" + "x" * 300 + "\\pythonw.exe"), FakeRegistry())
    with pytest.raises(AutostartError):
        key.install()


# -- choosing a backend ----------------------------------------------------------------


def test_current_backend_by_platform(tmp_path: Path) -> None:
    cmd = Command(sys.executable)
    win = current_backend({}, tmp_path, platform="win32", registry=FakeRegistry(), command=cmd)
    assert win.name == "windows"
    mac = current_backend({}, tmp_path, platform="darwin", command=cmd, log_dir=tmp_path)
    assert mac.name == "launchd"
    active = Recorder({"is-active": (0, "active")})
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    linux = current_backend(env, tmp_path, platform="linux", runner=active, command=cmd)
    assert linux.name == "systemd"
    assert linux.location.startswith(str(tmp_path / "xdg"))
    no_manager = Recorder({"is-active": (1, "Failed to connect to bus: No medium found")})
    linux = current_backend(env, tmp_path, platform="linux", runner=no_manager, command=cmd)
    assert linux.name == "xdg"
    missing = Recorder({"is-active": (127, "No such file or directory: 'systemctl'")})
    chosen = current_backend({}, tmp_path, platform="linux", runner=missing, command=cmd)
    assert chosen.name == "xdg"


def test_an_existing_item_wins_over_detection(tmp_path: Path) -> None:
    cmd = Command(sys.executable)
    XdgAutostart(tmp_path / ".config", cmd).install()
    active = Recorder({"is-active": (0, "active")})
    chosen = current_backend({}, tmp_path, platform="linux", runner=active, command=cmd)
    assert chosen.name == "xdg" and chosen.is_installed()


def test_relative_xdg_config_home_is_ignored(tmp_path: Path) -> None:
    chosen = current_backend({"XDG_CONFIG_HOME": "rel"}, tmp_path, name="xdg",
                             command=Command("/p"))
    assert chosen.location == str(tmp_path / ".config" / "autostart" / "tokend.desktop")


def test_unknown_backend_name() -> None:
    with pytest.raises(AutostartError):
        current_backend({}, Path("/"), name="upstart")


def test_strip_marker_gives_the_body() -> None:
    text = XdgAutostart(Path("/c"), Command("/p")).render()
    assert text.startswith("# tokend-autostart sha256=")
    assert strip_marker(text).startswith("[Desktop Entry]\n")


def test_validators_are_installed() -> None:
    """CI must have them: apt packages systemd and desktop-file-utils."""
    assert shutil.which("systemd-analyze") and shutil.which("desktop-file-validate")


def test_tray_toggle_facade(tmp_path: Path) -> None:
    runner = Recorder({"is-enabled": (1, "disabled")})
    backend = current_backend({}, tmp_path, name="systemd", runner=runner,
                              command=Command(sys.executable))
    assert not backend.is_installed()
    assert "starts at login" in set_enabled(backend, True)
    assert backend.is_installed()
    assert not any(c[-2] == "start" for c in runner.calls)  # never starts a second daemon
    assert "no longer" in set_enabled(backend, False)
    assert not backend.is_installed()
    assert not any("--now" in c for c in runner.calls)  # never stops the caller
    Path(backend.location).write_text("[Unit]\n")
    assert "remove it yourself" in set_enabled(backend, False)
    assert backend.is_installed()


def test_cli_enable_status_disable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tokend.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("TOKEND_HOME", str(tmp_path / "th"))
    desktop = tmp_path / "cfg" / "autostart" / "tokend.desktop"
    assert main(["autostart", "enable", "--backend", "xdg"]) == 0
    assert "enabled" in capsys.readouterr().out
    assert f"TOKEND_HOME={tmp_path / 'th'}" in desktop.read_text()
    assert main(["autostart", "enable", "--backend", "xdg"]) == 0
    assert "already enabled" in capsys.readouterr().out
    assert main(["autostart", "status", "--backend", "xdg", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["installed"] and state["owner"] == "tokend" and state["current"]
    assert main(["autostart", "disable", "--backend", "xdg"]) == 0
    assert not desktop.exists()
    capsys.readouterr()
    desktop.write_text("[Desktop Entry]\nType=Application\nName=mine\nExec=mine\n")
    assert main(["autostart", "disable", "--backend", "xdg"]) == 1
    assert "left in place" in capsys.readouterr().out
    assert desktop.exists()


@pytest.mark.parametrize("name", ["systemd", "xdg", "launchd", "windows"])
def test_state_names_the_interpreter_the_item_runs(tmp_path: Path, name: str) -> None:
    """doctor tells "venv deleted" from "another install" by this path."""
    interpreter = _odd_interpreter(tmp_path)
    if name == "windows":
        interpreter = r"C:\Program Files\Python 3.12\pythonw.exe"
    backend = current_backend({}, tmp_path, name=name, platform="linux",
                              runner=Recorder({"is-enabled": (1, "disabled")}),
                              registry=FakeRegistry(), log_dir=tmp_path / "log",
                              command=Command(interpreter, str(tmp_path / "a b=c")))
    assert backend.state().target is None
    backend.install()
    assert backend.state().target == interpreter

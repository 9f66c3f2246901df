"""``tokend doctor``: check every moving part and say how to fix what is wrong.

Each check is a small function that takes what it looks at (paths, environment,
a command runner, a D-Bus query, the clock) and returns :class:`Finding` values,
so a test drives it healthy and broken without touching the machine it runs on.
:func:`run_checks` wires them to the real world from a :class:`~tokend.context.Context`.

Severity (why the exit status is what it is):

- ``error``: tokend cannot track or show usage correctly: the config does not
  load, the store is corrupt or from a newer tokend, the daemon runs but has
  stopped publishing, or the login item points at an interpreter that is gone.
  ``tokend doctor`` exits 1 when there is at least one.
- ``warn``: a feature is degraded but counting goes on: no tray host, no
  notification server, daemon not running, old price table, unpriced models.
  Exit 0, unless ``--strict``.
- ``info`` and ``ok``: facts (an agent that is not installed, autostart off).

Every ``warn`` and ``error`` carries ``fix``: the command (or the one step) that
fixes it; an ``info`` carries one when there is something worth turning on.
Checks that depend on a module another part of tokend owns import it lazily and
report ``unknown (module missing)`` when it is not there.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tokend.autostart import AutostartError, Backend, Runner, run_command
from tokend.paths import Paths

if TYPE_CHECKING:
    from tokend.context import Context
    from tokend.sources.base import Root, Source

__all__ = [
    "NOTIFICATIONS",
    "SNI_WATCHER",
    "BusQuery",
    "Finding",
    "check_autostart",
    "check_claude_integration",
    "check_config",
    "check_daemon",
    "check_notifications",
    "check_pricing",
    "check_roots",
    "check_store",
    "check_tray",
    "claude_settings_files",
    "daemon_pid",
    "exit_status",
    "probe_tray_backend",
    "query_session_bus",
    "run_checks",
    "session_bus_address",
]

Status = Literal["ok", "info", "warn", "error"]
BusQuery = Callable[[Sequence[str]], Mapping[str, str]]
"""Names -> ``"owned"`` / ``"activatable"`` / ``"absent"``; raises ``OSError`` with no bus."""

SNI_WATCHER = "org.kde.StatusNotifierWatcher"
NOTIFICATIONS = "org.freedesktop.Notifications"
PRICES_STALE_DAYS = 120
"""Model prices change a few times a year; older than this, new models are likely missing."""
GNOME_EXTENSION = "appindicatorsupport@rgcjonas.gmail.com"


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    check: str
    status: Status
    summary: str
    fix: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "summary": self.summary,
                "fix": self.fix or None, "details": dict(self.details)}


def exit_status(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """1 when something is broken (an error; with ``strict`` a warning too), else 0."""
    bad = {"error", "warn"} if strict else {"error"}
    return 1 if any(f.status in bad for f in findings) else 0


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return f"{int(seconds)} s ago"


# -- config, agents, store -------------------------------------------------------------


def check_config(config_file: Path, load: Callable[[Path], object]) -> Finding:
    """The config file and TOKEND_* variables load; every other check needs that."""
    from tokend.errors import TokendError

    try:
        load(config_file)
    except TokendError as exc:
        return Finding("config", "error", exc.message,
                       fix=exc.hint or f"fix or move away {config_file}")
    where = str(config_file) if config_file.exists() else f"defaults (no {config_file})"
    return Finding("config", "ok", f"loaded {where}", details={"path": str(config_file)})


def check_roots(roots: Sequence[tuple[Source, Root]], now: datetime) -> list[Finding]:
    """Each agent root: found or not, how many log files, when one last changed."""
    out: list[Finding] = []
    for source, root in roots:
        details: dict[str, Any] = {"path": str(root.path), "account": root.account}
        if not root.path.is_dir():
            out.append(Finding(root.agent, "info", f"{root.path}: not found (agent not used "
                               "here, or logs elsewhere)", details={**details, "found": False}))
            continue
        errors: list[OSError] = []
        files = list(source.files(root, errors.append))
        mtimes = []
        for path in files:
            try:
                mtimes.append(path.stat().st_mtime)
            except OSError as exc:
                errors.append(exc)
        last = max(mtimes, default=None)
        details.update(found=True, files=len(files), unreadable=len(errors),
                       last_activity=datetime.fromtimestamp(last, timezone.utc).isoformat()
                       if last is not None else None)
        when = f"last activity {_ago(now.timestamp() - last)}" if last else "no activity yet"
        summary = f"{root.path}: {len(files)} log files, {when}"
        if errors:
            out.append(Finding(root.agent, "warn", f"{summary}; {len(errors)} unreadable",
                               fix=f"check the permissions below {root.path}", details=details))
        else:
            out.append(Finding(root.agent, "ok", summary, details=details))
    if roots and not any(f.details.get("found") for f in out):
        out.append(Finding("agents", "warn", "no agent log folder found",
                           fix="use Claude Code, Codex CLI or Gemini CLI once, or point "
                           "CLAUDE_CONFIG_DIR / CODEX_HOME at their folders"))
    return out


def check_store(path: Path) -> Finding:
    """The store opens, passes ``PRAGMA integrity_check``, and has a schema we know."""
    import sqlite3

    from tokend.store import SCHEMA_VERSION

    rebuild = f"tokend stop; mv '{path}' '{path}.broken'; tokend scan"
    if not path.exists():
        return Finding("store", "warn", f"no store yet at {path}", fix="tokend scan")
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    details: dict[str, Any] = {"path": str(path), "bytes": size}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            problems = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Finding("store", "error", f"{path} cannot be read: {exc}", fix=rebuild,
                       details=details)
    details.update(schema_version=version, integrity=problems[:5])
    if problems != ["ok"]:
        return Finding("store", "error", f"{path} is damaged: {problems[0]}",
                       fix=rebuild + "  (the logs are re-read; nothing is lost)", details=details)
    if version > SCHEMA_VERSION:
        return Finding("store", "error", f"schema {version} is newer than this tokend "
                       f"({SCHEMA_VERSION})", fix="pipx upgrade tokend", details=details)
    return Finding("store", "ok", f"{path}: {size / 1e6:.1f} MB, schema {version}, "
                   "integrity ok", details=details)


# -- daemon ----------------------------------------------------------------------------


def daemon_pid(paths: Paths, platform: str = sys.platform) -> int | None:
    """The daemon's pid (``-1``: running, pid unreadable), or ``None`` when none runs.

    "Running" means "holds the lock", as ``tokend status`` decides it
    (:func:`tokend.daemon.lock_holder`), so both commands agree. Without that
    module, or on Windows (no ``flock``; and ``os.kill(pid, 0)`` would terminate
    the process there), the pid in the lock file is used as is, checked with
    signal 0 where that is harmless.
    """
    if platform != "win32":
        try:
            from tokend.daemon import lock_holder
        except ImportError:
            pass
        else:
            return lock_holder(paths.lock_file)
    try:
        pid = int(paths.lock_file.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid <= 0 or platform == "win32":
        return pid if pid > 0 else None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return pid
    except OSError:
        return None
    return pid


def check_daemon(paths: Paths, now: datetime, pid: int | None, stale_after: float) -> Finding:
    """The daemon runs and its ``status.json`` is fresh (a hung daemon stops publishing)."""
    restart = "tokend stop; tokend start"
    if pid is None:
        return Finding("daemon", "warn", "not running (reports work; no tray, alerts or live "
                       "statusline)", fix="tokend start   (or 'tokend autostart enable')")
    details: dict[str, Any] = {"pid": pid if pid > 0 else None,
                               "status_json": str(paths.status_json)}
    shown = str(pid) if pid > 0 else "unknown"
    try:
        data = json.loads(paths.status_json.read_text(encoding="utf-8"))
        generated = datetime.fromisoformat(str(data["generated_at"]).replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return Finding("daemon", "error", f"running (pid {shown}) but {paths.status_json} is "
                       "missing or unreadable", fix=f"{restart}; see {paths.log_file}",
                       details=details)
    age = now.timestamp() - generated.timestamp()
    details["last_publish_seconds"] = round(age, 1)
    if age > stale_after:
        return Finding("daemon", "error", f"running (pid {shown}) but last published "
                       f"{_ago(age)}: hung?", fix=f"{restart}; see {paths.log_file}",
                       details=details)
    return Finding("daemon", "ok", f"running, pid {shown}, last publish {_ago(age)}",
                   details=details)


# -- D-Bus, tray, notifications --------------------------------------------------------


def session_bus_address(env: Mapping[str, str]) -> str | None:
    """``DBUS_SESSION_BUS_ADDRESS``, else the systemd-style ``$XDG_RUNTIME_DIR/bus``."""
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return env["DBUS_SESSION_BUS_ADDRESS"]
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "bus").exists():
        return f"unix:path={Path(runtime, 'bus')}"
    return None


def query_session_bus(address: str, timeout: float = 2.0) -> BusQuery:
    """A :data:`BusQuery` over dbus-fast (a desktop-notifier dependency on Linux).

    Short timeout: a wedged bus must not hang ``doctor``. ``activatable`` matters
    for notifications: many daemons start on the first message.
    """

    def query(names: Sequence[str]) -> Mapping[str, str]:
        import asyncio

        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        def call(member: str, *body: str) -> Message:
            return Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member=member,
                           signature="s" * len(body), body=list(body))

        async def run() -> dict[str, str]:
            bus = await MessageBus(bus_address=address).connect()
            try:
                reply = await bus.call(call("ListActivatableNames"))
                ok = reply is not None and reply.message_type == MessageType.METHOD_RETURN
                activatable = set(reply.body[0]) if ok and reply is not None else set()
                out = {}
                for name in names:
                    reply = await bus.call(call("NameHasOwner", name))
                    owned = (reply is not None and reply.message_type ==
                             MessageType.METHOD_RETURN and bool(reply.body[0]))
                    out[name] = ("owned" if owned else
                                 "activatable" if name in activatable else "absent")
                return out
            finally:
                bus.disconnect()

        try:
            return asyncio.run(asyncio.wait_for(run(), timeout))
        except (asyncio.TimeoutError, OSError) as exc:
            raise OSError(f"session bus {address}: {exc or 'timeout'}") from exc
        except Exception as exc:  # dbus-fast raises its own errors for auth/protocol
            raise OSError(f"session bus {address}: {exc}") from exc

    return query


def probe_tray_backend(env: Mapping[str, str], runner: Runner) -> tuple[str | None, str]:
    """The backend pystray picks in this environment, asked in a subprocess.

    pystray chooses at import time and its xorg fallback raises (or worse) when
    there is no display, so the question is asked in a throwaway interpreter.
    Returns ``(backend or None, error text)``.
    """
    # A backend that failed to import is dropped from sys.modules again, so the one
    # left is the one pystray chose (Icon.__module__ is pystray._base for some).
    code = ("import sys, pystray; print(next(n for n in ('appindicator', 'gtk', 'xorg', "
            "'darwin', 'win32', 'dummy') if 'pystray._' + n in sys.modules))")
    rc, out = runner([sys.executable, "-c", code], env=env, timeout=15)
    lines = [line for line in out.splitlines() if line.strip()]
    if rc == 0 and lines:
        return lines[-1].strip(), ""
    return None, lines[-1] if lines else f"exit status {rc}"


def check_tray(
    env: Mapping[str, str], platform: str, enabled: bool,
    available: tuple[bool, str] | None, backend: tuple[str | None, str] | None,
    bus: BusQuery | None,
) -> Finding:
    """Can a tray icon show: display, pystray backend, a tray host to show it."""
    if not enabled:
        return Finding("tray", "info", "disabled in the config ([tray] enabled = false)")
    if platform in ("darwin", "win32"):
        return Finding("tray", "ok", "the menu bar / notification area is built in")
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return Finding("tray", "warn", "no display here (DISPLAY / WAYLAND_DISPLAY unset)",
                       fix="run 'tokend doctor' in your desktop session; over ssh or in a "
                       "container the daemon runs headless")
    if available is not None and not available[0]:
        return Finding("tray", "warn", f"tray unavailable: {available[1]}",
                       fix="see packaging/INSTALL.md, 'Tray icon'")
    if backend is None:
        return Finding("tray", "info", "unknown (pystray backend not probed)")
    name, error = backend
    if name is None:
        return Finding("tray", "warn", f"pystray cannot start: {error}",
                       fix="install PyGObject and the AppIndicator typelib "
                       "(Debian/Ubuntu: apt install gir1.2-ayatanaappindicator3-0.1)")
    details = {"backend": name}
    if name != "appindicator":
        return Finding("tray", "ok", f"pystray backend {name} (XEmbed tray area)",
                       details=details)
    if bus is None:
        return Finding("tray", "warn", "no session bus: the AppIndicator icon cannot register",
                       fix="start tokend from your desktop session", details=details)
    try:
        state = bus([SNI_WATCHER])[SNI_WATCHER]
    except OSError as exc:
        return Finding("tray", "warn", f"session bus unreachable: {exc}",
                       fix="start tokend from your desktop session", details=details)
    if state == "owned":
        return Finding("tray", "ok", "pystray backend appindicator, StatusNotifier host "
                       "present", details=details)
    return Finding("tray", "warn", f"no tray host: nobody owns {SNI_WATCHER}, the icon stays "
                   "invisible", fix="on GNOME: install the 'AppIndicator and KStatusNotifierItem"
                   f" Support' extension, then 'gnome-extensions enable {GNOME_EXTENSION}'",
                   details=details)


def check_notifications(platform: str, bus: BusQuery | None) -> Finding:
    """Someone will display desktop notifications."""
    if platform == "darwin":
        return Finding("notifications", "info", "macOS shows them only for a signed Python "
                       "(python.org builds are; Homebrew's is not)")
    if platform == "win32":
        return Finding("notifications", "ok", "Windows toast notifications")
    fix = "install a notification daemon (dunst, mako, xfce4-notifyd) or use a full desktop"
    if bus is None:
        return Finding("notifications", "warn", "no session bus (DBUS_SESSION_BUS_ADDRESS "
                       "unset)", fix="run inside your desktop session")
    try:
        state = bus([NOTIFICATIONS])[NOTIFICATIONS]
    except OSError as exc:
        return Finding("notifications", "warn", f"session bus unreachable: {exc}",
                       fix="run inside your desktop session")
    if state == "owned":
        return Finding("notifications", "ok", f"a server owns {NOTIFICATIONS}")
    if state == "activatable":
        return Finding("notifications", "ok", f"{NOTIFICATIONS} starts on demand")
    return Finding("notifications", "warn", f"nobody owns {NOTIFICATIONS}", fix=fix)


# -- autostart, integration, prices ----------------------------------------------------


def check_autostart(
    backend: Backend, exists: Callable[[str], bool] | None = os.path.exists
) -> Finding:
    """Is the login item there, tokend's, current, enabled, and does its Python exist.

    ``exists`` checks the interpreter the item runs (``None``: skip, e.g. a Windows
    path examined elsewhere).
    """
    try:
        state = backend.state()
    except AutostartError as exc:
        return Finding("autostart", "warn", exc.message, fix=exc.hint or "tokend autostart status")
    details = {"backend": state.backend, "location": state.location, "owner": state.owner,
               "enabled": state.enabled, "runs": state.target}
    where = f"{state.backend} ({state.location})"
    if not state.installed:
        return Finding("autostart", "info", f"off: {where}", fix="tokend autostart enable",
                       details=details)
    if state.owner in ("foreign", "modified"):
        return Finding("autostart", "info", f"{where}: {state.detail}", details=details)
    if state.target and exists is not None and not exists(state.target):
        return Finding("autostart", "error", f"{where} runs {state.target}, which is gone: "
                       "tokend will not start at login", fix="tokend autostart enable",
                       details=details)
    if not state.current:
        return Finding("autostart", "warn", f"{where} differs from what this tokend would "
                       "write (another interpreter or TOKEND_HOME)",
                       fix="tokend autostart enable   (if this is the tokend to start)",
                       details=details)
    if state.enabled is False:
        return Finding("autostart", "warn", f"{where} is written but not enabled",
                       fix="tokend autostart enable", details=details)
    return Finding("autostart", "ok", f"on: {where}", details=details)


def claude_settings_files(env: Mapping[str, str], home: Path) -> list[Path]:
    """Claude Code's user settings: in each ``CLAUDE_CONFIG_DIR`` entry, else ``~/.claude``.

    An entry may name the config dir or its ``projects/`` folder (the Claude source
    accepts both), so a trailing ``projects`` is dropped.
    """
    out = []
    for entry in (e.strip() for e in env.get("CLAUDE_CONFIG_DIR", "").split(",")):
        if not entry:
            continue
        folder = home / entry[2:] if entry == "~" or entry.startswith("~/") else Path(entry)
        out.append((folder.parent if folder.name == "projects" else folder) / "settings.json")
    return out or [home / ".claude" / "settings.json"]


def _program_missing(command: str, path_env: str | None) -> str | None:
    """The program a settings command starts, when it cannot be found; else ``None``."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words:
        return None
    program = words[0]
    if Path(program).is_absolute():
        return None if Path(program).exists() else program
    return None if shutil.which(program, path=path_env) else program


def check_claude_integration(settings_files: Sequence[Path], path_env: str | None) -> Finding:
    """Claude's settings run ``tokend statusline`` (and hooks, if any), and it resolves.

    Matched like :mod:`tokend.integrate` does (``tokend`` and `` statusline`` in the
    command), since it installs an absolute path or ``python -m tokend``.
    """
    statusline: list[str] = []
    hooks: list[str] = []
    for path in settings_files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            return Finding("claude-integration", "warn", f"{path} is not readable JSON: {exc}",
                           fix=f"fix {path}; Claude Code ignores it as it is")
        if not isinstance(data, dict):
            continue
        line = data.get("statusLine")
        command = line.get("command") if isinstance(line, dict) else None
        if isinstance(command, str) and "tokend" in command and " statusline" in command:
            statusline.append(command)
        text = json.dumps(data.get("hooks", ""))
        if "tokend" in text and " hook" in text:
            hooks.append(str(path))
    details = {"files": [str(p) for p in settings_files], "statusline": statusline,
               "hooks": hooks}
    if not statusline:
        return Finding("claude-integration", "info", "Claude's statusLine does not run tokend "
                       "(Claude's official limits are only seen through it)",
                       fix="tokend integrate claude", details=details)
    for command in statusline:
        missing = _program_missing(command, path_env)
        if missing:
            return Finding("claude-integration", "warn", f"Claude's statusLine runs {missing}, "
                           "which is not found", fix="tokend integrate claude   (writes this "
                           "tokend's path; or 'pipx ensurepath' and restart Claude Code)",
                           details=details)
    extra = ", hooks too" if hooks else ""
    return Finding("claude-integration", "ok", f"Claude's statusLine runs tokend{extra}",
                   details=details)


def check_pricing(table_date: date | None, unpriced: Sequence[str], today: date,
                  prices_file: Path) -> Finding:
    """The price table is recent and knows every model seen."""
    details = {"date": table_date.isoformat() if table_date else None,
               "unpriced_models": list(unpriced)}
    if unpriced:
        fix = (f"pipx upgrade tokend, or add their prices to {prices_file}: "
               '[models."<name>"] input = <USD/M>  output = <USD/M>')
        return Finding("pricing", "warn", "no price for " + ", ".join(unpriced) + " (their "
                       "cost shows as unknown)", fix=fix, details=details)
    if table_date is not None and (today - table_date).days > PRICES_STALE_DAYS:
        return Finding("pricing", "warn", f"price table from {table_date}, "
                       f"{(today - table_date).days} days old", fix="pipx upgrade tokend",
                       details=details)
    return Finding("pricing", "ok", f"price table from {table_date or 'unknown date'}, "
                   "every model seen is priced", details=details)


# -- wiring ----------------------------------------------------------------------------


def _missing(check: str, exc: ImportError) -> Finding:
    return Finding(check, "info", f"unknown (module missing: {exc.name or exc})")


TrayProbe = Callable[[Mapping[str, str]], "tuple[bool, str]"]


def run_checks(
    ctx: Context, *, runner: Runner = run_command, bus: BusQuery | None = None,
    platform: str = sys.platform, tray_probe: TrayProbe | None = None,
) -> list[Finding]:
    """Every check against the real machine described by ``ctx``.

    ``bus`` replaces the session-bus query and ``tray_probe`` the tray module's
    :func:`~tokend.tray.tray_available` (tests); by default the first is built from
    the environment's session bus address and the second imported lazily.
    """
    from tokend.config import load_settings

    now = ctx.clock()
    paths = ctx.paths
    out = [check_config(paths.config_file, load_settings)]
    config_ok = out[0].status == "ok"
    if config_ok:
        try:
            out += check_roots(ctx.roots(), now)
        except ImportError as exc:
            out.append(_missing("agents", exc))
    out.append(check_store(paths.store))
    from tokend.statusline import STALE_AFTER_SECONDS

    out.append(check_daemon(paths, now, daemon_pid(paths, platform), STALE_AFTER_SECONDS))
    if bus is None and platform not in ("darwin", "win32"):
        address = session_bus_address(ctx.env)
        bus = query_session_bus(address) if address else None
    out.append(_tray(ctx, platform, runner, bus, config_ok, tray_probe))
    out.append(check_notifications(platform, bus))
    from tokend.autostart import current_backend

    try:
        out.append(check_autostart(current_backend(ctx.env, ctx.home, platform=platform,
                                                   runner=runner)))
    except AutostartError as exc:
        out.append(Finding("autostart", "warn", exc.message,
                           fix=exc.hint or "tokend autostart status"))
    out.append(check_claude_integration(claude_settings_files(ctx.env, ctx.home),
                                        ctx.env.get("PATH")))
    out.append(_pricing(ctx, now.date()) if config_ok else
               Finding("pricing", "info", "unknown (the config did not load)"))
    return out


def _tray(ctx: Context, platform: str, runner: Runner, bus: BusQuery | None,
          config_ok: bool, tray_probe: TrayProbe | None) -> Finding:
    enabled = ctx.settings.tray.enabled if config_ok else True
    if tray_probe is None:
        try:
            tray_probe = importlib.import_module("tokend.tray").tray_available
        except ImportError:
            tray_probe = None
    available = tray_probe(ctx.env) if tray_probe is not None and enabled else None
    backend = None
    if platform not in ("darwin", "win32") and (ctx.env.get("DISPLAY")
                                                 or ctx.env.get("WAYLAND_DISPLAY")):
        backend = probe_tray_backend(ctx.env, runner)
    return check_tray(ctx.env, platform, enabled, available, backend, bus)


def _pricing(ctx: Context, today: date) -> Finding:
    from tokend.errors import TokendError

    try:
        table = ctx.prices
    except ImportError as exc:
        return _missing("pricing", exc)
    except TokendError as exc:
        return Finding("pricing", "error", exc.message,
                       fix=exc.hint or f"fix or move away {ctx.paths.prices_file}")
    raw = getattr(table, "date", None)
    table_date = raw.date() if isinstance(raw, datetime) else raw if isinstance(raw, date) else None
    if isinstance(raw, str):
        try:
            table_date = date.fromisoformat(raw)
        except ValueError:
            table_date = None
    unpriced: list[str] = []
    if ctx.paths.store.exists():
        try:
            with ctx.open_store(readonly=True) as store:
                unpriced = store.unpriced_models()
        except Exception:  # the store check reports a broken store
            unpriced = []
    return check_pricing(table_date, unpriced, today, ctx.paths.prices_file)

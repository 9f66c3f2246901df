"""The tray icon: a live gauge, a one-line title and a menu, through pystray.

Split in two so most of it is testable without a desktop:

- :func:`describe` turns a Snapshot into a :class:`TrayView` (gauge parameters,
  title, menu lines). Pure; the menu and notification texts share their words
  with :mod:`tokend.alerts`.
- :class:`Tray` shows a view with pystray and redraws only when the view changed
  (the daemon recomputes every few seconds; redrawing an unchanged icon makes some
  panels flicker and costs a temp-file write per update on the GTK backends).

pystray is imported only inside :meth:`Tray.run`: importing it without a display
raises (``Xlib.error.DisplayNameError``), and the statusline must stay light.
:func:`tray_available` tells the daemon beforehand, in words, whether a tray can
work here, so it can log the reason once and run headless instead.

``python -m tokend.tray --demo SNAPSHOT_JSON --record FILE`` runs a tray over a
fixed snapshot and records every menu action to FILE: the desktop tests and
``bench/screenshot.py`` drive it as a real process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tokend.alerts import (
    agent_label,
    format_clock,
    format_duration,
    format_percent,
    thresholds_for,
)
from tokend.errors import TokendError
from tokend.gauge import Level

if TYPE_CHECKING:
    from PIL import Image

    from tokend.config import Settings
    from tokend.snapshot import AgentState, Snapshot, WindowState

__all__ = [
    "GaugeSpec",
    "Tray",
    "TrayActions",
    "TrayUnavailable",
    "TrayView",
    "describe",
    "level_for",
    "tray_available",
]

log = logging.getLogger(__name__)

APP_ID = "tokend"
ICON_SIZE = 64
"""The gauge is drawn at 64 px; panels scale it to their 16-24 px slot."""
STALE_AFTER = timedelta(minutes=3)
"""A snapshot older than this is shown dimmed: the daemon stopped computing."""
TICK_SECONDS = 20.0
"""How often the tray re-words itself without new data (minute resolution shown)."""
PAUSE_TOMORROW_AT = 8
"""'Pause until tomorrow' ends at this local hour the next day."""


class TrayActions(Protocol):
    """What the menu items do; implemented by the daemon."""

    def refresh(self) -> None: ...
    def pause_alerts(self, until: datetime | None) -> None: ...
    def open_report(self) -> None: ...
    def open_config(self) -> None: ...
    def autostart_enabled(self) -> bool | None: ...
    def set_autostart(self, enabled: bool) -> None: ...
    def quit(self) -> None: ...


class TrayUnavailable(TokendError):
    """pystray could not show an icon here (no display, no tray host, no backend)."""


# -- the view ----------------------------------------------------------------------


@dataclass(frozen=True)
class GaugeSpec:
    percent: float | None
    level: Level
    stale: bool
    estimate: bool

    def render(self, size: int = ICON_SIZE) -> Image.Image:
        from tokend.gauge import render_gauge

        return render_gauge(
            self.percent, self.level, stale=self.stale, estimate=self.estimate, size=size
        )


@dataclass(frozen=True)
class TrayView:
    """Everything the tray shows; two equal views draw the same pixels and menu."""

    title: str
    gauge: GaugeSpec
    sections: tuple[tuple[str, ...], ...]
    """One tuple of menu lines per agent account."""
    paused_until: datetime | None
    pause_label: str
    tomorrow: datetime
    """When 'Pause alerts → until tomorrow' ends."""


def level_for(percent: float | None, thresholds: tuple[int, ...]) -> Level:
    """Neutral below the first threshold, critical from the top one, warning between.

    With a single threshold, critical starts at 100 %.
    """
    if percent is None or not thresholds or percent < thresholds[0]:
        return "ok"
    top = thresholds[-1] if len(thresholds) > 1 else 100
    return "critical" if percent >= top else "warn"


def describe(
    snapshot: Snapshot | None,
    settings: Settings,
    now: datetime,
    tz: tzinfo | None = None,
) -> TrayView:
    """The tray's picture, title and menu lines for ``snapshot`` at ``now``."""
    tomorrow = (now.astimezone(tz) + timedelta(days=1)).replace(
        hour=PAUSE_TOMORROW_AT, minute=0, second=0, microsecond=0
    )
    if snapshot is None:
        return TrayView(
            title="tokend: starting…",
            gauge=GaugeSpec(None, "ok", stale=True, estimate=False),
            sections=(),
            paused_until=None,
            pause_label="Pause alerts",
            tomorrow=tomorrow,
        )
    stale = now - snapshot.generated_at > STALE_AFTER
    names = [a.agent for a in snapshot.agents if a.found]
    multi = len(names) != len(set(names))
    sections = tuple(
        _section(agent, agent_label(agent, multi), now, tz)
        for agent in snapshot.agents
        if agent.found and agent.windows
    )
    paused = snapshot.alerts_paused_until
    if paused is not None and paused <= now:
        paused = None
    pause_label = (
        f"Alerts paused until {format_clock(paused, now, tz)}" if paused else "Pause alerts"
    )
    # A pin that matches nothing (a typo, an agent not seen yet) falls back to the
    # most constrained window rather than showing nothing.
    pick = snapshot.most_constrained(settings.tray.pin or None) or snapshot.most_constrained()
    if pick is None:
        title = "tokend: no usage seen yet"
        gauge = GaugeSpec(None, "ok", stale=stale, estimate=False)
    else:
        agent, window = pick
        label = agent_label(agent, multi)
        thresholds = thresholds_for(settings.alerts, window.kind)
        gauge = GaugeSpec(
            window.percent,
            level_for(window.percent, thresholds),
            stale=stale,
            estimate=window.provenance != "official",
        )
        title = f"{label} {_kind(window.kind)} {_amount(window)}"
        if window.resets_at is not None and window.resets_at > now:
            title += f" · resets {format_clock(window.resets_at, now, tz)}"
    if stale:
        age = format_duration(now - snapshot.generated_at)
        title += f" (stale: updated {age} ago)"
        sections += ((f"Not updated for {age}: is the daemon busy or stopped?",),)
    return TrayView(title, gauge, sections, paused, pause_label, tomorrow)


def _kind(kind: str) -> str:
    return {"5h": "5h", "weekly": "weekly", "daily": "daily"}.get(kind, kind)


def _amount(window: WindowState) -> str:
    if window.percent is None:
        return f"{_tokens(window.used_tokens)} tok (limit unknown)"
    words = "official" if window.provenance == "official" else "estimate"
    return f"{format_percent(window.percent)} ({words})"


def _tokens(n: float) -> str:
    if n < 1000:
        return f"{n:.0f}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def _section(agent: AgentState, label: str, now: datetime, tz: tzinfo | None) -> tuple[str, ...]:
    lines: list[str] = []
    for i, window in enumerate(agent.windows):
        parts = [f"{_kind(window.kind)} {_amount(window)}"]
        if window.resets_at is not None and window.resets_at > now:
            reset = f"resets {format_clock(window.resets_at, now, tz)}"
            if window.resets_at - now < timedelta(days=1):
                reset += f" (in {format_duration(window.resets_at - now)})"
            parts.append(reset)
        line = " · ".join(parts)
        lines.append(f"{label} · {line}" if i == 0 else line)
    burning = [w for w in agent.windows if w.burn_tokens_per_min > 0]
    if burning:
        window = min(burning, key=lambda w: (w.runs_out_at is None, w.kind != "5h"))
        line = f"burn {_tokens(window.burn_tokens_per_min)} tok/min"
        if window.runs_out_at is not None and window.runs_out_at > now:
            line += f" · runs out {format_clock(window.runs_out_at, now, tz)}"
        elif window.resets_at is not None:
            line += " · lasts until reset"
        lines.append(line)
    return tuple(lines)


# -- availability ------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    ok: bool
    reason: str
    backend: str | None = None


def tray_available(env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether a tray icon can be shown here, and why (not) in words.

    Checked: a display, a tray host (a StatusNotifierWatcher on the session bus or
    an XEmbed system tray on the X display), and what pystray's GTK backends need
    at start-up (a notification service on the bus; without one they raise).
    """
    probe = _probe(env)
    return probe.ok, probe.reason


def _probe(env: Mapping[str, str]) -> _Probe:
    forced = env.get("PYSTRAY_BACKEND") or None
    if sys.platform == "darwin":
        return _Probe(True, "macOS menu bar", forced)
    if sys.platform == "win32":
        return _Probe(True, "Windows notification area", forced)
    if forced == "dummy":
        return _Probe(False, "PYSTRAY_BACKEND=dummy draws nothing")
    display, wayland = env.get("DISPLAY"), env.get("WAYLAND_DISPLAY")
    if not display and not wayland:
        return _Probe(False, "no display (DISPLAY and WAYLAND_DISPLAY unset)")
    xembed = _xembed_host(display) if display else "no X display"
    bus = _bus_names(env)
    sni = isinstance(bus, set) and "org.kde.StatusNotifierWatcher" in bus
    notifications = isinstance(bus, set) and "org.freedesktop.Notifications" in bus
    gtk = _has_gtk()
    hosts = []
    if sni:
        hosts.append("StatusNotifierWatcher")
    if xembed is True:
        hosts.append("XEmbed system tray")
    if not hosts:
        why_bus = bus if isinstance(bus, str) else "nothing owns org.kde.StatusNotifierWatcher"
        why_x = xembed if isinstance(xembed, str) else "no XEmbed system tray"
        return _Probe(False, f"no tray host ({why_bus}; {why_x})")
    host = " and ".join(hosts)
    if forced in (None, "appindicator", "gtk") and gtk and notifications:
        backend = forced or ("appindicator" if sni else "gtk")
        return _Probe(True, f"{backend} ({host})", backend)
    if forced in (None, "xorg") and display and xembed is True:
        why = "" if forced else (
            "; GTK backends need org.freedesktop.Notifications" if gtk else "; no PyGObject"
        )
        return _Probe(True, f"xorg ({host}; menu unavailable{why})", "xorg")
    if forced:
        return _Probe(False, f"PYSTRAY_BACKEND={forced} cannot run here ({host} found)")
    if not gtk:
        return _Probe(False, f"no pystray backend for {host}: PyGObject with GTK 3 is missing")
    return _Probe(
        False,
        f"{host} found, but pystray's GTK backend needs a notification service "
        "(org.freedesktop.Notifications) on the session bus",
    )


def _has_gtk() -> bool:
    import importlib.util

    return importlib.util.find_spec("gi") is not None


def _xembed_host(display: str) -> bool | str:
    """True when some client owns the system tray selection of the default screen."""
    try:
        import Xlib.display
        import Xlib.error
    except ImportError:
        return "python-xlib missing"
    try:
        d = Xlib.display.Display(display)
    except Exception as exc:
        return f"cannot open display {display}: {exc}"
    try:
        atom = d.intern_atom(f"_NET_SYSTEM_TRAY_S{d.get_default_screen()}")
        owner = d.get_selection_owner(atom)
        return True if owner not in (0, None) and getattr(owner, "id", owner) != 0 else (
            "no XEmbed system tray"
        )
    finally:
        d.close()


def _bus_address(env: Mapping[str, str]) -> str | None:
    address = env.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "bus").exists():
        return f"unix:path={Path(runtime, 'bus')}"
    return None


def _bus_names(env: Mapping[str, str]) -> set[str] | str:
    """Names owned or activatable on the session bus, or why the bus is unreachable."""
    address = _bus_address(env)
    if address is None:
        return "no session bus (DBUS_SESSION_BUS_ADDRESS unset)"
    result: list[set[str] | str] = []

    def probe() -> None:
        import asyncio

        async def go() -> set[str]:
            from dbus_fast import Message
            from dbus_fast.aio import MessageBus

            bus = await MessageBus(bus_address=address).connect()
            try:
                names: set[str] = set()
                for member in ("ListNames", "ListActivatableNames"):
                    reply = await bus.call(
                        Message(
                            destination="org.freedesktop.DBus",
                            path="/org/freedesktop/DBus",
                            interface="org.freedesktop.DBus",
                            member=member,
                        )
                    )
                    if reply is not None and reply.body:
                        names.update(str(n) for n in reply.body[0])
                return names
            finally:
                bus.disconnect()

        try:
            result.append(asyncio.run(asyncio.wait_for(go(), 2.0)))
        except Exception as exc:
            result.append(f"session bus unreachable: {exc or type(exc).__name__}")

    # A thread of its own: the caller may already run an asyncio loop.
    thread = threading.Thread(target=probe, name="tokend-tray-probe", daemon=True)
    thread.start()
    thread.join(3.0)
    return result[0] if result else "session bus did not answer"


# -- the icon ----------------------------------------------------------------------


class Tray:
    """The tray icon over pystray.

    :param actions: what the menu items call (on pystray's thread; keep them short).
    :param settings: thresholds (colours) and ``tray.pin``.
    :param clock: "now", for the "in 2 h 15 m" words and staleness.
    :param tz: zone of the times shown (default: local).
    """

    def __init__(
        self,
        actions: TrayActions,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        tz: tzinfo | None = None,
    ) -> None:
        self.actions = actions
        self.settings = settings
        self.clock = clock
        self.tz = tz
        self._lock = threading.RLock()
        self._snapshot: Snapshot | None = None
        self._view = describe(None, settings, clock(), tz)
        self._autostart: bool | None = None
        self._icon: Any = None
        self._stopped = False
        self._up = False
        """The toolkit loop has started (pystray called the setup hook)."""
        self._stop_event = threading.Event()
        self.redraws = 0
        """How many times the icon picture was replaced (tests check change detection)."""

    @property
    def view(self) -> TrayView:
        with self._lock:
            return self._view

    @property
    def backend(self) -> str:
        """The pystray backend in use (``appindicator``, ``gtk``, ``xorg``...), or ``""``."""
        icon = self._icon
        return type(icon).__module__.rsplit("._", 1)[-1] if icon is not None else ""

    def update(self, snapshot: Snapshot) -> None:
        """Show ``snapshot``; a no-op when it would look the same. Thread-safe."""
        with self._lock:
            self._snapshot = snapshot
            self._show(describe(snapshot, self.settings, self.clock(), self.tz))

    def tick(self) -> None:
        """Recompute the time-relative words ("in 2 h 15 m", staleness) without new data."""
        with self._lock:
            self._show(describe(self._snapshot, self.settings, self.clock(), self.tz))

    def run(self, setup: Callable[[], None]) -> None:
        """Show the icon and block (call from the main thread) until :meth:`stop`.

        ``setup`` runs once in a thread when the icon is up.
        :raises TrayUnavailable: pystray could not start here.
        """
        probe = _probe(os.environ)
        if probe.backend and "PYSTRAY_BACKEND" not in os.environ:
            # pystray picks its backend from the environment at import time.
            os.environ["PYSTRAY_BACKEND"] = probe.backend
        _name_program()
        try:
            import pystray
        except Exception as exc:
            raise TrayUnavailable(
                f"cannot load a tray backend: {exc}", hint=probe.reason
            ) from exc
        with self._lock:
            if self._stopped:
                return
            view = self._view
            self._autostart = self._autostart_state()
            self._icon = pystray.Icon(
                APP_ID, view.gauge.render(), _title_for(pystray.Icon, view.title),
                menu=self._menu(view),
            )
            icon = self._icon
            # Before run(): the Xlib connection is not safe to share with pystray's
            # event thread once that runs.
            _patch_xorg(icon)

        def ready(ic: Any) -> None:
            with self._lock:
                self._up = True
                stopped = self._stopped
            if stopped:  # a stop() that came while the icon was starting: honour it now
                _stop_icon(ic)
                return
            try:
                ic.visible = True
                # pystray applies a title set while the icon was hidden (an update
                # between Icon() and here) only on the next change: gtk and xorg
                # would keep the first title ("tokend: starting…") for good.
                ic._update_title()
            except Exception:
                log.exception("the tray icon could not be shown")
            threading.Thread(target=self._ticker, name="tokend-tray-tick", daemon=True).start()
            try:
                setup()
            except Exception:
                log.exception("tray setup callback failed")

        try:
            icon.run(setup=ready)
        except Exception as exc:
            raise TrayUnavailable(f"the tray icon stopped: {exc}", hint=probe.reason) from exc
        finally:
            # The loop is over. When it ended on a window destroyed from outside,
            # pystray still counts the icon as running, and its __del__ would then
            # stop it again (and join this thread).
            icon._running = False

    def stop(self) -> None:
        """End :meth:`run` (from any thread, at any time; calling it again is harmless).

        pystray loses a stop that arrives while its loop is starting: ``Icon.stop``
        does nothing before the backend marks the icon ready, and the GTK backends
        mark it ready *before* their GLib loop runs, where a ``quit`` is forgotten.
        So a stop before the icon is up is only remembered, and the setup hook (which
        pystray calls once the icon is ready) carries it out; the stop itself goes
        through the GLib loop on the GTK backends, so it runs inside that loop.
        """
        self._stop_event.set()
        with self._lock:
            self._stopped = True
            icon = self._icon if self._up else None
        if icon is not None:
            _stop_icon(icon)

    # -- internals ---------------------------------------------------------------

    def _ticker(self) -> None:
        """Tick on the tray's own clock: the "in 2 h 15 m" words move on, and if the
        daemon stops publishing, the icon dims as stale instead of showing an old
        figure as live."""
        while not self._stop_event.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:
                log.warning("tray tick failed", exc_info=True)

    def _show(self, view: TrayView) -> None:
        old, old_autostart = self._view, self._autostart
        icon = self._icon
        autostart = self._autostart_state() if icon is not None else old_autostart
        if view == old and autostart == old_autostart:
            return
        self._view, self._autostart = view, autostart
        if icon is None:
            return
        try:
            if view.gauge != old.gauge:
                icon.icon = view.gauge.render()
                self.redraws += 1
            if view.title != old.title:
                icon.title = _title_for(type(icon), view.title)
            if _menu_part(view) != _menu_part(old) or autostart != old_autostart:
                icon.menu = self._menu(view)
        except Exception:
            log.warning("tray update failed", exc_info=True)

    def _autostart_state(self) -> bool | None:
        try:
            return self.actions.autostart_enabled()
        except Exception:
            log.warning("autostart state unknown", exc_info=True)
            return None

    def _menu(self, view: TrayView) -> Any:
        from pystray import Menu, MenuItem

        def do(name: str, *args: Any) -> Callable[[Any, Any], None]:
            def run(_icon: Any, _item: Any) -> None:
                try:
                    getattr(self.actions, name)(*args)
                except Exception:
                    log.exception("tray action %s failed", name)

            return run

        def noop(_icon: Any, _item: Any) -> None:
            return None

        items: list[Any] = []
        for section in view.sections:
            items.extend(MenuItem(line, noop) for line in section)
            items.append(Menu.SEPARATOR)
        def pause_hour(_icon: Any, _item: Any) -> None:
            do("pause_alerts", self.clock() + timedelta(hours=1))(_icon, _item)

        items.append(MenuItem("Refresh now", do("refresh")))
        items.append(
            MenuItem(
                view.pause_label,
                Menu(
                    MenuItem("For 1 hour", pause_hour),
                    MenuItem(
                        f"Until tomorrow {view.tomorrow.strftime('%H:%M')}",
                        do("pause_alerts", view.tomorrow),
                    ),
                    MenuItem(
                        "Resume alerts",
                        do("pause_alerts", None),
                        enabled=view.paused_until is not None,
                    ),
                ),
            )
        )
        items.append(MenuItem("Open report", do("open_report"), default=True))
        items.append(MenuItem("Open config file", do("open_config")))
        autostart = self._autostart
        if autostart is not None:
            items.append(
                MenuItem(
                    "Start at login",
                    do("set_autostart", not autostart),
                    checked=lambda _item: bool(autostart),
                )
            )
        items.append(Menu.SEPARATOR)
        items.append(MenuItem("Quit", do("quit")))
        return Menu(*items)


_LATIN1 = str.maketrans({"…": "...", "—": "-", "–": "-", "→": "->"})


def _title_for(icon_class: type, title: str) -> str:
    """The title as the backend can show it. pystray's xorg backend writes it as the
    window's ``WM_NAME``, a Latin-1 ``STRING``, and raises on anything else (even the
    "starting…" title): there, other characters become close ASCII or ``?``."""
    if icon_class.__module__ != "pystray._xorg":
        return title
    return title.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _stop_icon(icon: Any) -> None:
    """Stop pystray's loop in a way that cannot be lost (see :meth:`Tray.stop`)."""
    if type(icon).__module__ == "pystray._xorg" and _destroy_xorg_window(icon):
        return
    if type(icon).__module__ in ("pystray._gtk", "pystray._appindicator"):
        try:
            from gi.repository import GLib  # type: ignore[import-untyped]

            def quit_in_loop() -> bool:
                _icon_stop(icon)
                return False  # once

            # Dispatched only by the running loop: a quit issued before that loop
            # runs would be forgotten.
            GLib.idle_add(quit_in_loop)
            return
        except Exception:
            log.debug("cannot schedule the tray stop in the GLib loop", exc_info=True)
    _icon_stop(icon)


def _destroy_xorg_window(icon: Any) -> bool:
    """End the xorg backend's loop by destroying its window over a connection of our own.

    pystray's own ``stop`` from another thread sends a message over the icon's Xlib
    connection and waits for the loop to answer; while the loop thread is entering
    ``next_event`` that message can be read by the wrong thread and never answered
    (both threads hang). Destroying the window from a second connection touches
    nothing of the loop's: it only sees the ``DestroyNotify`` it already ends on.
    """
    if getattr(icon, "_tokend_destroyed", False):
        return True  # once: the daemon's fallback repeats its stop
    try:
        import Xlib.display

        window_id = icon._window.id
        name = icon._display.get_display_name()
        display = Xlib.display.Display(name)
    except Exception:
        log.debug("cannot open a second X connection to stop the tray", exc_info=True)
        return False
    try:
        # a window already gone is fine (BadWindow, ignored rather than printed)
        display.create_resource_object("window", window_id).destroy(onerror=_ignore_x_error)
        display.sync()
        icon._tokend_destroyed = True
    except Exception:
        log.debug("the tray window is gone already", exc_info=True)
    finally:
        display.close()
    return True


def _ignore_x_error(*_: Any) -> None:
    return None


def _icon_stop(icon: Any) -> None:
    try:
        icon.stop()
    except Exception:
        log.debug("tray stop failed", exc_info=True)


def _name_program() -> None:
    """Name the process "tokend" for GTK before pystray initialises it: the XEmbed
    window class and some panels show the program name (else "tray.py" or "python")."""
    if os.environ.get("PYSTRAY_BACKEND") not in (None, "gtk", "appindicator"):
        return
    try:
        from gi.repository import GLib  # untyped: the ignore is on its first import

        GLib.set_prgname(APP_ID)
    except Exception:
        log.debug("cannot set the GTK program name", exc_info=True)


def _menu_part(view: TrayView) -> tuple[object, ...]:
    return (view.sections, view.pause_label, view.paused_until, view.tomorrow)


def _patch_xorg(icon: Any) -> None:
    """Work around three bugs of pystray 0.19.5's xorg backend (call before ``run``).

    - Every icon change and every show sends the tray a new *dock request* for the
      already docked window (showing sends two). trayer, for one, then sometimes
      loses the window and the icon vanishes: dock only when not docked (pystray
      clears ``_systray_manager`` when the tray goes away, so re-docking into a new
      tray still works).
    - ``_run`` signals "ready" before it records its thread, so a quick setup thread
      finds no ``_thread`` and dies: the icon never shows. ``run`` is about to record
      the calling thread, so record it first.
    - It never selects ButtonPress, so a left click is lost (upstream issue #151);
      ask for it, so a click runs the default item (Open report).
    """
    if type(icon).__module__ != "pystray._xorg":
        return
    icon._thread = threading.current_thread()
    dock = icon._assert_docked

    def assert_docked() -> None:
        if icon._systray_manager is None:
            dock()

    icon._assert_docked = assert_docked
    try:
        import Xlib.X

        icon._window.change_attributes(
            event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask
        )
        icon._display.flush()
    except Exception:
        log.debug("could not enable clicks on the xorg tray icon", exc_info=True)


# -- demo entry (desktop tests, screenshots) -----------------------------------------


class _DemoActions:
    """Records each action as one line in a file, and applies pause to the shown snapshot."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.autostart = False
        self._tray: Tray | None = None

    def tray(self) -> Tray:
        assert self._tray is not None
        return self._tray

    def _write(self, line: str) -> None:
        with self.record.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def refresh(self) -> None:
        self._write("refresh")

    def pause_alerts(self, until: datetime | None) -> None:
        from dataclasses import replace

        self._write(f"pause_alerts {until.isoformat() if until else 'resume'}")
        tray = self.tray()
        if tray._snapshot is not None:
            tray.update(replace(tray._snapshot, alerts_paused_until=until))

    def open_report(self) -> None:
        self._write("open_report")

    def open_config(self) -> None:
        self._write("open_config")

    def autostart_enabled(self) -> bool | None:
        return self.autostart

    def set_autostart(self, enabled: bool) -> None:
        self.autostart = enabled
        self._write(f"set_autostart {enabled}")
        self.tray().tick()

    def quit(self) -> None:
        self._write("quit")
        self.tray().stop()


def _demo(argv: list[str]) -> int:
    import argparse
    import faulthandler
    import json
    import signal

    from tokend.config import Settings
    from tokend.snapshot import Snapshot

    parser = argparse.ArgumentParser(prog="python -m tokend.tray")
    parser.add_argument("--demo", required=True, type=Path, help="a status.json snapshot")
    parser.add_argument("--record", required=True, type=Path, help="file the actions go to")
    parser.add_argument("--notify", nargs=3, metavar=("TITLE", "BODY", "URGENCY"),
                        help="also send one notification once the icon is up")
    ns = parser.parse_args(argv)
    if hasattr(signal, "SIGUSR1"):  # tests ask a stuck demo where its threads are
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    snapshot = Snapshot.from_dict(json.loads(ns.demo.read_text(encoding="utf-8")))
    settings = Settings()
    actions = _DemoActions(ns.record)
    # A frozen clock: the menu words ("in 2 h 15 m") stay what the snapshot implies.
    tray = Tray(actions, settings, clock=lambda: snapshot.generated_at)
    actions._tray = tray
    tray.update(snapshot)

    def setup() -> None:
        if ns.notify:
            from tokend.notify import Notifier, app_icon_path

            notifier = Notifier("tokend", app_icon_path())
            notifier.send(ns.notify[0], ns.notify[1], ns.notify[2])
            notifier.close()
        actions._write(f"ready {tray.backend}")

    tray.run(setup)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(_demo(sys.argv[1:]))

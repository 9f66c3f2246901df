"""The tray without a desktop: what it shows for a snapshot, and when it redraws."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from tokend.config import AlertSettings, Settings, TraySettings
from tokend.snapshot import AgentState, Snapshot, WindowState
from tokend.tray import Tray, describe, level_for, tray_available

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 15, tzinfo=UTC)


def win(kind: str, percent: float | None, provenance: str = "official", **kw: Any) -> WindowState:
    values: dict[str, Any] = dict(
        kind=kind, start=NOW - timedelta(hours=1),
        resets_at=NOW + (timedelta(hours=2, minutes=15) if kind == "5h" else timedelta(days=3)),
        used_tokens=1_500_000, used_cost=None, requests=3, percent=percent,
        provenance=provenance,
    )
    values.update(kw)
    return WindowState(**values)


def snapshot(*agents: AgentState, at: datetime = NOW, **kw: Any) -> Snapshot:
    return Snapshot(generated_at=at, agents=agents, **kw)


CLAUDE = AgentState(
    agent="claude", account="a", root="/c",
    windows=(
        win("5h", 62.0, burn_tokens_per_min=1234.0,
            runs_out_at=NOW + timedelta(hours=1, minutes=35)),
        win("weekly", 41.0),
    ),
)
GEMINI = AgentState(agent="gemini", account="g", root="/g",
                    windows=(win("daily", None, "unknown", resets_at=None),))


def test_level_for() -> None:
    t = (60, 80, 95)
    assert [level_for(p, t) for p in (None, 0, 59.9, 60, 94.9, 95, 120)] == [
        "ok", "ok", "ok", "warn", "warn", "critical", "critical"]
    assert [level_for(p, (80,)) for p in (79, 80, 99, 100)] == ["ok", "warn", "warn", "critical"]


def test_describe_sections_title_and_gauge() -> None:
    view = describe(snapshot(CLAUDE, GEMINI), Settings(), NOW, UTC)
    assert view.title == "Claude 5h 62 % (official) · resets 14:30"
    assert view.sections == (
        (
            "Claude · 5h 62 % (official) · resets 14:30 (in 2 h 15 m)",
            "weekly 41 % (official) · resets Thu 12:15",
            "burn 1.2k tok/min · runs out 13:50",
        ),
        ("Gemini · daily 1.5M tok (limit unknown)",),
    )
    assert (view.gauge.percent, view.gauge.level) == (62.0, "warn")
    assert not view.gauge.stale and not view.gauge.estimate
    assert view.pause_label == "Pause alerts"
    assert view.tomorrow == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_lasts_until_reset_and_estimate() -> None:
    claude = replace(CLAUDE, windows=(win("5h", 30.0, "plan", burn_tokens_per_min=50.0),))
    view = describe(snapshot(claude), Settings(), NOW, UTC)
    assert view.sections[0][-1] == "burn 50 tok/min · lasts until reset"
    assert view.sections[0][0].startswith("Claude · 5h 30 % (estimate)")
    assert view.gauge.estimate and view.gauge.level == "ok"


def test_pin_and_thresholds_pick_the_gauge() -> None:
    settings = Settings(tray=TraySettings(pin="claude:weekly"),
                        alerts=AlertSettings(weekly_thresholds=(40,)))
    view = describe(snapshot(CLAUDE), settings, NOW, UTC)
    assert view.gauge.percent == 41.0 and view.gauge.level == "warn"
    assert view.title.startswith("Claude weekly 41 %")
    typo = Settings(tray=TraySettings(pin="cluade"))
    assert describe(snapshot(CLAUDE), typo, NOW, UTC).gauge.percent == 62.0


def test_stale_and_empty() -> None:
    view = describe(snapshot(CLAUDE), Settings(), NOW + timedelta(minutes=10), UTC)
    assert view.gauge.stale
    assert view.title.endswith("(stale: updated 10 min ago)")
    empty = describe(snapshot(), Settings(), NOW, UTC)
    assert empty.title == "tokend: no usage seen yet"
    assert empty.gauge.percent is None
    assert describe(None, Settings(), NOW, UTC).title == "tokend: starting…"


def test_paused_label() -> None:
    view = describe(snapshot(CLAUDE, alerts_paused_until=NOW + timedelta(hours=1)),
                    Settings(), NOW, UTC)
    assert view.pause_label == "Alerts paused until 13:15"
    over = describe(snapshot(CLAUDE, alerts_paused_until=NOW - timedelta(minutes=1)),
                    Settings(), NOW, UTC)
    assert over.pause_label == "Pause alerts" and over.paused_until is None


class FakeIcon:
    """Counts what a pystray icon would be asked to redraw."""

    def __init__(self) -> None:
        self.icons = 0
        self.titles: list[str] = []
        self.menus = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "icon":
            object.__setattr__(self, "icons", self.icons + 1)
        elif name == "title":
            self.titles.append(value)
        elif name == "menu":
            object.__setattr__(self, "menus", self.menus + 1)
        else:
            object.__setattr__(self, name, value)


class Actions:
    def __init__(self) -> None:
        self.autostart: bool | None = False

    def refresh(self) -> None: ...
    def pause_alerts(self, until: datetime | None) -> None: ...
    def open_report(self) -> None: ...
    def open_config(self) -> None: ...
    def autostart_enabled(self) -> bool | None:
        return self.autostart
    def set_autostart(self, enabled: bool) -> None: ...
    def quit(self) -> None: ...


def test_update_redraws_only_what_changed(monkeypatch: Any) -> None:
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")  # menus are built, nothing is shown
    clock = [NOW]
    actions = Actions()
    tray = Tray(actions, Settings(), clock=lambda: clock[0], tz=UTC)
    fake = FakeIcon()
    tray._icon = fake
    tray.update(snapshot(CLAUDE))
    assert (fake.icons, len(fake.titles), fake.menus) == (1, 1, 1)
    tray.update(snapshot(CLAUDE))  # same picture, same words
    assert (fake.icons, len(fake.titles), fake.menus) == (1, 1, 1)
    clock[0] = NOW + timedelta(minutes=1)  # "in 2 h 14 m": menu only
    tray.update(snapshot(CLAUDE, at=clock[0]))
    assert (fake.icons, len(fake.titles), fake.menus) == (1, 1, 2)
    up = replace(CLAUDE, windows=(win("5h", 85.0), CLAUDE.windows[1]))
    tray.update(snapshot(up, at=clock[0]))
    assert fake.icons == 2 and fake.titles[-1].startswith("Claude 5h 85 %")
    actions.autostart = True  # the toggle's state changed elsewhere
    tray.update(snapshot(up, at=clock[0]))
    assert (fake.icons, fake.menus) == (2, 4)
    assert tray.redraws == 2


def test_menu_items_call_the_actions(monkeypatch: Any) -> None:
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    calls: list[tuple[str, Any]] = []

    class Recording(Actions):
        def pause_alerts(self, until: datetime | None) -> None:
            calls.append(("pause", until))

        def set_autostart(self, enabled: bool) -> None:
            calls.append(("autostart", enabled))

        def quit(self) -> None:
            raise RuntimeError("an action failing must not break the tray")

    actions = Recording()
    tray = Tray(actions, Settings(), clock=lambda: NOW, tz=UTC)
    tray._autostart = False
    menu = tray._menu(describe(snapshot(CLAUDE), Settings(), NOW, UTC))
    items = {str(i.text): i for i in menu.items}
    pause = {str(i.text): i for i in items["Pause alerts"].submenu.items}
    pause["For 1 hour"](None)
    pause["Until tomorrow 08:00"](None)
    items["Start at login"](None)
    items["Quit"](None)
    assert calls == [
        ("pause", NOW + timedelta(hours=1)),
        ("pause", datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
        ("autostart", True),
    ]
    assert items["Open report"].default
    tray._autostart = None
    menu = tray._menu(describe(snapshot(CLAUDE), Settings(), NOW, UTC))
    assert "Start at login" not in [str(i.text) for i in menu.items]


def test_tray_available_without_display() -> None:
    assert tray_available({}) == (False, "no display (DISPLAY and WAYLAND_DISPLAY unset)")
    ok, reason = tray_available({"DISPLAY": ":1", "PYSTRAY_BACKEND": "dummy"})
    assert not ok and "dummy" in reason


def test_importing_tray_does_not_import_pystray_or_pillow() -> None:
    code = ("import sys, tokend.tray, tokend.alerts, tokend.notify; "
            "bad = [m for m in ('pystray', 'PIL', 'desktop_notifier', 'gi') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": ""})

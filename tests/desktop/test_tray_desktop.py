"""The tray icon and notifications against real desktop protocols (Xvfb, D-Bus).

Each tray runs as a real process (``python -m tokend.tray --demo``) so GTK state and
pystray's threads never leak into pytest. What is checked is what a user would see:
the item a panel gets over StatusNotifierItem/dbusmenu, the XEmbed window docked in
a real tray host and its pixels, and what a notification server receives.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from desktop_fakes import FakeNotificationServer, FakeStatusNotifierWatcher
from desktop_harness import (
    MENU_ACTIONS,
    DemoTray,
    count_colour,
    demo_snapshot,
    wait_until,
    window_pixels,
    x_windows,
)
from PIL import Image

from tokend.gauge import COLOURS, HOLLOW_FACE
from tokend.notify import Notifier, app_icon_path
from tokend.tray import tray_available

pytestmark = pytest.mark.desktop


def test_appindicator_item_menu_and_click(
    sni_watcher: FakeStatusNotifierWatcher, run_tray: Any
) -> None:
    tray: DemoTray = run_tray(demo_snapshot(83.0), "appindicator")
    assert tray.backend == "appindicator"
    # The item registers first and is made Active from GTK's main loop just after.
    props = wait_until(lambda: (p := sni_watcher.props())["Status"] == "Active" and p, 5.0,
                       "the item to become Active")
    assert props["Title"] == "Claude 5h 83 % (official) · resets 14:30"
    icon = Image.open(props["IconName"])
    assert icon.size == (64, 64)
    # 83 % is between the 80 and 95 thresholds: the amber warning face.
    assert count_colour(icon, COLOURS["warn"]) > 300
    assert count_colour(icon, COLOURS["critical"]) == 0

    assert sni_watcher.labels() == [
        "Claude · 5h 83 % (official) · resets 14:30 (in 2 h 15 m)",
        "weekly 41 % (official) · resets Thu 12:15",
        "burn 1.2k tok/min · runs out 13:50",
        "---",
        "Codex · 5h 12 % (official) · resets 16:15 (in 4 h)",
        *MENU_ACTIONS,
    ]
    resume = next(i for i in sni_watcher.menu() if i.get("label") == "Resume alerts")
    assert resume.get("enabled", True) is False  # nothing to resume yet

    sni_watcher.click("For 1 hour")
    assert tray.wait_for("pause_alerts") == "pause_alerts 2026-11-23T13:15:00+00:00"
    # The demo applies the pause to its snapshot: the menu must follow.
    wait_until(lambda: "Alerts paused until 13:15" in sni_watcher.labels(), 5.0,
               "the pause to show in the menu")

    sni_watcher.click("Start at login")
    tray.wait_for("set_autostart True")
    sni_watcher.click("Quit")
    tray.wait_for("quit")
    assert tray.proc.wait(10) == 0


def test_appindicator_estimate_at_critical_is_hollow_red(
    sni_watcher: FakeStatusNotifierWatcher, run_tray: Any
) -> None:
    run_tray(demo_snapshot(97.0, provenance="plan"), "appindicator")
    props = wait_until(lambda: (p := sni_watcher.props())["Status"] == "Active" and p, 5.0,
                       "the item to become Active")
    assert props["Title"].startswith("Claude 5h 97 % (estimate)")
    icon = Image.open(props["IconName"])
    # An estimate is a red frame around a dark face (an official figure is solid red).
    assert count_colour(icon, COLOURS["critical"]) > 400
    assert count_colour(icon, HOLLOW_FACE, 4) > 800


def _docked(display: Any, wm_class: str) -> Any:
    """The window of class ``wm_class`` that a tray host has reparented (docked)."""
    root = display.screen().root

    def find() -> Any:
        import Xlib.error

        for win in x_windows(root, wm_class):
            try:
                if win.query_tree().parent.id != root.id:
                    return win
            except Xlib.error.BadWindow:
                continue
        return None

    return wait_until(find, 10.0, f"a {wm_class} window docked in the tray")


def test_xorg_icon_docks_in_trayer_with_title_and_colour(tray_host: Any, run_tray: Any) -> None:
    tray: DemoTray = run_tray(demo_snapshot(97.0), "xorg")
    assert tray.backend == "xorg"
    try:
        win = _docked(tray_host, "tokendSystemTrayIcon")
    except AssertionError:
        tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True,
                              errors="replace")
        raise AssertionError(tray.log.read_text(encoding="utf-8") + tree.stdout) from None
    assert win.get_wm_name() == "Claude 5h 97 % (official) · resets 14:30"
    def red_icon() -> Image.Image | None:
        import Xlib.error
        import Xlib.X

        try:  # GetImage fails with BadMatch until trayer has mapped the window
            if win.get_attributes().map_state != Xlib.X.IsViewable:
                return None
            img = window_pixels(win)
        except Xlib.error.BadMatch:
            return None
        return img if count_colour(img, COLOURS["critical"], 30) > 40 else None

    img = wait_until(red_icon, 5.0, "the red gauge to be drawn")
    assert count_colour(img, COLOURS["warn"], 30) == 0
    # pystray's xorg backend drops clicks unless the tray asks for them (patched).
    _click_until(win, 1, tray, "open_report")


def _click_until(win: Any, button: int, tray: DemoTray, action: str) -> None:
    """Click until the action is recorded: the first click after docking may be lost."""
    for _ in range(10):
        subprocess.run(["xdotool", "mousemove", "--window", str(win.id), "6", "6",
                        "click", str(button)], check=True)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and action not in tray.lines():
            time.sleep(0.02)
        if action in tray.lines():
            return
    raise AssertionError(f"{action} not recorded after 10 clicks: {tray.lines()}")


def test_gtk_icon_docks_and_left_click_opens_report(tray_host: Any, run_tray: Any) -> None:
    tray: DemoTray = run_tray(demo_snapshot(83.0), "gtk")
    assert tray.backend == "gtk"
    # Gtk.StatusIcon's X window class is the program name, which the tray sets.
    win = _docked(tray_host, "tokend")
    import Xlib.X

    wait_until(lambda: win.get_attributes().map_state == Xlib.X.IsViewable, 5.0, "mapped")
    _click_until(win, 1, tray, "open_report")


def test_notifier_send_reaches_the_server(notifications: FakeNotificationServer) -> None:
    icon = app_icon_path(64)
    assert icon is not None
    notifier = Notifier("tokend", icon)
    try:
        notifier.send("Claude: 80 % of the 5-hour window",
                      "Resets 14:30 (in 2 h 15 m). At this pace it runs out at 13:50.",
                      "critical")
        for n in range(3):
            notifier.send(f"Codex: note {n}", "x", "normal")
        notifier.send("Codex 5-hour window reset — full budget again", "x", "low")
        received = notifications.wait_for(5)
    finally:
        notifier.close()
    first, last = received[0], received[-1]
    assert first.app_name == "tokend"
    assert first.summary == "Claude: 80 % of the 5-hour window"
    assert first.body == "Resets 14:30 (in 2 h 15 m). At this pace it runs out at 13:50."
    assert first.urgency == 2
    assert first.app_icon == icon.as_uri()  # our icon, never the Python logo
    assert (last.summary, last.urgency) == ("Codex 5-hour window reset — full budget again", 0)
    # Sent one at a time, in order: an "80 %" never arrives after the "reset".
    assert [n.summary for n in received[1:4]] == ["Codex: note 0", "Codex: note 1",
                                                  "Codex: note 2"]


def test_notification_click_reaches_on_click(notifications: FakeNotificationServer) -> None:
    clicked: list[str] = []
    notifier = Notifier("tokend", None)
    try:
        notifier.send("t", "b", "normal", on_click=lambda: clicked.append("yes"))
        [n] = notifications.wait_for(1)
        # desktop-notifier maps the server's id to its callback when Notify returns;
        # a user clicks later than that, so the test waits for it too.
        assert notifier.flush()
        notifications.click(n.id)
        wait_until(lambda: clicked, 5.0, "the click callback")
    finally:
        notifier.close()
    assert n.app_icon.startswith("file://") and n.app_icon.endswith("/tokend-128.png")


def test_notifier_without_server_does_not_raise(
    session_bus: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    notifier = Notifier("tokend", None)
    with caplog.at_level("WARNING"):
        for _ in range(3):
            notifier.send("t", "b", "normal")
        notifier.flush()
        notifier.close()
    failures = [r for r in caplog.records if "ailed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]


def test_tray_available_reasons(
    tray_host: Any, notifyd: FakeNotificationServer, desktop_env: dict[str, str],
    start_xvfb: Any,
) -> None:
    ok, reason = tray_available(desktop_env)
    assert ok, reason
    assert reason == "gtk (XEmbed system tray)"
    bare = dict(desktop_env, DISPLAY=start_xvfb())
    ok, reason = tray_available(bare)
    assert not ok
    assert reason.startswith("no tray host (nothing owns org.kde.StatusNotifierWatcher")
    ok, reason = tray_available(dict(desktop_env, PYSTRAY_BACKEND="xorg"))
    assert (ok, reason) == (True, "xorg (XEmbed system tray; menu unavailable)")


def test_tray_available_with_a_panel(
    sni_watcher: FakeStatusNotifierWatcher, tray_host: Any, desktop_env: dict[str, str]
) -> None:
    ok, reason = tray_available(desktop_env)
    assert (ok, reason) == (True, "appindicator (StatusNotifierWatcher and XEmbed system tray)")

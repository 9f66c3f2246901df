"""``tokend run`` end to end on a private desktop: tray, menu, notifications, restarts.

The daemon runs as a real process (``python -m tokend run``) over a temp
TOKEND_HOME and a fake CODEX_HOME, on our Xvfb display and our private D-Bus
(``conftest.py``). The tests append Codex rollout lines whose ``rate_limits`` put
the 5-hour window at exact official percents, and check only what a user (or a
panel) gets from outside:

- the StatusNotifierItem a panel sees over D-Bus (appindicator backend): its title,
  its icon's pixels, its dbusmenu, and what a click on "Pause alerts" does to the
  daemon;
- the XEmbed icon docked in a real tray host (gtk and xorg backends);
- the notifications the fake server receives: exactly one per threshold crossed
  (60 and 80 while going from 55 % to 85 %), none again after a restart, critical
  only at 95 %; and "full budget again" once the warned window has reset, but not
  for a window that reset without a warning.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from daemon_rig import DaemonRig, hhmm
from desktop_fakes import FakeNotificationServer, FakeStatusNotifierWatcher, Notification
from desktop_harness import (
    MENU_ACTIONS,
    count_colour,
    docked_windows,
    wait_until,
    window_pixels,
)
from PIL import Image

from tests.daemon_harness import fake_machine
from tokend.gauge import COLOURS

pytestmark = pytest.mark.desktop

QUIET = 1.0
"""How long "nothing more arrives" is watched after the daemon decided its alerts."""


@pytest.fixture
def rig(desktop_env: dict[str, str]) -> Iterator[DaemonRig]:
    with fake_machine(lambda base: DaemonRig(base, desktop_env), "tke") as machine:
        yield machine


def _quiet(notifications: FakeNotificationServer, count: int, rig: DaemonRig) -> None:
    """After a refresh (alerts decided and handed to the notifier): still ``count``."""
    rig.refresh()
    time.sleep(QUIET)
    got = [(n.summary, n.body) for n in notifications.received]
    assert len(got) == count, got


def _assert_threshold(n: Notification, threshold: int, now_percent: int, resets_at: float,
                      urgency: int) -> None:
    assert n.app_name == "tokend"
    assert n.summary == f"Codex: {threshold} % of the 5-hour window"
    # "Now 65 %." only when the figure is past the threshold; then the reset time in
    # the daemon's zone (UTC here), then the pace. An official figure: no "Estimate".
    assert re.fullmatch(
        rf"Now {now_percent} %\. Resets {hhmm(resets_at)} \(in (\d+ min|\d h( \d+ m)?)\)\."
        r"( At this pace (it runs out at (Mon |Tue |Wed |Thu |Fri |Sat |Sun )?\d\d:\d\d"
        r"|it lasts until the reset)\.)?",
        n.body,
    ), n.body
    assert n.urgency == urgency, (n.summary, n.urgency)


# -- 1. the StatusNotifierItem a panel sees ---------------------------------------------


def test_appindicator_item_menu_and_pause(
    rig: DaemonRig, sni_watcher: FakeStatusNotifierWatcher,
    notifications: FakeNotificationServer,
) -> None:
    resets = time.time() + 2 * 3600 + 90
    rig.start_session()
    rig.codex_usage(62.0, resets, weekly=20.0)
    proc = rig.start(env=dict(rig.env, PYSTRAY_BACKEND="appindicator"))
    rig.wait_percent(62.0)
    tray = rig.read_status()["daemon"]["tray"]  # type: ignore[index]
    assert tray.startswith("appindicator (StatusNotifierWatcher"), tray

    # The item registers, then GTK's loop makes it Active; the daemon's first
    # update (62 %) lands just after the first draw ("starting…").
    expected_title = f"Codex 5h 62 % (official) · resets {hhmm(resets)}"
    props = wait_until(
        lambda: (p := sni_watcher.props())["Status"] == "Active"
        and p["Title"] == expected_title and p,
        10.0, f"the item to become Active with title {expected_title!r}")
    icon = Image.open(props["IconName"])
    assert icon.size == (64, 64)
    # 62 % is past the first threshold (60) and below the top one (95): amber.
    assert count_colour(icon, COLOURS["warn"]) > 300
    assert count_colour(icon, COLOURS["critical"]) == 0

    labels = sni_watcher.labels()
    head, tail = labels[:2], labels[2:]
    assert re.fullmatch(
        rf"Codex · 5h 62 % \(official\) · resets {hhmm(resets)} \(in 2 h( \d+ m)?\)", head[0]
    ), labels
    assert head[1].startswith("weekly 20 % (official) · resets "), labels
    if tail[0].startswith("burn "):  # the pace line, when the tokens allow one
        tail = tail[1:]
    assert tail == MENU_ACTIONS, labels
    start_at_login = next(i for i in sni_watcher.menu() if i.get("label") == "Start at login")
    assert start_at_login.get("toggle-state") == 0  # not installed in the fake HOME

    # The 60 % warning went out (62 % was crossed at start); nothing is paused yet.
    [first] = notifications.wait_for(1, timeout=10)
    assert first.summary == "Codex: 60 % of the 5-hour window"
    assert rig.request("status")["alerts_paused_until"] is None

    clicked = datetime.now(timezone.utc)
    sni_watcher.click("For 1 hour")

    def paused() -> Any:
        return rig.request("status")["alerts_paused_until"]

    until = datetime.fromisoformat(wait_until(paused, 10.0, "the daemon to pause alerts"))
    assert abs(until - (clicked + timedelta(hours=1))) < timedelta(seconds=30), until
    # The daemon persisted and published it; the menu follows the daemon's snapshot.
    wait_until(lambda: rig.read_status()["alerts_paused_until"], 5.0, "status.json to follow")  # type: ignore[index]
    shown = f"Alerts paused until {hhmm(until.timestamp())}"
    wait_until(lambda: shown in sni_watcher.labels(), 10.0, "the menu to show the pause")

    # Paused: the 80 % crossing is held back.
    rig.codex_usage(85.0, resets)
    rig.wait_percent(85.0)
    _quiet(notifications, 1, rig)

    # Quit from the menu ends the daemon cleanly.
    sni_watcher.click("Quit")
    assert proc.wait(10) == 0, rig.log()


# -- 2. the XEmbed icon docked in a tray host ----------------------------------------------


def _net_wm_pid(display: Any, win: Any) -> int | None:
    import Xlib.error
    import Xlib.X

    try:
        prop = win.get_full_property(display.intern_atom("_NET_WM_PID"), Xlib.X.AnyPropertyType)
    except Xlib.error.BadWindow:
        return None
    return int(prop.value[0]) if prop is not None and len(prop.value) else None


@pytest.mark.parametrize(("backend", "wm_class"), [("gtk", "tokend"),
                                                    ("xorg", "tokendSystemTrayIcon")])
def test_xembed_icon_docks_in_the_tray_host(
    rig: DaemonRig, tray_host: Any, backend: str, wm_class: str,
) -> None:
    import Xlib.error
    import Xlib.X

    assert docked_windows(tray_host, wm_class) == []  # nothing of ours before the start
    rig.start_session()
    resets = time.time() + 2 * 3600
    rig.codex_usage(62.0, resets)
    proc = rig.start("--no-notify", env=dict(rig.env, PYSTRAY_BACKEND=backend))
    rig.wait_percent(62.0)
    tray = rig.read_status()["daemon"]["tray"]  # type: ignore[index]
    assert tray.startswith(f"{backend} (") and "XEmbed system tray" in tray, tray

    wins = wait_until(lambda: docked_windows(tray_host, wm_class), 10.0,
                      f"a {wm_class} window docked in trayer")
    assert len(wins) == 1, [(w.id, w.query_tree().parent.id, _net_wm_pid(tray_host, w),
                             w.get_wm_name()) for w in wins]
    [win] = wins
    if backend == "gtk":  # GTK names the owner of its windows
        assert _net_wm_pid(tray_host, win) == proc.pid

    def amber() -> Any:
        try:
            if win.get_attributes().map_state != Xlib.X.IsViewable:
                return None
            img = window_pixels(win)
        except (Xlib.error.BadMatch, Xlib.error.BadWindow):
            return None
        return img if count_colour(img, COLOURS["warn"], 30) > 20 else None

    img = wait_until(amber, 10.0, "the amber gauge (62 %) to be drawn in the tray")
    assert count_colour(img, COLOURS["critical"], 30) == 0
    if backend == "xorg":  # the title is the icon window's name (the tooltip)
        title = f"Codex 5h 62 % (official) · resets {hhmm(resets)}"
        wait_until(lambda: win.get_wm_name() == title, 5.0, f"the window name {title!r}")

    assert rig.stop(proc) == 0
    # The docked window was the daemon's: it goes with it.
    wait_until(lambda: not docked_windows(tray_host, wm_class), 5.0,
               "the icon to leave the tray with the daemon")


# -- 3. thresholds: once each, highest only, not again after a restart --------------------


NO_CHECKPOINTS = "[checkpoint]\nenabled = false\n"
"""Session checkpoints notify too ("Checkpoint saved"); these tests count alerts only."""


def test_thresholds_fire_once_each_and_not_again_after_a_restart(
    rig: DaemonRig, notifications: FakeNotificationServer,
) -> None:
    rig.config(NO_CHECKPOINTS)
    resets = time.time() + 2 * 3600 + 90
    rig.start_session()
    rig.codex_usage(55.0, resets)
    proc = rig.start("--no-tray")
    rig.wait_percent(55.0)
    _quiet(notifications, 0, rig)  # 55 %: below every threshold

    # 55 -> 85 % the way a session gets there: one figure per turn.
    for percent in (62.0, 71.0, 78.0, 85.0):
        rig.codex_usage(percent, resets)
        rig.wait_percent(percent)
        if percent == 62.0:
            notifications.wait_for(1, timeout=10)
    n60, n80 = notifications.wait_for(2, timeout=10)
    _quiet(notifications, 2, rig)
    _assert_threshold(n60, 60, 62, resets, urgency=1)
    _assert_threshold(n80, 80, 85, resets, urgency=1)  # normal: 95 is the top one

    # A restart on the same TOKEND_HOME remembers what was sent.
    assert rig.stop(proc) == 0
    proc = rig.start("--no-tray")
    rig.wait_percent(85.0)
    rig.codex_usage(88.0, resets)
    rig.wait_percent(88.0)
    _quiet(notifications, 2, rig)

    # The top threshold is the critical one.
    rig.codex_usage(96.0, resets)
    rig.wait_percent(96.0)
    n95 = notifications.wait_for(3, timeout=10)[2]
    _assert_threshold(n95, 95, 96, resets, urgency=2)
    _quiet(notifications, 3, rig)
    assert rig.stop(proc) == 0


# -- 4. the reset notification -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["after-warning", "always"])
def test_reset_notification(
    rig: DaemonRig, notifications: FakeNotificationServer, mode: str,
) -> None:
    """The warned 5-hour window's reset is announced; the unwarned weekly one's only
    with ``reset = "always"`` (the default is "after-warning")."""
    # Timers down to a second so the reset is seen without waiting for the 30 s
    # recompute; no rate limit between the warning and the reset news (5 min by
    # default).
    reset_setting = "" if mode == "after-warning" else f'reset = "{mode}"\n'
    rig.config("[daemon]\nrecompute_seconds = 1\n[alerts]\nmin_interval_minutes = 0\n"
               + reset_setting + NO_CHECKPOINTS)
    rig.start_session()
    proc = rig.start("--no-tray")
    # Both windows end in a few seconds: the 5-hour one at 85 % (warned), the weekly
    # one at 10 % (never warned).
    ends = int(time.time()) + 4
    rig.codex_usage(85.0, ends, weekly=10.0, weekly_resets_at=ends)
    rig.wait_percent(85.0)
    assert rig.codex_percent("weekly") == 10.0
    [n80] = notifications.wait_for(1, timeout=10)
    _assert_threshold(n80, 80, 85, ends, urgency=1)

    # The resets pass with no log activity at all: the daemon's timer notices.
    expected = {"Codex 5-hour window reset — full budget again":
                f"The 5-hour window reset at {hhmm(ends)}."}
    if mode == "always":
        expected["Codex weekly window reset — full budget again"] = (
            f"The weekly window reset at {hhmm(ends)}.")
    resets = notifications.wait_for(1 + len(expected), timeout=ends - time.time() + 10)[1:]
    assert time.time() >= ends
    assert {n.summary: n.body for n in resets} == expected
    assert {n.urgency for n in resets} == {0}  # low
    _quiet(notifications, 1 + len(expected), rig)

    # Codex's next turn reports the new windows; a restart repeats nothing.
    later = time.time()
    rig.codex_usage(3.0, later + 5 * 3600, weekly=1.0, weekly_resets_at=later + 7 * 86400)
    rig.wait_percent(3.0)
    _quiet(notifications, 1 + len(expected), rig)
    assert rig.stop(proc) == 0
    proc = rig.start("--no-tray")
    rig.wait_percent(3.0)
    _quiet(notifications, 1 + len(expected), rig)
    assert rig.stop(proc) == 0

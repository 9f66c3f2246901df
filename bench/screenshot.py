"""Take ``docs/screenshot.png``: the tray icon docked, its menu open, a notification shown.

Everything runs headless and private: an Xvfb display, ``trayer`` as the tray host,
a private ``dbus-daemon`` with the test suite's fake notification server, and the
real ``python -m tokend.tray --demo`` process (GTK backend, so the menu is a real GTK
menu opened by a right click from ``xdotool``). The demo sends one notification
through :class:`tokend.notify.Notifier`.

No notification daemon (dunst) is installed, and nothing new is: the notification
the fake server *received* (summary, body, urgency, icon) is drawn with Pillow as
a popup bubble and put on the screen with ImageMagick's ``display``. So the bubble
shows exactly what went over D-Bus, in our own simple style (a red edge for
critical), not what a particular notification daemon would draw.

A legend of gauge states (level, estimate, stale, unknown) is shown as well, drawn
by :func:`tokend.gauge.render_gauge` and enlarged, since the docked icon is 24 px.

    python bench/screenshot.py [--out docs/screenshot.png]

Needs: Xvfb, trayer, xdotool, dbus-daemon, ImageMagick (``import``, ``display``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "desktop")]

from desktop_fakes import FakeNotificationServer, Notification  # noqa: E402
from desktop_harness import (  # noqa: E402
    BUS_CONFIG,
    demo_snapshot,
    need,
    start_xvfb_process,
    stop_process,
    wait_until,
)
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from tokend.gauge import render_gauge  # noqa: E402

WIDTH, HEIGHT = 1024, 600
BACKDROP = (52, 58, 68)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_notification(n: Notification, width: int = 420) -> Image.Image:
    """A popup bubble for what the server received (our rendering, not a daemon's)."""
    img = Image.new("RGB", (width, 118), (43, 48, 56))
    d = ImageDraw.Draw(img)
    edge = {0: (120, 130, 140), 1: (46, 196, 182), 2: (214, 48, 49)}.get(n.urgency or 1)
    d.rectangle((0, 0, width - 1, 117), outline=edge, width=3)
    d.rectangle((0, 0, 7, 117), fill=edge)
    icon_path = unquote(urlparse(n.app_icon).path) if n.app_icon else ""
    x = 22
    if icon_path and Path(icon_path).is_file():
        icon = Image.open(icon_path).convert("RGBA").resize((56, 56), Image.Resampling.LANCZOS)
        img.paste(icon, (22, 18), icon)
        x = 92
    d.text((x, 16), n.app_name, font=font(12), fill=(160, 168, 178))
    d.text((x, 34), n.summary, font=font(15), fill=(255, 255, 255), stroke_width=0)
    y = 58
    for line in _wrap(n.body, font(13), width - x - 16):
        d.text((x, y), line, font=font(13), fill=(220, 224, 230))
        y += 18
    return img


def _wrap(text: str, f: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and f.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def draw_legend() -> Image.Image:
    """Gauge states, each at 64 px with a caption."""
    cases = [
        (42.0, "ok", False, False, "ok"),
        (83.0, "warn", False, False, "warning"),
        (97.0, "critical", False, False, "critical"),
        (83.0, "warn", False, True, "estimate"),
        (62.0, "ok", True, False, "stale"),
        (None, "ok", False, False, "unknown"),
    ]
    cell = 88
    img = Image.new("RGB", (cell * len(cases) + 20, 128), BACKDROP)
    d = ImageDraw.Draw(img)
    for i, (p, level, stale, est, caption) in enumerate(cases):
        g = render_gauge(p, level, stale=stale, estimate=est, size=64)  # type: ignore[arg-type]
        img.paste(g, (20 + i * cell + 2, 14), g)
        w = d.textlength(caption, font=font(13))
        d.text((20 + i * cell + 34 - w / 2, 90), caption, font=font(13), fill=(230, 232, 236))
    return img


def show(image: Path, x: int, y: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Put a PNG on the screen as a bare window (no window manager: no decorations)."""
    return subprocess.Popen(
        ["display", "-borderwidth", "0", "-geometry", f"+{x}+{y}", "-title", image.stem,
         str(image)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    ns = parser.parse_args(argv)
    need("Xvfb", "trayer", "xdotool", "dbus-daemon", "import", "display")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="tokend-shot-") as tmp_s:
        tmp = Path(tmp_s)
        xvfb, display = start_xvfb_process(f"{WIDTH}x{HEIGHT}x24")
        procs.append(xvfb)
        (tmp / "bus.conf").write_text(BUS_CONFIG.format(dir=tmp), encoding="utf-8")
        bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={tmp / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        procs.append(bus)
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRAY_", "TOKEND_"))}
        env.update(DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=address, NO_AT_BRIDGE="1",
                   TZ="UTC", PYTHONPATH=str(REPO), TOKEND_HOME=str(tmp / "home"))
        env.pop("WAYLAND_DISPLAY", None)
        server = FakeNotificationServer(address).start()
        try:
            backdrop = tmp / "backdrop.png"
            Image.new("RGB", (WIDTH, HEIGHT), BACKDROP).save(backdrop)
            # A plain window as the desktop (``display -window root`` fails on Xvfb);
            # mapped first, so everything later stacks above it.
            procs.append(show(backdrop, 0, 0, env))
            time.sleep(0.5)
            procs.append(subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                 "--height", "26", "--SetDockType", "false", "--SetPartialStrut", "false",
                 "--transparent", "false", "--tint", "0x2b3038", "--margin", "0"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            time.sleep(0.5)

            snap = tmp / "snapshot.json"
            snap.write_text(json.dumps(demo_snapshot(83.0).to_dict()), encoding="utf-8")
            record = tmp / "actions.txt"
            tray = subprocess.Popen(
                [sys.executable, "-m", "tokend.tray", "--demo", str(snap), "--record",
                 str(record), "--notify", "Claude: 80 % of the 5-hour window",
                 "Now 83 %. Resets 14:30 (in 2 h 15 m). At this pace it runs out at 13:50.",
                 "normal"],
                env=dict(env, PYSTRAY_BACKEND="gtk"), cwd=REPO,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            procs.append(tray)  # type: ignore[arg-type]
            wait_until(lambda: record.exists() and "ready" in record.read_text(), 15.0,
                       "the demo tray")
            [note] = server.wait_for(1)

            bubble = tmp / "notification.png"
            draw_notification(note).save(bubble)
            procs.append(show(bubble, WIDTH - 436, HEIGHT - 136, env))
            legend = tmp / "gauge-states.png"
            draw_legend().save(legend)
            procs.append(show(legend, 16, HEIGHT - 146, env))

            win = wait_until(lambda: _tray_window(env), 10.0, "the docked tray icon")
            time.sleep(0.5)
            for _ in range(10):  # the first click after docking is sometimes lost
                subprocess.run(["xdotool", "mousemove", "--window", win, "8", "8",
                                "click", "3"], env=env, check=True)
                time.sleep(0.6)
                if _menu_open(env):
                    break
            time.sleep(0.5)
            ns.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["import", "-window", "root", str(ns.out)], env=env, check=True)
        finally:
            server.stop()
            for proc in reversed(procs):
                stop_process(proc)
    print(ns.out)
    return 0


def _tray_window(env: dict[str, str]) -> str | None:
    out = subprocess.run(["xdotool", "search", "--classname", "tokend"], env=env,
                         capture_output=True, text=True).stdout.split()
    for wid in out:
        geo = subprocess.run(["xwininfo", "-id", wid], env=env, capture_output=True,
                             text=True).stdout
        if "Width: 24" in geo or "Width: 26" in geo:
            return wid
    return None


def _menu_open(env: dict[str, str]) -> bool:
    """A visible tokend window taller than the icon: the GTK menu is up."""
    out = subprocess.run(["xdotool", "search", "--onlyvisible", "--classname", "tokend"],
                         env=env, capture_output=True, text=True).stdout.split()
    for wid in out:
        info = subprocess.run(["xwininfo", "-id", wid], env=env, capture_output=True,
                              text=True).stdout
        heights = [int(line.split(":")[1]) for line in info.splitlines()
                   if line.strip().startswith("Height:")]
        if heights and heights[0] > 60:
            return True
    return False


if __name__ == "__main__":
    raise SystemExit(main())

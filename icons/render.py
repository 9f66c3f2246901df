"""Render tokend's app icon: ``tokend.svg``, PNGs from 16 to 512 px and ``tokend.ico``.

The icon is a usage meter: a dark rounded square with a 270-degree gauge open at
the bottom, a teal filled part, a red end zone and a needle. One geometry (below,
on a 512 x 512 canvas) drives both the SVG and the Pillow drawing, so the vector
source and the bitmaps cannot drift apart. Pillow does not anti-alias shapes, so
every PNG is drawn at 2048 px and scaled down.

    python icons/render.py          # rewrites icons/* and the packaged copies in tokend/data/

The live tray gauge is not this icon: it is drawn at run time by tokend.gauge.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
PACKAGE_DATA = HERE.parent / "tokend" / "data"

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
PACKAGED = (64, 128, 256)
"""Copies shipped inside the package (notifications, tray fallback, autostart entry)."""

# Geometry on a 512 x 512 canvas.
CANVAS = 512
CORNER = 112
CENTRE = (256.0, 280.0)
RADIUS = 160.0
STROKE = 56.0
START, SWEEP = 135.0, 270.0  # degrees, clockwise from 3 o'clock (SVG and Pillow agree)
VALUE = 0.62  # the teal part
DANGER = 0.86  # the red zone starts here
NEEDLE = 118.0
NEEDLE_W = 30.0
HUB = 36.0

BACKGROUND = "#2b3038"
TRACK = "#4a525e"
TEAL = "#2ec4b6"
RED = "#d63031"
INK = "#f2f4f7"


def _point(fraction: float, radius: float) -> tuple[float, float]:
    angle = math.radians(START + SWEEP * fraction)
    return CENTRE[0] + radius * math.cos(angle), CENTRE[1] + radius * math.sin(angle)


def svg() -> str:
    """The icon as SVG 1.1 (no filters, no fonts: it renders the same everywhere)."""

    def arc(a: float, b: float, colour: str) -> str:
        x0, y0 = _point(a, RADIUS)
        x1, y1 = _point(b, RADIUS)
        large = 1 if (b - a) * SWEEP > 180 else 0
        return (
            f'  <path d="M {x0:.2f} {y0:.2f} A {RADIUS:g} {RADIUS:g} 0 {large} 1 {x1:.2f} '
            f'{y1:.2f}" fill="none" stroke="{colour}" stroke-width="{STROKE:g}" '
            'stroke-linecap="round"/>'
        )

    nx, ny = _point(VALUE, NEEDLE)
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{CANVAS}" height="{CANVAS}" '
            f'viewBox="0 0 {CANVAS} {CANVAS}">',
            "  <title>tokend</title>",
            f'  <rect width="{CANVAS}" height="{CANVAS}" rx="{CORNER}" fill="{BACKGROUND}"/>',
            arc(0.0, 1.0, TRACK),
            arc(DANGER, 1.0, RED),
            arc(0.0, VALUE, TEAL),
            f'  <line x1="{CENTRE[0]:g}" y1="{CENTRE[1]:g}" x2="{nx:.2f}" y2="{ny:.2f}" '
            f'stroke="{INK}" stroke-width="{NEEDLE_W:g}" stroke-linecap="round"/>',
            f'  <circle cx="{CENTRE[0]:g}" cy="{CENTRE[1]:g}" r="{HUB:g}" fill="{INK}"/>',
            "</svg>",
            "",
        ]
    )


def draw(size: int) -> Image.Image:
    """The icon as an RGBA image of ``size`` px, drawn at 2048 px and scaled down."""
    big = 2048
    k = big / CANVAS
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, big - 1, big - 1), radius=round(CORNER * k), fill=BACKGROUND)

    def arc(a: float, b: float, colour: str) -> None:
        r = RADIUS * k
        cx, cy = CENTRE[0] * k, CENTRE[1] * k
        box = (cx - r - STROKE * k / 2, cy - r - STROKE * k / 2,
               cx + r + STROKE * k / 2, cy + r + STROKE * k / 2)
        d.arc(box, START + SWEEP * a, START + SWEEP * b, fill=colour, width=round(STROKE * k))
        for f in (a, b):  # round caps
            x, y = _point(f, RADIUS)
            half = STROKE * k / 2
            d.ellipse((x * k - half, y * k - half, x * k + half, y * k + half), fill=colour)

    arc(0.0, 1.0, TRACK)
    arc(DANGER, 1.0, RED)
    arc(0.0, VALUE, TEAL)
    nx, ny = _point(VALUE, NEEDLE)
    d.line((CENTRE[0] * k, CENTRE[1] * k, nx * k, ny * k), fill=INK, width=round(NEEDLE_W * k))
    half = NEEDLE_W * k / 2
    d.ellipse((nx * k - half, ny * k - half, nx * k + half, ny * k + half), fill=INK)
    h = HUB * k
    d.ellipse((CENTRE[0] * k - h, CENTRE[1] * k - h, CENTRE[0] * k + h, CENTRE[1] * k + h),
              fill=INK)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    (HERE / "tokend.svg").write_text(svg(), encoding="utf-8")
    images = {size: draw(size) for size in SIZES}
    for size, img in images.items():
        img.save(HERE / f"tokend-{size}.png", optimize=True)
    images[256].save(HERE / "tokend.ico", sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[images[s] for s in ICO_SIZES if s != 256])
    PACKAGE_DATA.mkdir(parents=True, exist_ok=True)
    for size in PACKAGED:
        images[size].save(PACKAGE_DATA / f"tokend-{size}.png", optimize=True)


if __name__ == "__main__":
    main()

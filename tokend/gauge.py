"""The live tray gauge: one small picture of the most constrained usage window.

Drawn with Pillow only (no files, no fonts from the system) so it works the same in
a headless test, on a panel and in a screenshot. Design choices, because a tray
icon is shown at 16-24 px:

- the percentage is the picture: a big number over a slim fill bar, not a ring
  with tiny text, so it stays readable when the panel scales 64 px down to 16;
- neutral (slate) below the first threshold, amber at warning, red at critical:
  colour appears only when it means something (the convention of existing meters);
- an *estimate* is drawn hollow (a coloured frame around a dark face) and an
  *official* figure solid, so the two can be told apart at a glance without
  reading a label;
- a *stale* or unknown figure is dimmed (greyed and half transparent) and never
  shows 0 %: unknown is ``?``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image, ImageFont

    _Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

__all__ = ["COLOURS", "HOLLOW_FACE", "Level", "render_gauge"]

Level = Literal["ok", "warn", "critical"]

RGB = tuple[int, int, int]

COLOURS: dict[Level, RGB] = {
    "ok": (72, 80, 92),
    "warn": (245, 166, 35),
    "critical": (214, 48, 49),
}
"""The face colour of each level. Tests look for these exact pixels."""

_TEXT_ON: dict[Level, RGB] = {
    "ok": (255, 255, 255),
    "warn": (28, 28, 28),
    "critical": (255, 255, 255),
}
HOLLOW_FACE: RGB = (34, 37, 43)
"""The dark face inside the coloured frame of an estimate."""
_STALE_ALPHA = 110
"""Dimmed icons keep this alpha (of 255): visible, but clearly not live."""


def render_gauge(
    percent: float | None,
    level: Level,
    *,
    stale: bool,
    estimate: bool,
    size: int = 64,
) -> Image.Image:
    """Draw the gauge as an RGBA image of ``size`` x ``size`` pixels.

    ``percent`` is 0-100 (more is drawn as a full bar and the real number), or
    ``None`` when nothing says what 100 % is: then a dimmed ``?`` is drawn.
    """
    from PIL import Image, ImageDraw

    if size < 8:
        raise ValueError(f"a gauge needs at least 8 px, not {size}")
    # Small icons are drawn 4x larger and scaled down: Pillow does not anti-alias
    # shapes, and a 16 px rounded square drawn directly looks jagged.
    scale = 4 if size < 64 else 1
    big = size * scale
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)

    unknown = percent is None
    colour = COLOURS["ok"] if unknown else COLOURS[level]
    text_colour = _TEXT_ON["ok"] if unknown else _TEXT_ON[level]
    radius = big // 5
    box = (0, 0, big - 1, big - 1)
    if estimate and not unknown:
        frame = max(2, big // 10)
        draw.rounded_rectangle(box, radius=radius, fill=colour)
        inner = (frame, frame, big - 1 - frame, big - 1 - frame)
        draw.rounded_rectangle(inner, radius=max(1, radius - frame), fill=HOLLOW_FACE)
        text_colour = _TEXT_ON["ok"] if level == "ok" else colour
        inset = frame
    else:
        draw.rounded_rectangle(box, radius=radius, fill=colour)
        inset = max(1, big // 16)

    # The fill bar along the bottom: how much of the window is used.
    bar_h = max(2, big // 7)
    bar_top = big - inset - bar_h - max(1, big // 24)
    left, right = inset + big // 12, big - inset - big // 12
    face = HOLLOW_FACE if estimate and not unknown else colour
    draw.rectangle((left, bar_top, right, bar_top + bar_h), fill=_track(face, text_colour))
    if percent is not None and percent > 0:
        filled = left + round((right - left) * min(percent, 100.0) / 100.0)
        draw.rectangle((left, bar_top, max(left + 1, filled), bar_top + bar_h), fill=text_colour)

    text = "?" if percent is None else _number(percent)
    area_w = big - 2 * inset - big // 10
    area_h = bar_top - inset - big // 16
    font, stroke = _fit(text, area_w, area_h)
    left_, top_, right_, bottom_ = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    x = (big - (right_ - left_)) / 2 - left_
    y = inset + (area_h - (bottom_ - top_)) / 2 - top_ + big // 32
    draw.text((x, y), text, font=font, fill=text_colour, stroke_width=stroke,
              stroke_fill=text_colour)

    if scale != 1:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    if stale or unknown:
        img = _dim(img)
    return img


def _track(face: RGB, ink: RGB) -> RGB:
    """The empty part of the bar: the face pushed away from the ink, so fill and track
    differ on every face (black ink on amber needs a lighter track, white ink a darker)."""
    target = 255 if sum(ink) < 384 else 0
    return tuple(round(c + (target - c) * 0.45) for c in face)  # type: ignore[return-value]


def _number(percent: float) -> str:
    """Whole percents: a tray has no room for decimals, and 99.6 must not read 100."""
    value = int(percent) if percent < 100 else round(percent)
    return str(max(0, min(value, 999)))


def _fit(text: str, width: int, height: int) -> tuple[_Font, int]:
    """The largest default-font size whose glyphs fit the box, and a stroke to embolden it."""
    lo, hi = 4, max(4, height * 2)
    best = lo
    while lo <= hi:
        mid = (lo + hi) // 2
        font = _font(mid)
        stroke = max(0, mid // 14)
        x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
        if x1 - x0 <= width and y1 - y0 <= height:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return _font(best), max(0, best // 14)


@lru_cache(maxsize=64)
def _font(size: int) -> _Font:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def _dim(img: Image.Image) -> Image.Image:
    """Grey and half transparent: the last value stays readable but looks not-live."""
    from PIL import Image, ImageOps

    r, g, b, a = img.split()
    grey = ImageOps.grayscale(Image.merge("RGB", (r, g, b)))
    alpha = a.point(lambda v: v * _STALE_ALPHA // 255)
    return Image.merge("RGBA", (grey, grey, grey, alpha))

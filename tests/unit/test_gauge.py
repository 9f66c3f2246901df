"""The tray gauge: sizes, colours per level, and the stale / estimate styles, by pixels."""

from __future__ import annotations

import pytest
from PIL import Image

from tokend.gauge import COLOURS, HOLLOW_FACE, render_gauge


def count(img: Image.Image, rgb: tuple[int, int, int], tol: int = 6) -> int:
    return sum(
        1
        for p in img.convert("RGBA").get_flattened_data()  # type: ignore[attr-defined]
        if p[3] > 200 and all(abs(p[i] - rgb[i]) <= tol for i in range(3))
    )


def mean_alpha(img: Image.Image) -> float:
    alpha = list(img.getchannel("A").get_flattened_data())  # type: ignore[attr-defined]
    return sum(alpha) / len(alpha)


@pytest.mark.parametrize("size", [16, 22, 24, 32, 64, 128])
def test_every_size_is_square_rgba(size: int) -> None:
    img = render_gauge(62.0, "ok", stale=False, estimate=False, size=size)
    assert img.mode == "RGBA"
    assert img.size == (size, size)


def test_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 8 px"):
        render_gauge(50.0, "ok", stale=False, estimate=False, size=4)


@pytest.mark.parametrize("size", [16, 24, 64])
def test_level_sets_the_face_colour(size: int) -> None:
    area = size * size
    ok = render_gauge(40.0, "ok", stale=False, estimate=False, size=size)
    warn = render_gauge(83.0, "warn", stale=False, estimate=False, size=size)
    crit = render_gauge(97.0, "critical", stale=False, estimate=False, size=size)
    # The face is a large part of the icon (less at 16 px, where the digits fill
    # it), in the level's colour and only there.
    assert count(warn, COLOURS["warn"]) > area * 0.2
    assert count(crit, COLOURS["critical"]) > area * 0.2
    assert count(ok, COLOURS["ok"]) > area * 0.2
    assert count(ok, COLOURS["warn"]) == count(ok, COLOURS["critical"]) == 0
    assert count(warn, COLOURS["critical"]) == 0
    assert count(crit, COLOURS["warn"]) == 0


def test_the_number_is_drawn_and_differs_per_percent() -> None:
    a = render_gauge(12.0, "ok", stale=False, estimate=False, size=24)
    b = render_gauge(87.0, "ok", stale=False, estimate=False, size=24)
    white_a, white_b = count(a, (255, 255, 255), 40), count(b, (255, 255, 255), 40)
    assert white_a > 20 and white_b > 20  # digits (and the bar) in white ink
    assert a.tobytes() != b.tobytes()


def test_fill_bar_grows_with_percent() -> None:
    def bar_ink(percent: float) -> int:
        img = render_gauge(percent, "ok", stale=False, estimate=False, size=64)
        bottom = img.crop((0, 50, 64, 60))  # the bar runs along the bottom
        return count(bottom, (255, 255, 255), 10)

    assert bar_ink(10) < bar_ink(50) < bar_ink(95)


def test_estimate_is_hollow_official_is_solid() -> None:
    official = render_gauge(83.0, "warn", stale=False, estimate=False, size=64)
    estimate = render_gauge(83.0, "warn", stale=False, estimate=True, size=64)
    assert count(official, HOLLOW_FACE, 2) == 0
    assert count(estimate, HOLLOW_FACE, 2) > 64 * 64 * 0.25
    # Still amber, as a frame and digits: the level stays readable.
    assert count(estimate, COLOURS["warn"]) > 64 * 64 * 0.2


def test_stale_is_dimmed_grey_and_translucent() -> None:
    live = render_gauge(97.0, "critical", stale=False, estimate=False, size=32)
    stale = render_gauge(97.0, "critical", stale=True, estimate=False, size=32)
    assert count(stale, COLOURS["critical"], 40) == 0  # no colour left
    assert mean_alpha(stale) < mean_alpha(live) * 0.6
    r, g, b, _a = stale.getpixel((16, 4))  # type: ignore[misc]
    assert r == g == b


def test_unknown_is_a_dimmed_question_mark_never_zero() -> None:
    unknown = render_gauge(None, "critical", stale=False, estimate=False, size=64)
    zero = render_gauge(0.0, "ok", stale=False, estimate=False, size=64)
    assert mean_alpha(unknown) < mean_alpha(zero) * 0.6
    assert count(unknown, COLOURS["critical"], 40) == 0
    assert unknown.tobytes() != render_gauge(
        0.0, "ok", stale=True, estimate=False, size=64
    ).tobytes()


def test_over_100_shows_the_real_number_and_a_full_bar() -> None:
    a = render_gauge(100.0, "critical", stale=False, estimate=False, size=64)
    b = render_gauge(130.0, "critical", stale=False, estimate=False, size=64)
    assert a.tobytes() != b.tobytes()

"""Codex CLI's ``rate_limits``: the official figures of its usage windows, as
observations.

Codex writes a ``rate_limits`` object with every ``token_count`` (and again on every
refresh). Three shapes have shipped: ``primary``/``secondary`` objects, the same
fields flattened with a ``primary_``/``secondary_`` prefix, and a bare
``rate_limit_reached_type`` once the wall is hit. A window is classified by its
``window_minutes`` (300 is the 5-hour window, 10080 the week), each ``limit_id`` is its
own bucket, and ``null`` is "no news". Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokend.models import LimitObservation, utc_from_epoch
from tokend.sources.jsonline import number_of, text_of

__all__ = ["LIMIT_SOURCE", "parse_rate_limits"]

LIMIT_SOURCE = "codex_rate_limits"
"""``LimitObservation.source`` of every observation this module makes."""


def parse_rate_limits(
    value: object, observed_at: datetime, session_id: str | None = None
) -> list[LimitObservation]:
    """The windows of one ``rate_limits`` object, in any of its three historical shapes.

    ``None`` (or anything that is not an object) is "no news" and yields nothing.
    """
    if not isinstance(value, dict):
        return []
    limit_id = text_of(value.get("limit_id")) or "codex"
    plan = text_of(value.get("plan_type"))
    reached_type = text_of(value.get("rate_limit_reached_type"))
    extra: dict[str, str] = {}
    name = text_of(value.get("limit_name"))
    if name:
        extra["limit_name"] = name
    if reached_type:
        extra["rate_limit_reached_type"] = reached_type
    windows: list[tuple[str, int | None, float, datetime | None]] = []
    for slot in ("primary", "secondary"):
        window = value.get(slot)
        if isinstance(window, dict):
            found = _window(window, "", observed_at)
        else:
            found = _window(value, f"{slot}_", observed_at)
        if found is not None:
            windows.append((slot, *found))
    if not windows:
        if not reached_type:
            return []
        return [
            LimitObservation(
                agent="codex",
                limit_id=limit_id,
                observed_at=observed_at,
                source=LIMIT_SOURCE,
                reached=True,
                plan_type=plan,
                session_id=session_id,
                extra=extra,
            )
        ]
    full = any(pct >= 100 for _, _, pct, _ in windows)
    # Positional, in field order (two per token_count, so it counts): agent, limit_id,
    # observed_at, source, window_minutes, used_percent, resets_at, reached,
    # plan_type, session_id, extra.
    return [
        LimitObservation(
            "codex", limit_id, observed_at, LIMIT_SOURCE, minutes, pct, resets,
            bool(reached_type) and (pct >= 100 or not full), plan, session_id,
            {**extra, "slot": slot},
        )
        for slot, minutes, pct, resets in windows
    ]


_MAX_WINDOW_MINUTES = 366 * 24 * 60
"""Longer than any usage window; a larger ``window_minutes`` is junk."""

_WINDOW_KEYS = {
    prefix: tuple(f"{prefix}{name}" for name in
                  ("used_percent", "window_minutes", "resets_at", "resets_in_seconds"))
    for prefix in ("", "primary_", "secondary_")
}
"""The keys of one window, nested (``primary.used_percent``) or flat
(``primary_used_percent``), spelled once rather than on every ``token_count``."""


def _window(
    obj: dict[str, Any], prefix: str, observed_at: datetime
) -> tuple[int | None, float, datetime | None] | None:
    pct_key, minutes_key, at_key, after_key = _WINDOW_KEYS[prefix]
    pct = number_of(obj.get(pct_key))
    if pct is None:
        return None
    minutes = number_of(obj.get(minutes_key))
    resets: datetime | None = None
    at = number_of(obj.get(at_key))
    after = number_of(obj.get(after_key))
    try:
        if at is not None and at > 0:
            resets = utc_from_epoch(at / 1000 if at > 1e11 else at)  # or epoch milliseconds
        elif after is not None:
            resets = utc_from_epoch(observed_at.timestamp() + after)
    except ValueError:
        resets = None  # a reset time in no plausible year says nothing
    if minutes is not None and not 0 < minutes <= _MAX_WINDOW_MINUTES:
        minutes = None  # junk: the window is not said
    return (int(minutes) if minutes is not None else None, pct, resets)

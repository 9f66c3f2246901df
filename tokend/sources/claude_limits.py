"""Claude Code's statements about its usage limits: rate-limit error lines of the
transcripts and the ``rate_limits`` of the statusLine JSON, as observations.

A ``<synthetic>`` line (made by the client, no API request behind it) or an API error
line can say that a limit was hit, and when it resets: in a ``quotaLimits`` object,
as ``limit reached|<epoch>`` (older versions) or as text such as "You've hit your
session limit · resets 8:30pm (Asia/Tokyo)". The statusLine JSON that Claude Code
pipes into a statusLine command carries the official percentages of both windows.
Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from tokend.models import Agent, LimitObservation, utc_from_epoch, utc_from_iso
from tokend.sources.jsonline import text_of

__all__ = ["FIVE_HOURS", "LIMIT_ID", "WEEK", "limit_observation", "statusline_observations"]

AGENT: Agent = "claude"
LIMIT_ID = "claude"
FIVE_HOURS = 300
WEEK = 10080

_QUOTA_WINDOWS: dict[str, tuple[str, int | None]] = {
    "five_hour": (LIMIT_ID, FIVE_HOURS),
    "seven_day": (LIMIT_ID, WEEK),
    # Model-specific weekly caps live in their own bucket: hitting the Opus cap does
    # not mean the all-models week is full.
    "seven_day_opus": ("claude_opus", WEEK),
    "seven_day_sonnet": ("claude_sonnet", WEEK),
}

# "Claude AI usage limit reached|1789480800" (older versions, epoch seconds).
_REACHED_EPOCH = re.compile(r"limit reached\|(\d{9,13})")
# "You've hit your session limit · resets 8:30pm (Asia/Tokyo)",
# "You've hit your limit · resets Feb 16, 11am (Europe/Berlin)".
_HIT_KIND = re.compile(r"hit your ((?:[\w-]+ ){0,2})limit", re.IGNORECASE)
_RESETS = re.compile(
    r"resets (?:(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2}),? (?:at )?)?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))? ?(?P<ampm>[ap]m)"
    r"(?: \((?P<tz>[^)]+)\))?",
    re.IGNORECASE,
)
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
)}


def _epoch(value: object) -> datetime | None:
    """Epoch seconds (or milliseconds, which some writers use) as aware UTC."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str) and value:
            try:
                return utc_from_iso(value)
            except ValueError:
                return None
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    try:
        return utc_from_epoch(value / 1000 if value > 1e11 else value)
    except ValueError:
        return None


def _message_text(message: Mapping[str, Any]) -> str:
    """The text of a synthetic error message, only to read the limit it names."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [
        block["text"]
        for block in content
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    ]
    return "\n".join(parts)


def limit_observation(
    obj: Mapping[str, Any], message: Mapping[str, Any], observed_at: datetime, session: str
) -> LimitObservation | None:
    """The wall a rate-limit error line says was hit, or ``None`` for other errors."""
    quota = obj.get("quotaLimits")
    quota = quota if isinstance(quota, dict) else None
    text = _message_text(message)
    epoch_match = _REACHED_EPOCH.search(text)
    hit_match = _HIT_KIND.search(text)
    rate_limited = obj.get("error") == "rate_limit"
    rejected = quota is not None and quota.get("status") == "rejected"
    if not (rate_limited or rejected or epoch_match or hit_match):
        return None

    limit_id, window = LIMIT_ID, None
    resets_at: datetime | None = None
    extra: dict[str, str] = {}
    if quota is not None:
        kind = quota.get("rateLimitType")
        if isinstance(kind, str):
            limit_id, window = _QUOTA_WINDOWS.get(kind, (LIMIT_ID, None))
            extra["rate_limit_type"] = kind
        resets_at = _epoch(quota.get("resetsAt"))
    if window is None and hit_match is not None:
        words = hit_match.group(1).lower()
        if "session" in words:
            window = FIVE_HOURS
        elif "opus" in words or "sonnet" in words:
            # Model caps are weekly and apart from the all-models week.
            window = WEEK
            limit_id = "claude_opus" if "opus" in words else "claude_sonnet"
        elif "week" in words:
            window = WEEK
    if resets_at is None and epoch_match is not None:
        resets_at = _epoch(int(epoch_match.group(1)))
    if resets_at is None:
        resets_at = _resets_from_text(text, observed_at)
    return LimitObservation(
        agent=AGENT,
        limit_id=limit_id,
        observed_at=observed_at,
        source="claude_limit_error",
        window_minutes=window,
        used_percent=100.0,
        resets_at=resets_at,
        reached=True,
        session_id=session,
        extra=extra,
    )


def _resets_from_text(text: str, observed_at: datetime) -> datetime | None:
    """``resets 2:30pm (Europe/Berlin)`` / ``resets Feb 16, 11am (…)`` as UTC.

    Only with a named time zone: a pure parser cannot know the zone the message was
    rendered in otherwise. A bare time is the next such time after the line.
    """
    match = _RESETS.search(text)
    if match is None or not match.group("tz"):
        return None
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(match.group("tz").strip())
    except (ValueError, KeyError, OSError, ImportError):
        return None  # unknown zone name, or no tz database (Windows without tzdata)
    hour = int(match.group("hour")) % 12 + (12 if match.group("ampm").lower() == "pm" else 0)
    minute = int(match.group("minute") or 0)
    if minute > 59:
        return None
    local_now = observed_at.astimezone(zone)
    try:
        if match.group("mon"):
            month = _MONTHS.get(match.group("mon").lower())
            if month is None:
                return None
            candidate = local_now.replace(
                month=month, day=int(match.group("day")), hour=hour, minute=minute,
                second=0, microsecond=0,
            )
            if candidate < local_now - timedelta(days=1):
                candidate = candidate.replace(year=candidate.year + 1)
        else:
            candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if candidate < local_now:
                candidate = (candidate + timedelta(days=1)).replace(hour=hour, minute=minute)
    except ValueError:
        return None
    return candidate.astimezone(timezone.utc)


def statusline_observations(
    payload: Mapping[str, Any], observed_at: datetime
) -> list[LimitObservation]:
    """Official window usage from the JSON Claude Code pipes into a statusLine command.

    ``rate_limits.five_hour`` / ``seven_day`` each hold ``used_percentage`` (0-100) and
    ``resets_at`` (epoch seconds); the whole object, or either window, is absent for
    API-key users and before the session's first response. Absent means "no news",
    never 0 %, so nothing is returned for it.
    """
    if observed_at.tzinfo is None:
        observed_at = observed_at.replace(tzinfo=timezone.utc)
    observed_at = observed_at.astimezone(timezone.utc)
    limits = payload.get("rate_limits")
    if not isinstance(limits, dict):
        return []
    session = text_of(payload.get("session_id"))
    out = []
    for name, minutes in (("five_hour", FIVE_HOURS), ("seven_day", WEEK)):
        window = limits.get(name)
        if not isinstance(window, dict):
            continue
        raw = window.get("used_percentage")
        used = (
            float(raw)
            if isinstance(raw, (int, float)) and not isinstance(raw, bool)
            and math.isfinite(raw) and raw >= 0
            else None
        )
        resets_at = _epoch(window.get("resets_at"))
        if used is None and resets_at is None:
            continue
        out.append(
            LimitObservation(
                agent=AGENT,
                limit_id=LIMIT_ID,
                observed_at=observed_at,
                source="claude_statusline",
                window_minutes=minutes,
                used_percent=used,
                resets_at=resets_at,
                reached=used is not None and used >= 100.0,
                session_id=session,
            )
        )
    return out

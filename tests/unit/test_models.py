"""Timestamps as the agents write them, turned into aware UTC instants."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tokend.models import utc_from_epoch, utc_from_iso, utc_from_ms, utc_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T09:15:30.123Z", datetime(2026, 11, 20, 9, 15, 30, 123000, timezone.utc)),
        ("2026-11-20T09:15:30z", datetime(2026, 11, 20, 9, 15, 30, tzinfo=timezone.utc)),
        ("2026-11-20T11:15:30+02:00", datetime(2026, 11, 20, 9, 15, 30, tzinfo=timezone.utc)),
        ("2026-11-20T04:00:00-05:30", datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)),
        ("2026-11-20T09:15:30", datetime(2026, 11, 20, 9, 15, 30, tzinfo=timezone.utc)),
    ],
)
def test_any_offset_becomes_utc(text: str, expected: datetime) -> None:
    value = utc_from_iso(text)
    assert value == expected and value.utcoffset() is not None
    assert value.tzinfo == timezone.utc


def test_an_offset_and_a_z_is_refused_not_misread() -> None:
    """``+02:00Z`` names two offsets; taking either silently would shift the event."""
    with pytest.raises(ValueError):
        utc_from_iso("2026-11-20T11:15:30+02:00Z")


def test_milliseconds_round_trip() -> None:
    value = utc_from_iso("2026-11-20T09:15:30.123Z")
    assert utc_from_ms(utc_ms(value)) == value


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00",
     "9999-12-31T23:59:59-12:00", "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z"],
)
def test_an_instant_in_no_plausible_year_is_refused(text: str) -> None:
    """A corrupt timestamp at the edge of the calendar used to be stored, and then
    every report that put it in a time zone (weekly, blocks) failed on it."""
    with pytest.raises(ValueError, match="out"):
        utc_from_iso(text)


def test_epoch_seconds_in_no_plausible_year_are_refused() -> None:
    assert utc_from_epoch(1_790_000_000) == datetime.fromtimestamp(1_790_000_000, timezone.utc)
    for seconds in (0.0, 253402300799.0, 1e300, -5e9):
        with pytest.raises(ValueError, match="out"):
            utc_from_epoch(seconds)

"""The normalized records every source produces and every consumer reads.

A parser turns an agent's own log line into :class:`UsageEvent` (one API response,
already deduplicated by the store through ``dedup_key``) or :class:`LimitObservation`
(an official statement about a usage window). Neither ever holds prompt or response
text: only counts, ids, model and tool names, timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, Union

__all__ = [
    "AGENTS",
    "Agent",
    "LimitObservation",
    "Record",
    "UsageEvent",
    "utc_from_epoch",
    "utc_from_iso",
    "utc_from_ms",
    "utc_ms",
]

Agent = Literal["claude", "codex", "gemini"]
AGENTS: tuple[Agent, ...] = ("claude", "codex", "gemini")


@dataclass(slots=True)
class UsageEvent:
    """Token usage of one model response.

    Treat it as immutable (``dataclasses.replace`` to change a field). It is not
    ``frozen`` only because a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, 2.5x slower, and a cold scan builds one per usage line.

    Token fields do not overlap, so their sum is the total the agent was billed for:

    - ``input_tokens``: input that was neither read from nor written to a cache;
    - ``output_tokens``: everything billed as output (Codex reasoning and Gemini
      thoughts included);
    - ``reasoning_tokens``: the part of ``output_tokens`` that was reasoning,
      informational only, never added again.

    ``dedup_key`` is global per agent; when two events share it the store keeps the
    one with the larger ``rank`` (ties: the later write). ``shadow_key`` groups a
    primary copy with sidechain replays of it (Claude ``/btw``): a replay never
    counts beside its primary. The dedup key of an event with a ``shadow_key`` is
    ``"<agent>:<shadow_key>"``, alone or followed by ``":"`` and more: the store finds
    the primaries of a message by that prefix (:data:`tokend.store_schema.UPSERT_REPLAY`).
    """

    agent: Agent
    dedup_key: str
    timestamp: datetime
    session_id: str
    project: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    tools: tuple[str, ...] = ()
    sidechain: bool = False
    rank: int = 0
    shadow_key: str | None = None
    speed: str | None = None
    """``"fast"`` or a service tier such as ``"priority"``, for the price multiplier."""

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
        )

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt of the request, as long-context pricing thresholds count it."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


WindowMinutes = int


@dataclass(slots=True)
class LimitObservation:
    """An official statement about a usage window, as the agent or its API made it.

    Treat it as immutable, as :class:`UsageEvent` and for the same reason: Codex
    writes two with every ``token_count``, and a frozen ``__init__`` made building
    them a tenth of a cold scan's parsing.

    ``used_percent`` is 0-100 or ``None`` when the source says only that the wall
    was hit (``reached``). ``window_minutes`` is 300 for the 5-hour window, 10080
    for the week, ``None`` when the source did not say. ``limit_id`` keeps separate
    buckets apart (Codex ``codex`` vs model-specific ids; ``claude`` for Claude).
    """

    agent: Agent
    limit_id: str
    observed_at: datetime
    source: str
    window_minutes: int | None = None
    used_percent: float | None = None
    resets_at: datetime | None = None
    reached: bool = False
    plan_type: str | None = None
    session_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


Record = Union[UsageEvent, LimitObservation]  # noqa: UP007 - a runtime alias on 3.10


FIRST_YEAR, END_YEAR = 2000, 2200
"""Instants read from logs fall in these years (the end excluded); anything else is a
corrupt value, refused where it is read: the reports could not even print a year
10000 once a time zone moves it there."""


def utc_from_iso(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with any offset (or ``Z``) into an aware UTC datetime.

    A naive timestamp is taken as UTC, which is what every agent writes. Called for
    every usage line of a scan, so the common case (``...Z``, which Python 3.11's
    parser reads as UTC itself) is one C call; Python 3.10 and a lowercase ``z`` take
    the slower path. :raises ValueError: not a timestamp, or outside
    :data:`FIRST_YEAR` to :data:`END_YEAR`.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        if text[-1:] not in ("Z", "z"):
            raise
        naive = datetime.fromisoformat(text[:-1])
        if naive.tzinfo is not None:
            raise ValueError(f"two UTC offsets in {text!r}") from None
        value = naive.replace(tzinfo=timezone.utc)
    tz = value.tzinfo
    if tz is None:
        value = value.replace(tzinfo=timezone.utc)
    elif tz is not timezone.utc:
        try:
            value = value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError(f"{text!r} is out of range") from None
    if not FIRST_YEAR <= value.year < END_YEAR:
        raise ValueError(f"{text!r} is outside the years {FIRST_YEAR}-{END_YEAR - 1}")
    return value


def utc_from_epoch(seconds: float) -> datetime:
    """Epoch seconds as an aware UTC datetime.

    :raises ValueError: outside :data:`FIRST_YEAR` to :data:`END_YEAR` (or beyond
        what a datetime holds).
    """
    try:
        value = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{seconds!r} is out of range") from None
    if not FIRST_YEAR <= value.year < END_YEAR:
        raise ValueError(f"{seconds!r} is outside the years {FIRST_YEAR}-{END_YEAR - 1}")
    return value


def utc_ms(value: datetime) -> int:
    """Milliseconds since the epoch: how the store keeps every instant."""
    return round(value.timestamp() * 1000)


def utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)

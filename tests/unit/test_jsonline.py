"""Decoding a log line and reading token counts from it (every source uses these)."""

from __future__ import annotations

import pytest

from tokend.errors import MalformedLine
from tokend.sources import jsonline
from tokend.sources.jsonline import MAX_TOKENS, count_of, decode_object


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (42, 42), (42.9, 42), (0, 0), (-3, 0), (None, 0), ("7", 0), (True, 0),
        (float("nan"), 0), (float("inf"), 0), (MAX_TOKENS, MAX_TOKENS),
        (MAX_TOKENS + 1, 0), (10**25, 0), (1e300, 0),
    ],
)
def test_count_of(value: object, count: int) -> None:
    assert count_of(value) == count


@pytest.mark.parametrize("fast", [True, False])
def test_decode_object_takes_what_the_stdlib_takes(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:
        monkeypatch.setattr(jsonline, "_fast_loads", None)
    # orjson refuses all three (64-bit integers, NaN, a lone surrogate): the stdlib decides
    line = b'{"a": 100000000000000000000000, "b": NaN, "c": "\\ud800"}'
    obj = decode_object(line)
    assert obj["a"] == 10**23 and obj["b"] != obj["b"] and obj["c"] == "\ud800"
    for bad in (b"[1, 2]", b'{"a": ', b"\xff"):
        with pytest.raises(MalformedLine):
            decode_object(bad)


@pytest.mark.parametrize("fast", [True, False])
def test_bytes_that_are_not_utf8_are_replaced_not_fatal(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Node (and so ccusage) reads a transcript: U+FFFD for each bad byte, and the
    line's counts survive."""
    if not fast:
        monkeypatch.setattr(jsonline, "_fast_loads", None)
    obj = decode_object(b'{"text": "a\xffb\xc3", "output_tokens": 7}')
    assert obj == {"text": "a\ufffdb\ufffd", "output_tokens": 7}
    with pytest.raises(MalformedLine):
        decode_object(b'{"text": "a\xffb"')  # still cut short: still malformed

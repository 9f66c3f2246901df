"""Decoding one JSON log line, and reading a token count from it, for every source.

A cold scan of a long history is dominated by decoding, so orjson decodes when it is
installed (3-4x faster than the stdlib's decoder on agent log lines). The stdlib
decoder has the last word on anything orjson refuses (lone surrogates, NaN, integers
beyond 64 bits, which the agents' own writers let through), so no count ever depends
on whether orjson is installed. Bytes that are not UTF-8 are read as U+FFFD, as Node
(and so ccusage) reads them: a stray byte in a prompt does not cost the line its tokens.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from typing import Any

from tokend.errors import MalformedLine

__all__ = ["MAX_TOKENS", "count_of", "decode_object", "number_of", "text_of"]

MAX_TOKENS = 10**12
"""More tokens than any response holds: a larger count is junk. Stored, it would not
even fit SQLite's 64-bit integers (the scan failed on such a line, every time)."""


def _optional_fast_loads() -> Callable[[bytes], Any] | None:
    try:
        module = importlib.import_module("orjson")
    except ImportError:
        return None
    loads: Callable[[bytes], Any] = module.loads
    return loads


_fast_loads = _optional_fast_loads()
"""orjson's decoder, or ``None``; tests set it to ``None`` to check the stdlib path."""


def decode_object(line: bytes) -> dict[str, Any]:
    """The JSON object on ``line``; raises :class:`MalformedLine` for anything else."""
    obj: Any
    try:
        if _fast_loads is None:
            obj = _stdlib_loads(line)
        else:
            try:
                obj = _fast_loads(line)
            except ValueError:
                obj = _stdlib_loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError
        raise MalformedLine(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedLine("not a JSON object")
    return obj


def _stdlib_loads(line: bytes) -> Any:
    """The stdlib's reading, with bytes that are not UTF-8 replaced by U+FFFD.

    A stray byte inside a prompt's text must not cost the line its tokens: Node (and
    so ccusage) reads transcripts the same way, and the fast Claude decoder
    (:mod:`tokend.sources.claude_fast`) does not look inside the text it skips.
    """
    try:
        return json.loads(line)
    except UnicodeDecodeError:
        return json.loads(line.decode("utf-8", "replace"))


def count_of(value: object) -> int:
    """A token count as written; 0 for ``null``, a missing or negative count, a
    boolean, NaN or an infinity (the stdlib decoder's extensions), anything above
    :data:`MAX_TOKENS`, and anything that is not a number."""
    if type(value) is int:
        return value if 0 < value <= MAX_TOKENS else 0
    if type(value) is float:
        return int(value) if 0 < value <= MAX_TOKENS else 0  # NaN compares False
    return 0


def number_of(value: object) -> float | None:
    """A finite JSON number as a float; ``None`` for anything else (NaN and the
    infinities come only from the stdlib decoder's extensions)."""
    if type(value) is int:
        return float(value) if -1e300 < value < 1e300 else None
    if type(value) is float and math.isfinite(value):
        return value
    return None


def text_of(value: object) -> str | None:
    """A non-empty JSON string, or ``None``."""
    return value if isinstance(value, str) and value else None

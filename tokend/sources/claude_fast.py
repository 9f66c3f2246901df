"""The fields of a Claude Code usage line, decoded without building dictionaries.

A usage line averages a kilobyte, most of it content text and tool input that no
count needs; decoding it into dictionaries (orjson) is more than half of a cold
scan's parse time. msgspec decodes straight into the few fields below and skips the
rest, about 1.6x faster per line.

Only the common shape is described here: an object ``message`` holding an object
``usage``, ``content`` as a list of objects or a string, ``cache_creation`` an object.
A line of any other shape fails validation and the parser reads it through the
dictionary path, which remains the reference for every rule; so does any line this
decoder refuses and the stdlib accepts (NaN, lone surrogates, numbers beyond a
double, a byte-order mark). Scalar fields are ``Any`` so that a value of an odd type
reaches the same checks as on the dictionary path. The one case this decoder accepts
and the stdlib refuses, bytes that are not UTF-8 inside skipped text, the dictionary
path reads with those bytes replaced (:func:`tokend.sources.jsonline.decode_object`),
so both paths count such a line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["DECODE", "UNSET", "Block", "Line", "Message", "Split", "Usage"]

UNSET: Any = msgspec.UNSET
"""The value of ``error`` and ``quotaLimits`` when the line does not have them."""


class Block(msgspec.Struct, gc=False):
    """One content block: only a tool call's name is kept (never any text)."""

    type: Any = None
    name: Any = None


class Split(msgspec.Struct, gc=False):
    """``usage.cache_creation``: the cache write by time to live."""

    ephemeral_5m_input_tokens: Any = None
    ephemeral_1h_input_tokens: Any = None


class Usage(msgspec.Struct, gc=False):
    input_tokens: Any = None
    output_tokens: Any = None
    cache_read_input_tokens: Any = None
    cache_creation_input_tokens: Any = None
    cache_creation: Split | None = None
    speed: Any = None
    service_tier: Any = None


class Message(msgspec.Struct, gc=False):
    id: Any = None
    model: Any = None
    usage: Usage | None = None
    content: list[Block] | str | None = None


class Line(msgspec.Struct, gc=False):
    """A transcript line, as far as counting needs it.

    ``error`` and ``quotaLimits`` are only checked for presence (a line holding
    either may be a limit observation, which the dictionary path reads).
    """

    type: Any = None
    message: Message | None = None
    requestId: Any = None  # the transcript's own spelling
    isSidechain: Any = None
    isApiErrorMessage: Any = None
    sessionId: Any = None
    timestamp: Any = None
    cwd: Any = None
    uuid: Any = None
    error: Any = UNSET
    quotaLimits: Any = UNSET


DECODE: Callable[[bytes], Line] | None = msgspec.json.Decoder(Line).decode
"""Decodes one line; raises ``ValueError`` (msgspec's errors, bad UTF-8 in a kept
field) or ``RecursionError`` when the dictionary path must decide. Tests set it to
``None`` to send every line through the dictionary path."""

"""The fast reading of Claude usage lines (msgspec structs) against the reference one.

:meth:`ClaudeParser.feed` decodes every line into dictionaries; the tailer's
:meth:`ClaudeParser.feed_chunk` decodes a usage line of the common shape with msgspec
and sends anything else to the same dictionary code. Whatever the line, both must
give the same records, malformed count and parser state. The generated lines below
vary every field the count reads (types, absence, null, duplicates, limits) and the
bytes around them (text that is not UTF-8, NaN, lone surrogates, a byte-order mark,
spacing), where the two decoders differ.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokend.sources import claude_fast
from tokend.sources.base import Root
from tokend.sources.claude import SOURCE, ClaudeParser
from tokend.tail import feed_lines


def _parser() -> ClaudeParser:
    return SOURCE.parser(Root("claude", Path("/p"), "t"), Path("/p/proj/s.jsonl"), None)


def _both(data: bytes) -> tuple[Any, Any]:
    """(reference, fast): feed line by line, and feed_chunk with msgspec on."""
    reference, fast = _parser(), _parser()
    expected = feed_lines(reference, data)
    got = fast.feed_chunk(data)
    return (expected, reference.state()), (got, fast.state())


def _usage_line(**overrides: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "parentUuid": "p-1",
        "isSidechain": False,
        "cwd": "/home/dev/app",
        "sessionId": "sess-1",
        "type": "assistant",
        "message": {
            "id": "msg_1",
            "model": "claude-sonnet-4-5-20250929",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"cmd": "ls"}},
            ],
            "usage": {
                "input_tokens": 3,
                "cache_creation_input_tokens": 500,
                "cache_read_input_tokens": 12000,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 500,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": 42,
                "service_tier": "standard",
            },
        },
        "requestId": "req_1",
        "uuid": "u-1",
        "timestamp": "2026-10-02T14:00:00.000Z",
    }
    line.update(overrides)
    return line


# -- values of every type a field might hold ----------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10**6),
    st.sampled_from([10**12, 10**12 + 1, 2**63, 10**25, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "7", "fast", "priority", "msg_2", "req_2", "assistant", "user"]),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=2),
    st.dictionaries(st.sampled_from(["a", "name", "type"]), _scalars, max_size=2),
)
_absent = object()


def _maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(_absent), values)


_blocks = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["tool_use", "server_tool_use", "text", "thinking"]),
                "name": _maybe(st.one_of(st.sampled_from(["Bash", "Read", "Edit"]), _scalars)),
            }
        ),
        _scalars,
    ),
    max_size=3,
)


_HIT = [{"type": "text", "text": "You've hit your session limit \u00b7 resets 8:30pm (UTC)"}]
"""What a rate-limit error says: an observation whichever line carries it."""
_LINE_FIELDS: tuple[tuple[str, st.SearchStrategy[Any]], ...] = (
    ("type", st.sampled_from(["assistant", "user", "progress"])),
    ("requestId", st.sampled_from(["req_1", "req_2", ""])),
    ("uuid", st.sampled_from(["u-1", "u-2", ""])),
    ("sessionId", st.sampled_from(["sess-1", ""])),
    ("cwd", st.sampled_from(["/home/dev/other", ""])),
    ("isSidechain", st.booleans()),
    ("isApiErrorMessage", st.booleans()),
    ("timestamp", st.sampled_from([
        "2026-10-02T14:00:01Z", "2026-10-02T23:30:00+05:30", "2026-10-02 14:00:00",
        "yesterday", "9999-12-31T23:59:59Z",
    ])),
    ("error", st.sampled_from(["rate_limit", "invalid_request"])),
    ("quotaLimits", st.just({"fiveHour": {"utilization": 0.5}})),
)
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens", "speed", "service_tier")


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    """A usage line with a few of its fields changed; most stay of the common shape
    (which msgspec reads), the rest take the dictionary path."""
    line = _usage_line()
    message = line["message"]
    usage = message["usage"]
    usage["cache_creation"]["ephemeral_1h_input_tokens"] = draw(st.sampled_from([0, 2048]))
    if draw(st.integers(0, 7)) == 0:  # an API error line with a real model and usage
        line["isApiErrorMessage"] = True
        message["content"] = _HIT
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.integers(0, 6))
        if edit == 0:
            usage[draw(st.sampled_from(_USAGE_FIELDS))] = draw(_maybe(_values))
        elif edit == 1:
            usage["cache_creation"] = draw(_maybe(st.one_of(
                _values,
                st.fixed_dictionaries({
                    "ephemeral_5m_input_tokens": _maybe(_values),
                    "ephemeral_1h_input_tokens": _maybe(_values),
                }),
            )))
        elif edit == 2:
            message["content"] = draw(_maybe(st.one_of(_blocks, _values, st.just(_HIT))))
        elif edit == 3:
            key, choices = draw(st.sampled_from([
                ("id", st.sampled_from(["msg_1", "msg_2", ""])),
                ("model", st.sampled_from(["claude-opus-4-1", "<synthetic>", ""])),
            ]))
            message[key] = draw(_maybe(st.one_of(choices, _values)))
        elif edit == 4:
            message["usage"] = draw(_maybe(_values))
        elif edit == 5:
            line["message"] = draw(_maybe(_values))
        else:
            name, options = draw(st.sampled_from(_LINE_FIELDS))
            line[name] = draw(_maybe(st.one_of(options, options, _values)))
    pruned = _prune(line)
    text = json.dumps(pruned, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    if draw(st.integers(0, 5)) == 0:  # the same key twice: the last one counts
        text = text[:-1] + ', "type": ' + json.dumps(draw(_scalars)) + "}"
    data = text.encode()
    trouble = draw(st.integers(0, 16))
    if trouble == 1:  # not UTF-8 inside skipped text
        data = data.replace(b'"hmm"', b'"h\xff\xfem"')
    elif trouble == 2:  # not UTF-8 in a field that is read
        data = data.replace(b'"/home/dev/app"', b'"/home/\xc3dev"')
    elif trouble == 3:  # the stdlib's extensions, refused by msgspec and orjson
        data = data.replace(b'"hmm"', b"NaN", 1)
    elif trouble == 4:
        data = data.replace(b'"hmm"', b'"\\ud800"')
    elif trouble == 5:
        data = b"\xef\xbb\xbf" + data
    elif trouble == 6:
        data = b"  " + data + b" \r"
    elif trouble == 7:  # cut short by a crash
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif trouble == 8:
        data = data.replace(b"12000", b"1e400")
    return data


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not _absent}
    if isinstance(value, list):
        return [_prune(v) for v in value if v is not _absent]
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines(), min_size=1, max_size=6))
def test_fast_reading_equals_the_reference(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    expected, got = _both(data)
    assert got == expected


def test_the_common_line_never_reaches_the_dictionary_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comparison above means nothing if every line fell back: a transcript's
    usage line must be read by msgspec alone; a limit line goes to the dictionaries."""
    calls: list[str] = []
    original = ClaudeParser._records

    def spy(self: ClaudeParser, obj: dict[str, Any], *rest: Any) -> None:
        calls.append(str(obj.get("type")))
        original(self, obj, *rest)

    monkeypatch.setattr(ClaudeParser, "_records", spy)
    common = json.dumps(_usage_line()).encode()
    spaced = json.dumps(_usage_line(message={**_usage_line()["message"], "content": "text"}),
                        indent=None, separators=(" , ", " : ")).encode()
    events, _, bad = _parser().feed_chunk(common + b"\n" + spaced + b"\n")
    assert (len(events), bad, calls) == (1, 0, [])
    assert events[0].tools == ("Bash",) and events[0].cache_write_5m_tokens == 500
    limit = json.dumps(_usage_line(error="rate_limit")).encode()
    _parser().feed_chunk(limit + b"\n")
    assert calls == ["assistant"]


def test_switched_off_fast_reading_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [json.dumps(_usage_line(requestId=f"req_{i}")).encode() for i in range(3)]
    data = b"\n".join(lines) + b"\n"
    fast = _parser().feed_chunk(data)
    monkeypatch.setattr(claude_fast, "DECODE", None)
    assert _parser().feed_chunk(data) == fast and len(fast[0]) == 3


def test_a_stray_byte_in_the_text_does_not_lose_the_line() -> None:
    """Bytes that are not UTF-8 inside a prompt's text: the line still counts (Node,
    and so ccusage, reads them as U+FFFD), on both paths."""
    data = json.dumps(_usage_line()).encode().replace(b'"hmm"', b'"h\xffm"') + b"\n"
    (expected, _), (got, _) = _both(data)
    assert got == expected
    events, _, bad = got
    assert bad == 0 and len(events) == 1 and events[0].output_tokens == 42


def test_reading_the_source_does_not_import_msgspec() -> None:
    """A report that finds nothing new must not pay msgspec's import (about 10 ms);
    a scan about to fork its parse workers loads it once for all of them."""
    code = (
        "import sys, tokend.sources.claude, tokend.tail, tokend.cli\n"
        "assert 'msgspec' not in sys.modules, 'msgspec imported'\n"
        "tokend.sources.claude.SOURCE.load_parsing()\n"
        "assert 'msgspec' in sys.modules, 'msgspec not loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[2])


def test_without_msgspec_every_line_takes_the_dictionary_path() -> None:
    """A broken install without msgspec still counts every line (only slower)."""
    line = json.dumps(_usage_line())
    code = (
        "import sys\n"
        "sys.modules['msgspec'] = None  # import msgspec now raises ImportError\n"
        "from pathlib import Path\n"
        "from tokend.sources.base import Root\n"
        "from tokend.sources.claude import SOURCE\n"
        "SOURCE.load_parsing()\n"
        "parser = SOURCE.parser(Root('claude', Path('/p'), 't'), Path('/p/x/s.jsonl'), None)\n"
        f"events, _, bad = parser.feed_chunk({(line + chr(10)).encode()!r})\n"
        "assert bad == 0 and [(e.output_tokens, e.tools) for e in events] == [(42, ('Bash',))]\n"
        "assert 'tokend.sources.claude_fast' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[2])

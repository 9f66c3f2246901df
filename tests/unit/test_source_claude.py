"""The Claude Code source: each counting rule, through the tailer and a real store.

The fixture under ``tests/fixtures/claude/projects`` is one session in
``/home/dev/shop-web`` with every trap the format has (see ``FIXTURE_TOTALS``). Each
store-level test names the rule it guards; removing that rule from
``tokend/sources/claude.py`` changes the number it asserts.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.errors import MalformedLine
from tokend.models import LimitObservation, UsageEvent
from tokend.sources import jsonline
from tokend.sources.base import Root
from tokend.sources.claude import (
    SOURCE,
    ClaudeParser,
    rank_of,
)
from tokend.sources.claude_limits import statusline_observations
from tokend.sources.jsonline import MAX_TOKENS, count_of
from tokend.store import EventRow, Store
from tokend.tail import Tailer, feed_lines

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude"
PROJECT = "-home-dev-shop-web"
SID = "3f9a7c10-2b4e-4d6f-8a1c-9e0b5d7f2a64"
MAIN = f"{PROJECT}/{SID}.jsonl"
SUBAGENT = f"{PROJECT}/{SID}/subagents/agent-b3e9d21.jsonl"
BTW = f"{PROJECT}/{SID}/subagents/agent-a5d0f7e.jsonl"

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"

# input, cache write 5m, cache write 1h, cache read, output; worked out by hand:
#   msg_A  4 / 3000 /    0 / 12000 / 187   streamed over 3 lines (9, 9, 187)
#   msg_B  6 /    0 / 2048 / 15000 / 120   1-hour cache write
#   msg_C  3 /  500 /    0 / 17000 /  64   "+05:30" timestamp, spaced-out JSON, fast
#   msg_D  2 /    0 /    0 / 17500 /  77   no requestId, 2 copies (3, 77)
#   S1     5 / 7000 /    0 /     0 /  45   subagent file (also echoed by a progress line)
#   S2     2 /  900 /    0 /  7000 / 310   subagent file (also in toolUseResult.usage)
#   Q1     3 /   40 /    0 / 12000 /  95   /btw answer (its replay of msg_A is dropped)
FIXTURE_TOTALS = (25, 11440, 2048, 80500, 898)
FIXTURE_EVENTS = 7


# -- helpers ----------------------------------------------------------------------


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """A private copy of the fixture tree, so tests can append and reorder."""
    target = tmp_path / "claude" / "projects"
    shutil.copytree(FIXTURES / "projects", target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db") as s:
        yield s


def _root(projects: Path) -> Root:
    return Root("claude", projects, "test")


def _tailer(store: Store, projects: Path) -> Tailer:
    return Tailer(store, [(SOURCE, _root(projects))], cost_fn=lambda e: None)


def _scan(store: Store, projects: Path) -> list[EventRow]:
    _tailer(store, projects).scan()
    return list(store.events())


def _totals(rows: list[EventRow]) -> tuple[int, int, int, int, int]:
    return (
        sum(r.input for r in rows),
        sum(r.cache_write_5m for r in rows),
        sum(r.cache_write_1h for r in rows),
        sum(r.cache_read for r in rows),
        sum(r.output for r in rows),
    )


def _line(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


def _assistant(
    *,
    mid: str | None = "msg_1",
    req: str | None = "req_1",
    out: int = 10,
    model: str = SONNET,
    sidechain: bool = False,
    usage: dict[str, Any] | None = None,
    content: list[dict[str, Any]] | None = None,
    ts: str = "2026-10-02T14:00:00.000Z",
    **extra: Any,
) -> bytes:
    message: dict[str, Any] = {
        "model": model,
        "type": "message",
        "role": "assistant",
        "content": content or [{"type": "text", "text": "ok"}],
        "usage": usage
        if usage is not None
        else {
            "input_tokens": 1,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": out,
        },
    }
    if mid is not None:
        message["id"] = mid
    fields: dict[str, Any] = {
        "isSidechain": sidechain,
        "cwd": "/home/dev/app",
        "sessionId": "sess-1",
        "type": "assistant",
        "message": message,
        "uuid": f"uuid-{mid}-{out}",
        "timestamp": ts,
        **extra,
    }
    if req is not None:
        fields["requestId"] = req
    return _line(**fields)


def _parser(state: dict[str, Any] | None = None, path: str = "/p/proj/s.jsonl") -> ClaudeParser:
    return SOURCE.parser(Root("claude", Path("/p"), "t"), Path(path), state)


def _events(records: list[Any]) -> list[UsageEvent]:
    return [r for r in records if isinstance(r, UsageEvent)]


def _limits(records: list[Any]) -> list[LimitObservation]:
    return [r for r in records if isinstance(r, LimitObservation)]


def _by_output(rows: list[EventRow], output: int) -> list[EventRow]:
    return [r for r in rows if r.output == output]


# -- the whole fixture --------------------------------------------------------------


def test_fixture_totals(store: Store, projects: Path) -> None:
    report = _tailer(store, projects).scan()
    rows = list(store.events())
    assert _totals(rows) == FIXTURE_TOTALS
    assert len(rows) == FIXTURE_EVENTS
    assert report.files == 3  # main + two subagent files; the .meta.json is not a log
    assert report.malformed == 2
    assert {r.model for r in rows} == {SONNET, HAIKU}


def test_same_totals_without_orjson(
    store: Store, projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orjson is only a speed-up: the stdlib decoder must give the same answer."""
    monkeypatch.setattr(jsonline, "_fast_loads", None)
    rows = _scan(store, projects)
    assert _totals(rows) == FIXTURE_TOTALS


def test_line_only_the_stdlib_decoder_accepts_still_counts() -> None:
    """A lone surrogate in tool output is valid to json but not to orjson."""
    line = _assistant(content=[{"type": "text", "text": "x"}]).replace(b'"x"', b'"\\ud800"')
    assert b"\\ud800" in line
    assert [e.output_tokens for e in _events(_parser().feed(line))] == [10]


def test_rescan_and_reread_are_idempotent(store: Store, projects: Path) -> None:
    _scan(store, projects)
    _scan(store, projects)
    main = projects / MAIN
    data = main.read_bytes()
    main.unlink()
    main.write_bytes(data)  # new inode: the tailer reads it again from 0
    rows = _scan(store, projects)
    assert _totals(rows) == FIXTURE_TOTALS
    assert len(rows) == FIXTURE_EVENTS


# -- one test per counting rule ---------------------------------------------------------


def test_streamed_response_counts_once_with_the_final_output(
    store: Store, projects: Path
) -> None:
    """Rule: dedup on (message.id, requestId), larger total wins (not first, not sum)."""
    rows = [r for r in _scan(store, projects) if r.cache_read == 12000 and r.input == 4]
    assert [(r.output, r.cache_write_5m) for r in rows] == [(187, 3000)]


def test_tools_merged_over_the_copies_of_one_response(store: Store, projects: Path) -> None:
    """Rule: a response's parallel tool calls sit on different copies; show them all."""
    (row,) = _by_output(_scan(store, projects), 187)
    assert row.tools == "Read,Grep"


def test_line_without_request_id_dedups_on_message_id(store: Store, projects: Path) -> None:
    """Rule: requestId missing → key on message.id alone (gateways omit it)."""
    rows = [r for r in _scan(store, projects) if r.cache_read == 17500]
    assert [r.output for r in rows] == [77]
    assert rows[0].tools == "Write"


def test_subagent_files_count_and_are_sidechain(store: Store, projects: Path) -> None:
    """Rule: usage under <session>/subagents/ counts, attributed to the parent session."""
    rows = [r for r in _scan(store, projects) if r.model == HAIKU]
    assert sorted((r.output, r.input, r.cache_write_5m, r.cache_read) for r in rows) == [
        (45, 5, 7000, 0),
        (310, 2, 900, 7000),
    ]
    assert all(r.sidechain and r.session_id == SID for r in rows)


def test_progress_echo_is_not_counted(store: Store, projects: Path) -> None:
    """Rule: progress lines repeat subagent messages; only the subagent file counts."""
    rows = _scan(store, projects)
    assert len(_by_output(rows, 45)) == 1
    (projects / SUBAGENT).unlink()  # without the subagent file, the echo must not stand in
    with Store(projects.parent / "fresh.db") as fresh:
        assert _by_output(_scan(fresh, projects), 45) == []


def test_tool_use_result_usage_is_not_counted(store: Store, projects: Path) -> None:
    """Rule: toolUseResult.usage repeats the subagent's last response; never count it."""
    (projects / SUBAGENT).unlink()
    rows = _scan(store, projects)
    assert _by_output(rows, 310) == []


def test_btw_replay_of_a_parent_message_is_dropped(store: Store, projects: Path) -> None:
    """Rule: same message.id, new requestId, sidechain → the primary copy wins."""
    rows = _scan(store, projects)
    replays = [r for r in rows if r.cache_read == 12000 and r.input == 4]
    assert len(replays) == 1 and not replays[0].sidechain
    # the side question's own answer still counts
    assert [(r.output, r.sidechain) for r in _by_output(rows, 95)] == [(95, True)]


def test_btw_replay_read_before_its_primary_is_replaced(store: Store, projects: Path) -> None:
    """Same rule whatever the order the files are read in (a live tail can see any)."""
    tailer = _tailer(store, projects)
    root = _root(projects)
    tailer.ingest(SOURCE, root, projects / BTW)
    first = [r for r in store.events() if r.input == 4]
    assert [r.sidechain for r in first] == [True]
    tailer.ingest(SOURCE, root, projects / MAIN)
    rows = [r for r in store.events() if r.input == 4]
    assert [(r.output, r.sidechain) for r in rows] == [(187, False)]


@pytest.mark.parametrize("order", list(itertools.permutations([MAIN, SUBAGENT, BTW])))
def test_totals_do_not_depend_on_file_order(
    store: Store, projects: Path, order: tuple[str, str, str]
) -> None:
    """A live tail sees files in any order; the winner rules make the result the same."""
    tailer = _tailer(store, projects)
    for name in order:
        tailer.ingest(SOURCE, _root(projects), projects / name)
    assert _totals(list(store.events())) == FIXTURE_TOTALS


def test_history_copied_into_another_file_counts_once(store: Store, projects: Path) -> None:
    """Rule: dedup is global; a forked/resumed session's copy of old responses is free."""
    shutil.copy(projects / MAIN, projects / PROJECT / "0e5c2d7a-fork.jsonl")
    rows = _scan(store, projects)
    assert _totals(rows) == FIXTURE_TOTALS


def test_one_hour_cache_write_is_kept_apart(store: Store, projects: Path) -> None:
    """Rule: cache_creation.ephemeral_1h_input_tokens is a 1h write, priced 2x."""
    (row,) = _by_output(_scan(store, projects), 120)
    assert (row.cache_write_5m, row.cache_write_1h) == (0, 2048)


def test_timestamp_offset_and_spaced_json(store: Store, projects: Path) -> None:
    """Rules: any JSON whitespace is a usage line; any offset is converted to UTC."""
    (row,) = _by_output(_scan(store, projects), 64)
    assert row.timestamp == datetime(2026, 10, 2, 14, 1, 2, 250000, tzinfo=timezone.utc)
    assert (row.input, row.cache_write_5m, row.cache_read) == (3, 500, 17000)


def test_malformed_lines_are_counted_and_skipped(store: Store, projects: Path) -> None:
    report = _tailer(store, projects).scan()
    assert report.malformed == 2
    row = store.file_row(str(projects / MAIN))
    assert row is not None and row.malformed == 2
    # the lines after the broken ones were still read
    assert store.limit_rows()


def test_synthetic_lines_count_no_tokens(store: Store, projects: Path) -> None:
    """Rule: <synthetic> lines are client-made; their junk usage (7 in, 2 out) is dropped."""
    rows = _scan(store, projects)
    assert all(r.model != "<synthetic>" for r in rows)
    assert _totals(rows)[0] == 25


def test_rate_limit_error_becomes_an_observation(store: Store, projects: Path) -> None:
    _scan(store, projects)
    (obs,) = store.limit_rows()
    assert (obs.agent, obs.limit_id, obs.source) == ("claude", "claude", "claude_limit_error")
    assert obs.reached and obs.used_percent == 100.0
    assert obs.window_minutes == 300
    assert obs.resets_at == datetime(2026, 10, 2, 16, 0, tzinfo=timezone.utc)
    assert obs.observed_at == datetime(2026, 10, 2, 14, 6, 10, 500000, tzinfo=timezone.utc)
    assert obs.session_id == SID


def test_project_is_the_real_cwd(store: Store, projects: Path) -> None:
    rows = _scan(store, projects)
    assert {r.project for r in rows} == {"/home/dev/shop-web"}
    assert {r.session_id for r in rows} == {SID}


def test_resume_mid_response_keeps_totals_and_tools(store: Store, projects: Path) -> None:
    """The parser state crosses a restart between two copies of one response."""
    main = projects / MAIN
    lines = main.read_bytes().splitlines(keepends=True)
    main.write_bytes(b"".join(lines[:4]))  # up to the Read copy of msg_A
    _scan(store, projects)
    state = store.file_row(str(main))
    assert state is not None and state.state is not None
    assert state.state["tools"] == ["Read"]
    with open(main, "ab") as handle:
        handle.write(b"".join(lines[4:]))
    rows = _scan(store, projects)
    assert _totals(rows) == FIXTURE_TOTALS
    (row,) = _by_output(rows, 187)
    assert row.tools == "Read,Grep"


def test_partial_last_line_waits_for_its_newline(store: Store, projects: Path) -> None:
    main = projects / MAIN
    data = main.read_bytes()
    cut = data.index(b'"output_tokens":187') + 5
    main.write_bytes(data[:cut])
    _scan(store, projects)
    assert _by_output(list(store.events()), 187) == []
    main.write_bytes(data)  # same inode: the rest is appended
    rows = _scan(store, projects)
    assert _totals(rows) == FIXTURE_TOTALS


# -- parser level -------------------------------------------------------------------------


def test_rank_order_is_ccusage_winner_rule() -> None:
    primary_small = rank_of(sidechain=False, total=1, has_speed=False)
    sidechain_huge = rank_of(sidechain=True, total=10**12, has_speed=True)
    assert primary_small > sidechain_huge
    assert rank_of(sidechain=False, total=101, has_speed=False) > rank_of(
        sidechain=False, total=100, has_speed=True
    )
    assert rank_of(sidechain=False, total=100, has_speed=True) > rank_of(
        sidechain=False, total=100, has_speed=False
    )
    assert rank_of(sidechain=False, total=10**30, has_speed=True) < 2**63  # SQLite INTEGER


_COUNTS = st.one_of(
    st.integers(min_value=0, max_value=MAX_TOKENS),
    st.sampled_from([MAX_TOKENS + 1, -1, 2**70, 1.5, "9", None, True]),
)


@settings(max_examples=300, deadline=None)
@given(
    counts=st.lists(_COUNTS, min_size=5, max_size=5),
    sidechain=st.booleans(),
    speed=st.sampled_from([None, "fast", "standard"]),
    fast_reading=st.booleans(),
)
def test_an_event_rank_is_rank_of_its_counts(
    counts: list[Any], sidechain: bool, speed: str | None, fast_reading: bool
) -> None:
    """The parser computes ``rank_of`` inline (once per usage line): the same integer,
    whatever the counts, on both readings of a line."""
    usage: dict[str, Any] = dict(zip(
        ("input_tokens", "output_tokens", "cache_read_input_tokens"), counts, strict=False
    ))
    usage["cache_creation"] = {
        "ephemeral_5m_input_tokens": counts[3], "ephemeral_1h_input_tokens": counts[4],
    }
    if speed is not None:
        usage["speed"] = speed
    line = _assistant(usage=usage, sidechain=sidechain) + b"\n"
    parser = _parser()
    events = parser.feed_chunk(line)[0] if fast_reading else _events(parser.feed(line[:-1]))
    total = sum(count_of(c) for c in counts)
    assert [e.rank for e in events] == [rank_of(sidechain, total, speed is not None)]


def test_streamed_copies_are_emitted_only_when_they_improve() -> None:
    parser = _parser()
    first = _events(parser.feed(_assistant(out=8)))
    same = _events(parser.feed(_assistant(out=8)))
    final = _events(parser.feed(_assistant(out=164)))
    assert [e.output_tokens for e in first] == [8]
    assert same == []  # nothing new: no store write
    assert [e.output_tokens for e in final] == [164]
    assert first[0].dedup_key == final[0].dedup_key == "claude:msg_1:req_1"
    assert final[0].rank > first[0].rank


def test_a_smaller_copy_with_a_new_tool_resends_the_best_copy() -> None:
    parser = _parser()
    read = [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]
    bash = [{"type": "tool_use", "id": "t2", "name": "Bash", "input": {}}]
    parser.feed(_assistant(out=50, content=read))
    (event,) = _events(parser.feed(_assistant(out=10, content=bash)))
    assert event.output_tokens == 50
    assert event.tools == ("Read", "Bash")


def test_dedup_keys() -> None:
    assert _events(_parser().feed(_assistant(req="")))[0].dedup_key == "claude:msg_1"
    assert _events(_parser().feed(_assistant(req=None)))[0].dedup_key == "claude:msg_1"
    (by_uuid,) = _events(_parser().feed(_assistant(mid=None)))
    assert by_uuid.dedup_key == "claude:uuid:uuid-None-10"
    assert by_uuid.shadow_key is None
    parser = _parser()
    bare = _line(type="assistant", timestamp="2026-10-02T14:00:00Z",
                 message={"usage": {"input_tokens": 1, "output_tokens": 2}})
    keys = [_events(parser.feed(bare))[0].dedup_key for _ in range(2)]
    assert keys[0] != keys[1]  # id-less lines are never deduplicated
    other_file = _parser(path="/p/proj/other.jsonl")
    other_file.feed(b'{"type":"summary"}')
    assert _events(other_file.feed(bare))[0].dedup_key != keys[1]


def test_shadow_key_and_sidechain() -> None:
    (event,) = _events(_parser().feed(_assistant(sidechain=True, req="req_btw")))
    assert event.shadow_key == "msg_1"
    assert event.sidechain


def test_speed_and_service_tier() -> None:
    def one(usage_extra: dict[str, Any]) -> UsageEvent:
        usage = {"input_tokens": 1, "output_tokens": 1, **usage_extra}
        return _events(_parser().feed(_assistant(usage=usage)))[0]

    assert one({"speed": "fast"}).speed == "fast"
    assert one({"service_tier": "priority"}).speed == "priority"
    assert one({"service_tier": "standard"}).speed is None
    standard = one({"speed": "standard"})
    assert standard.speed is None
    assert standard.rank == one({}).rank + 1  # stating speed is ccusage's last tie-break


def test_cache_write_without_split_is_all_5m() -> None:
    usage: dict[str, Any] = {
        "input_tokens": 1, "output_tokens": 1,
        "cache_creation_input_tokens": 700, "cache_read_input_tokens": 5,
    }
    (event,) = _events(_parser().feed(_assistant(usage=usage)))
    assert (event.cache_write_5m_tokens, event.cache_write_1h_tokens) == (700, 0)
    usage["cache_creation"] = {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 500}
    (event,) = _events(_parser().feed(_assistant(usage=usage)))
    assert (event.cache_write_5m_tokens, event.cache_write_1h_tokens) == (200, 500)
    assert event.total_tokens == 1 + 1 + 5 + 700


def test_null_and_junk_counts_are_zero() -> None:
    usage = {"input_tokens": None, "output_tokens": "7", "cache_read_input_tokens": -3,
             "cache_creation_input_tokens": 12.0}
    (event,) = _events(_parser().feed(_assistant(usage=usage)))
    assert event.total_tokens == 12


def test_a_count_too_large_to_be_real_is_junk_and_the_scan_goes_on(
    store: Store, tmp_path: Path
) -> None:
    """10**25 output tokens (which only the stdlib decoder reads) used to overflow
    SQLite's integers and fail the scan at that line, every time it ran."""
    projects = tmp_path / "junk" / "projects"
    (projects / "p").mkdir(parents=True)
    huge = _assistant(mid="msg_huge", req="req_huge",
                      usage={"input_tokens": 5, "output_tokens": 10**25})
    fine = _assistant(mid="msg_fine", req="req_fine", out=7)
    (projects / "p" / "s.jsonl").write_bytes(huge + b"\n" + fine + b"\n")
    report = _tailer(store, projects).scan()
    assert (report.events, report.errors) == (2, [])
    rows = list(store.events())
    assert sorted(r.output for r in rows) == [0, 7]
    assert sum(r.input for r in rows) == 6  # the rest of the junk line still counts


def test_only_assistant_lines_count() -> None:
    parser = _parser()
    usage = {"input_tokens": 9, "output_tokens": 9}
    base = {"timestamp": "2026-10-02T14:00:00Z", "sessionId": "s"}
    progress_shaped = _line(type="progress", message={"id": "m", "usage": usage}, **base)
    user_with_result = _line(
        type="user", message={"role": "user", "content": []},
        toolUseResult={"status": "completed", "totalTokens": 18, "usage": usage}, **base,
    )
    nested_progress = _line(
        type="progress",
        data={"type": "agent_progress", "message": {"type": "assistant",
              "message": {"id": "m2", "usage": usage}, "requestId": "r"}},
        **base,
    )
    for line in (progress_shaped, user_with_result, nested_progress):
        assert parser.feed(line) == []
    # ccusage's own fixtures have no "type" at all; ccusage counts them, so do we
    untyped = _line(message={"id": "m3", "model": SONNET, "usage": usage}, **base)
    assert [e.input_tokens for e in _events(parser.feed(untyped))] == [9]


def test_malformed_lines_raise() -> None:
    parser = _parser()
    good = _assistant()
    with pytest.raises(MalformedLine):
        parser.feed(good[: len(good) // 2])
    with pytest.raises(MalformedLine):
        parser.feed(b'["usage"]')
    with pytest.raises(MalformedLine):
        parser.feed(b"\xff\xfe garbage")
    with pytest.raises(MalformedLine):
        parser.feed(b'{"type":"assistant","message":{"usage":{}}}')  # no timestamp
    with pytest.raises(MalformedLine):
        parser.feed(_assistant(ts="yesterday"))
    with pytest.raises(MalformedLine):
        parser.feed(_assistant(ts="9999-12-31T23:59:59Z"))  # no report could place it
    # a line that cannot be usage is not decoded at all (the speed path): only its shape
    assert parser.feed(b'{"type":"user", this is not checked }') == []
    assert _events(parser.feed(b"  " + good + b"\r")) != []


def test_feed_chunk_equals_feeding_line_by_line() -> None:
    """The tailer's chunk path judges non-usage lines in place; it must give what
    :meth:`ClaudeParser.feed` gives line by line: the same records, the same
    malformed count and the same line numbers (id-less keys carry them)."""
    good = _assistant()
    lines = [
        b'{"type":"user","message":{"content":"no cwd yet"}}',  # before any cwd
        b"",
        b"   ",  # whitespace only: not a line
        b'{"type":"summary","cwd":"/home/dev/late"}',  # the first cwd
        _assistant(mid=None, req=None, out=3, uuid=None),  # keyed by its line number
        b'{"type":"user","message":{"content":"cut sho',  # truncated, no "usage"
        b"  " + _assistant(mid="msg_2", out=5) + b"\r",  # spaces and CRLF
        good[: len(good) // 2],  # truncated usage line
        b'{"type":"user","toolUseResult":{"usage":{"output_tokens":9}}}',
        b"\t",
        _assistant(mid=None, req=None, out=4, uuid=None),
        _assistant(mid="msg_3", out=7, content=[{"type": "tool_use", "name": "Bash"}]),
        b"not json at all",
        _synthetic("You've hit your session limit \u00b7 resets 8:30pm (Asia/Tokyo)"),
        b'{"type":"user","cwd":"/elsewhere"}',
    ]
    data = b"\n".join(lines) + b"\n"
    by_line, by_chunk = _parser(), _parser()
    expected = feed_lines(by_line, data)
    events, observations, bad = by_chunk.feed_chunk(data)
    assert (events, observations, bad) == expected
    assert bad == 3 and len(events) == 4 and len(observations) == 1
    assert by_chunk.state() == by_line.state()
    assert {e.project for e in events} == {"/home/dev/late"}
    assert "claude:line:" in events[0].dedup_key and events[0].dedup_key != events[2].dedup_key


def test_project_is_the_first_cwd_and_session_falls_back_to_the_path() -> None:
    parser = SOURCE.parser(
        Root("claude", Path("/c/projects"), "t"),
        Path("/c/projects/-home-dev-app/sess-9/subagents/agent-1.jsonl"),
        None,
    )
    no_cwd = _line(type="assistant", timestamp="2026-10-02T14:00:00Z",
                   message={"id": "a", "usage": {"input_tokens": 1, "output_tokens": 1}})
    (before,) = _events(parser.feed(no_cwd))
    assert (before.project, before.session_id) == ("-home-dev-app", "sess-9")
    parser.feed(_line(type="user", cwd="/home/dev/app", message={"role": "user"}))
    parser.feed(_line(type="user", cwd="/home/dev/app/sub", message={"role": "user"}))
    (after,) = _events(parser.feed(_assistant(mid="b", cwd="/home/dev/app/sub")))
    assert after.project == "/home/dev/app"  # a later `cd` does not move the session
    assert after.session_id == "sess-1"
    state = parser.state()
    assert json.loads(json.dumps(state)) == state
    resumed = SOURCE.parser(Root("claude", Path("/c/projects"), "t"),
                            Path("/c/projects/-home-dev-app/sess-9/subagents/agent-1.jsonl"),
                            state)
    (again,) = _events(resumed.feed(no_cwd))
    assert again.project == "/home/dev/app"


def test_main_file_session_falls_back_to_the_stem() -> None:
    parser = SOURCE.parser(Root("claude", Path("/c/projects"), "t"),
                           Path("/c/projects/proj/abc.jsonl"), None)
    line = _line(type="assistant", timestamp="2026-10-02T14:00:00Z",
                 message={"id": "a", "usage": {"input_tokens": 1, "output_tokens": 1}})
    (event,) = _events(parser.feed(line))
    assert (event.session_id, event.model, event.project) == ("abc", "unknown", "proj")


# -- limit errors -----------------------------------------------------------------------


def _synthetic(text: str, **extra: Any) -> bytes:
    return _assistant(
        mid="e1", req=None, model="<synthetic>",
        usage={"input_tokens": 0, "output_tokens": 0},
        content=[{"type": "text", "text": text}],
        ts="2026-10-02T14:06:10.500Z", **extra,
    )


def test_quota_limits_weekly() -> None:
    line = _synthetic("You've hit your weekly limit", error="rate_limit",
                      isApiErrorMessage=True,
                      quotaLimits={"status": "rejected", "resetsAt": 1791302400,
                                   "rateLimitType": "seven_day"})
    records = _parser().feed(line)
    assert _events(records) == []
    (obs,) = _limits(records)
    assert (obs.limit_id, obs.window_minutes, obs.reached, obs.used_percent) == (
        "claude", 10080, True, 100.0)
    assert obs.resets_at == datetime(2026, 10, 6, 16, 0, tzinfo=timezone.utc)
    assert obs.session_id == "sess-1"


def test_model_specific_weekly_cap_has_its_own_bucket() -> None:
    line = _synthetic("You've hit your Opus limit", error="rate_limit",
                      quotaLimits={"status": "rejected", "rateLimitType": "seven_day_opus"})
    (obs,) = _limits(_parser().feed(line))
    assert (obs.limit_id, obs.window_minutes) == ("claude_opus", 10080)


def test_old_limit_reached_epoch_text() -> None:
    line = _synthetic("Claude AI usage limit reached|1790956800", isApiErrorMessage=True)
    (obs,) = _limits(_parser().feed(line))
    assert obs.resets_at == datetime(2026, 10, 2, 16, 0, tzinfo=timezone.utc)
    assert obs.window_minutes is None


@pytest.mark.parametrize(
    ("text", "window", "resets"),
    [
        ("You've hit your session limit · resets 6pm (Europe/Berlin)", 300,
         datetime(2026, 10, 2, 16, 0, tzinfo=timezone.utc)),
        # 1:20pm in Kolkata (07:50Z) is already past at 14:06Z: the next day
        ("You've hit your session limit · resets 1:20pm (Asia/Kolkata)", 300,
         datetime(2026, 10, 3, 7, 50, tzinfo=timezone.utc)),
        ("You've hit your weekly limit · resets Oct 5, 9am (America/New_York)", 10080,
         datetime(2026, 10, 5, 13, 0, tzinfo=timezone.utc)),
        ("You've hit your limit · resets Jan 2, 11am (UTC)", None,
         datetime(2027, 1, 2, 11, 0, tzinfo=timezone.utc)),
        ("You've hit your Opus limit · resets Oct 5, 9am (America/New_York)", 10080,
         datetime(2026, 10, 5, 13, 0, tzinfo=timezone.utc)),
        ("You've hit your session limit · resets 6pm", 300, None),  # zone unknown
        ("You've hit your session limit · resets 6pm (Mars/Olympus)", 300, None),
    ],
)
def test_limit_text(text: str, window: int | None, resets: datetime | None) -> None:
    (obs,) = _limits(_parser().feed(_synthetic(text, isApiErrorMessage=True)))
    assert (obs.window_minutes, obs.resets_at) == (window, resets)
    assert obs.limit_id == ("claude_opus" if "Opus" in text else "claude")


def test_other_errors_are_not_limits() -> None:
    parser = _parser()
    assert parser.feed(_synthetic("No response requested.")) == []
    assert parser.feed(_synthetic("API Error: Overloaded", error="overloaded",
                                  isApiErrorMessage=True)) == []
    # a bare rate_limit error is still a wall, of an unknown window
    (obs,) = _limits(parser.feed(_synthetic("API Error: 429", error="rate_limit")))
    assert obs.window_minutes is None and obs.resets_at is None


def test_non_synthetic_error_line_still_counts_its_tokens() -> None:
    line = _assistant(out=5, error="max_output_tokens", isApiErrorMessage=True)
    records = _parser().feed(line)
    assert [e.output_tokens for e in _events(records)] == [5]
    assert _limits(records) == []


# -- statusline stdin ---------------------------------------------------------------------

NOW = datetime(2026, 10, 2, 14, 10, tzinfo=timezone.utc)


def test_statusline_observations_from_fixture() -> None:
    payload = json.loads((FIXTURES / "statusline-stdin.json").read_text())
    five, week = statusline_observations(payload, NOW)
    assert (five.window_minutes, five.used_percent, five.resets_at) == (
        300, 42.5, datetime(2026, 10, 2, 16, 0, tzinfo=timezone.utc))
    assert (week.window_minutes, week.used_percent, week.resets_at) == (
        10080, 73.0, datetime(2026, 10, 6, 16, 0, tzinfo=timezone.utc))
    for obs in (five, week):
        assert (obs.agent, obs.limit_id, obs.source) == ("claude", "claude", "claude_statusline")
        assert obs.observed_at == NOW and not obs.reached
        assert obs.session_id == SID


def test_statusline_absent_windows_are_no_news() -> None:
    assert statusline_observations({"session_id": "s"}, NOW) == []
    assert statusline_observations({"rate_limits": None}, NOW) == []
    (week,) = statusline_observations(
        {"rate_limits": {"seven_day": {"used_percentage": 100, "resets_at": 1791302400}}}, NOW
    )
    assert week.window_minutes == 10080 and week.reached and week.session_id is None
    (early,) = statusline_observations(
        {"rate_limits": {"five_hour": {"used_percentage": None, "resets_at": 1790956800},
                         "seven_day": {"used_percentage": None}}},
        datetime(2026, 10, 2, 14, 10),  # naive: taken as UTC  # noqa: DTZ001
    )
    assert early.used_percent is None and early.window_minutes == 300
    assert early.observed_at == NOW


# -- discovery ----------------------------------------------------------------------------


def test_default_roots(tmp_path: Path) -> None:
    home = tmp_path / "home"
    roots = SOURCE.roots({}, home)
    assert [(r.path, r.account) for r in roots] == [
        (home / ".config" / "claude" / "projects", "~/.config/claude"),
        (home / ".claude" / "projects", "~/.claude"),
    ]
    assert all(r.agent == "claude" for r in roots)
    xdg = tmp_path / "xdg"
    assert SOURCE.roots({"XDG_CONFIG_HOME": str(xdg)}, home)[0].path == xdg / "claude" / "projects"


def test_claude_config_dir_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    team = tmp_path / "team" / "claude"
    env = {"CLAUDE_CONFIG_DIR": f" ~/work-claude , {team}/projects,, ~/work-claude/projects,~"}
    roots = SOURCE.roots(env, home)
    assert [(r.path, r.account) for r in roots] == [
        (home / "work-claude" / "projects", "~/work-claude"),
        (team / "projects", str(team)),
        (home / "projects", "~"),
    ]
    # set but empty: the defaults
    assert len(SOURCE.roots({"CLAUDE_CONFIG_DIR": " , "}, home)) == 2


def test_files_and_wants(projects: Path) -> None:
    root = _root(projects)
    errors: list[OSError] = []
    found = [p.relative_to(projects).as_posix() for p in SOURCE.files(root, errors.append)]
    assert found == [MAIN, BTW, SUBAGENT]
    assert errors == []
    assert SOURCE.wants(root, projects / SUBAGENT)
    assert not SOURCE.wants(root, projects / f"{PROJECT}/{SID}/subagents/agent-b3e9d21.meta.json")
    assert not SOURCE.wants(root, Path("/elsewhere/x.jsonl"))
    assert not SOURCE.whole_file(projects / MAIN)
    assert list(SOURCE.files(Root("claude", projects / "missing", "m"), errors.append)) == []


def test_parse_whole_matches_the_tailer(projects: Path) -> None:
    data = (projects / BTW).read_bytes()
    records = SOURCE.parse_whole(projects / BTW, data)
    assert sorted(e.output_tokens for e in _events(records)) == [95, 187]


def test_replay_rule_finds_primaries_by_their_key_prefix(store: Store, projects: Path) -> None:
    """The store finds a message's primary copies by dedup key, ``claude:<message id>``
    alone or followed by ``:<request id>`` (schema 5). So every key the parser makes
    must start that way, a primary keyed on its message id alone must still hide a
    replay, and a longer message id with the same start must not."""
    _scan(store, projects)
    keyed = store.db.execute(
        "SELECT agent, dedup_key, shadow_key FROM events WHERE shadow_key IS NOT NULL"
    ).fetchall()
    assert keyed, "the fixture has message ids"
    for agent, key, shadow in keyed:
        assert key == f"{agent}:{shadow}" or key.startswith(f"{agent}:{shadow}:"), key

    def put(line: bytes, name: str) -> None:
        store.commit_batch(
            path=f"/logs/{name}.jsonl", agent="claude", root="r", dev=1, ino=1, offset=1,
            size=1, mtime_ns=0, state=None, malformed=0,
            events=_events(_parser(path=f"/logs/{name}.jsonl").feed(line)), observations=[],
            cost_fn=lambda e: 0.0, now_ms=0,
        )

    def stored() -> list[tuple[str, int]]:
        rows = store.db.execute(
            "SELECT dedup_key, sidechain FROM events WHERE dedup_key LIKE 'claude:msg_p%' "
            "ORDER BY dedup_key"
        )
        return [(key, side) for key, side in rows]

    put(_assistant(mid="msg_p10", req="req_9", out=12), "a")
    put(_assistant(mid="msg_p1", req="req_2", out=13, sidechain=True), "b")
    assert stored() == [("claude:msg_p10:req_9", 0), ("claude:msg_p1:req_2", 1)]
    put(_assistant(mid="msg_p1", req=None, out=11), "c")  # its primary, without requestId
    assert stored() == [("claude:msg_p1", 0), ("claude:msg_p10:req_9", 0)]
    put(_assistant(mid="msg_p1", req="req_3", out=14, sidechain=True), "d")
    assert stored() == [("claude:msg_p1", 0), ("claude:msg_p10:req_9", 0)]

"""The Codex source: one test per counting rule, through the real tailer and store.

Fixtures are hand-made rollouts in ``tests/fixtures/codex/home`` (see its README for
what each file encodes and the totals it must give). Every test copies the files it
needs into a temp ``CODEX_HOME`` so it can append to them, truncate or replace them.
"""

from __future__ import annotations

import importlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tokend.errors import MalformedLine
from tokend.models import UsageEvent
from tokend.sources.base import Root
from tokend.sources.codex import SOURCE, CodexParser
from tokend.sources.codex_limits import parse_rate_limits
from tokend.sources.compressed import zstd_module
from tokend.store import Store
from tokend.tail import ScanReport, Tailer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "codex" / "home"
zstd = zstd_module()  # compression.zstd, or backports.zstd before Python 3.14

MAIN = "01a0f6e8-1500-7a11-b222-c333d444e550"  # model switch, re-emit, fill, malformed
RECORDS = "01a0fbd7-8280-7d11-b222-c333d444e550"  # token_usage_record + token_count
SUBAGENT = "01a0f71f-0704-7f11-b222-c333d444e550"  # spawned child, burst replay
FORK = "01a0f755-f200-7b22-b222-c333d444e550"  # user fork, replay with original times
SPAWN_NO_META = "01a100c6-f1f4-7c22-b222-c333d444e550"  # source.subagent only, started_at
COPIED_META = "01a100fd-de80-7d22-b222-c333d444e550"  # foreign session_meta, no turn ids
LEGACY = "0199aaaa"  # Sept 2025: no model, totals only, file renamed
LEGACY_THREAD = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
LIMITS = "0199cccc-1111-7222-8333-444455556666"  # every rate_limits shape


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def fixture(marker: str, sub: str = "sessions") -> Path:
    (path,) = (FIXTURES / sub).rglob(f"rollout-*{marker}*.jsonl")
    return path


def install(home: Path, marker: str, sub: str = "sessions") -> Path:
    """Copy one fixture rollout into ``home`` at the same relative place."""
    source = fixture(marker, sub)
    target = home / source.relative_to(FIXTURES)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def compress(path: Path) -> Path:
    """What Codex does to a rollout untouched for a week: ``<name>.jsonl.zst`` (zstd
    level 3), then the plain file is removed."""
    target = path.with_name(path.name + ".zst")
    target.write_bytes(zstd.compress(path.read_bytes(), level=3))
    path.unlink()
    return target


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "codex-home"


@pytest.fixture
def root(home: Path, tmp_path: Path) -> Root:
    (found,) = SOURCE.roots({"CODEX_HOME": str(home)}, tmp_path)
    return found


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.db")


def scan(store: Store, root: Root) -> None:
    Tailer(store, [(SOURCE, root)], cost_fn=lambda e: None, clock=lambda: 0.0).scan()


def ingest(store: Store, root: Root, path: Path) -> None:
    Tailer(store, [(SOURCE, root)], cost_fn=lambda e: None, clock=lambda: 0.0).ingest(
        SOURCE, root, path
    )


def sums(store: Store) -> dict[str, int]:
    """Token sums in Codex's own terms (input includes cached)."""
    out = {"events": 0, "input": 0, "cached": 0, "output": 0, "reasoning": 0}
    for e in store.events(agent="codex"):
        out["events"] += 1
        out["input"] += e.input + e.cache_read + e.cache_write_5m
        out["cached"] += e.cache_read
        out["output"] += e.output
        out["reasoning"] += e.reasoning
    return out


def dump(store: Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Everything a consumer can see, order-independent: for equality checks."""
    events = store.db.execute(
        "SELECT dedup_key, rank, session_id, project, model, ts, input, output, cache_read, "
        "cache_write_5m, reasoning, tools, speed FROM events ORDER BY dedup_key"
    ).fetchall()
    limits = store.db.execute(
        "SELECT limit_id, window_minutes, used_percent, resets_at, observed_at, reached, "
        "plan_type, session_id FROM limits ORDER BY observed_at, limit_id, window_minutes"
    ).fetchall()
    return events, limits


# -- discovery ---------------------------------------------------------------------------


def test_roots_default_to_dot_codex(tmp_path: Path) -> None:
    (only,) = SOURCE.roots({}, tmp_path)
    assert only == Root("codex", tmp_path / ".codex", "~/.codex")


def test_roots_follow_a_codex_home_list(tmp_path: Path) -> None:
    env = {"CODEX_HOME": f"~/work-codex, {tmp_path / 'other'} ,,~/work-codex"}
    roots = SOURCE.roots(env, tmp_path)
    assert [r.path for r in roots] == [tmp_path / "work-codex", tmp_path / "other"]
    assert roots[0].account == "~/work-codex"


def test_files_are_rollouts_in_sessions_and_archived_sessions(home: Path, root: Root) -> None:
    active = install(home, MAIN)
    archived = install(home, MAIN, "archived_sessions")
    compressed = active.with_name(active.name + ".zst")  # beside its plain copy
    compressed.write_bytes(b"\x28\xb5\x2f\xfd")
    cold = install(home, RECORDS)
    cold_compressed = cold.with_name(cold.name + ".zst")
    cold_compressed.write_bytes(zstd.compress(cold.read_bytes()))
    cold.unlink()
    stray = home / "sessions" / "notes.jsonl"
    stray.write_text("{}\n")
    elsewhere = home / "log" / active.name
    elsewhere.parent.mkdir()
    elsewhere.write_text("{}\n")

    assert sorted(SOURCE.files(root, lambda exc: None)) == sorted(
        [archived, active, cold_compressed]
    )
    assert SOURCE.wants(root, active) and SOURCE.wants(root, archived)
    assert SOURCE.wants(root, cold_compressed) and SOURCE.whole_file(cold_compressed)
    assert not SOURCE.wants(root, compressed)  # its plain copy is read instead
    assert not SOURCE.wants(root, stray)
    assert not SOURCE.wants(root, elsewhere)
    assert not SOURCE.whole_file(active)


# -- counting rules ------------------------------------------------------------------


def test_a_reemitted_token_count_is_not_usage(home: Path, root: Root, store: Store) -> None:
    install(home, MAIN)
    scan(store, root)
    assert sums(store) == {
        "events": 4,
        "input": 42000,
        "cached": 30000,
        "output": 1000,
        "reasoning": 400,
    }
    # The unchanged re-emit at 10:00:05.5 is a rate-limit refresh: it must not even
    # re-stamp the response (same key, so without the rule it would take it over).
    first = next(iter(store.events()))
    assert (first.timestamp, first.tools) == (utc("2026-10-01T10:00:05.010"), "exec_command")


def test_the_model_is_the_latest_turn_context_model(home: Path, root: Root, store: Store) -> None:
    install(home, MAIN)
    scan(store, root)
    assert [e.model for e in store.events()] == [
        "gpt-5.3-codex",
        "gpt-5.3-codex",
        "gpt-5.5",
        "gpt-5.5",
    ]


def test_without_any_model_the_fallback_is_gpt_5(home: Path, root: Root, store: Store) -> None:
    install(home, LEGACY)
    scan(store, root)
    assert {e.model for e in store.events()} == {"gpt-5"}


def test_the_session_is_the_session_meta_id_not_the_file_name(
    home: Path, root: Root, store: Store
) -> None:
    install(home, LEGACY)
    scan(store, root)
    assert {(e.session_id, e.project) for e in store.events()} == {(LEGACY_THREAD, "/home/dev/old")}


def test_without_last_usage_the_delta_of_totals_counts(
    home: Path, root: Root, store: Store
) -> None:
    install(home, LEGACY)
    scan(store, root)
    second = list(store.events())[1]
    # totals 2500/1200/90/10 after 1000/200/50/0
    assert (second.input + second.cache_read, second.cache_read, second.output) == (1500, 1000, 40)
    assert second.reasoning == 10


def test_an_all_zero_fill_to_context_window_event_is_skipped(
    home: Path, root: Root, store: Store
) -> None:
    install(home, MAIN)
    scan(store, root)
    events = list(store.events())
    assert all(e.total > 0 for e in events)
    # The response after the fill still counts, from its own last usage.
    assert (events[-1].timestamp, events[-1].input, events[-1].output) == (
        utc("2026-10-01T10:06:00"),
        5000,
        100,
    )


def test_token_semantics_input_includes_cached_output_includes_reasoning(
    home: Path, root: Root, store: Store
) -> None:
    install(home, MAIN)
    scan(store, root)
    first = next(iter(store.events()))
    # last_token_usage: input 10000 (8000 cached), output 300 (200 reasoning)
    assert (first.input, first.cache_read, first.output, first.reasoning) == (2000, 8000, 300, 200)
    assert first.total == 10300


def test_cache_writes_are_part_of_input_unless_billed_on_top() -> None:
    def event(usage: dict[str, int]) -> UsageEvent:
        parser = CodexParser("t")
        line = {
            "timestamp": "2026-10-01T10:00:00.000Z",
            "type": "event_msg",
            "payload": {
                "type": "token_count",
                "info": {"total_token_usage": usage, "last_token_usage": usage},
            },
        }
        (record,) = parser.feed(json.dumps(line).encode())
        assert isinstance(record, UsageEvent)
        return record

    inside = event(
        {
            "input_tokens": 1000,
            "cached_input_tokens": 600,
            "cache_write_input_tokens": 300,
            "output_tokens": 10,
            "total_tokens": 1010,
        }
    )
    assert (inside.input_tokens, inside.cache_read_tokens, inside.cache_write_5m_tokens) == (
        100,
        600,
        300,
    )
    on_top = event(
        {
            "input_tokens": 1000,
            "cached_input_tokens": 600,
            "cache_write_input_tokens": 300,
            "output_tokens": 10,
            "total_tokens": 1310,
        }
    )
    assert (on_top.input_tokens, on_top.cache_write_5m_tokens) == (400, 300)


def test_count_aliases_junk_and_non_finite_numbers() -> None:
    """Each count takes its first numeric spelling; junk, negatives and the NaN or
    Infinity only the stdlib decoder accepts count as zero instead of failing the scan."""

    def event(usage: str) -> UsageEvent:
        line = (
            '{"timestamp":"2026-10-01T10:00:00.000Z","type":"event_msg","payload":'
            '{"type":"token_count","info":{"last_token_usage":' + usage + "}}}"
        )
        (record,) = CodexParser("t").feed(line.encode())
        assert isinstance(record, UsageEvent)
        return record

    aliased = event('{"prompt_tokens": 50, "cached_tokens": 20, "completion_tokens": 7.9}')
    assert (aliased.input_tokens, aliased.cache_read_tokens, aliased.output_tokens) == (30, 20, 7)
    junk = event('{"input_tokens": NaN, "input": 9, "output_tokens": Infinity, "output": 4,'
                 ' "cached_input_tokens": -3, "reasoning_output_tokens": true,'
                 ' "reasoning_tokens": 3, "cache_write_input_tokens": 100000000000000000000}')
    # a boolean is no number (the alias counts); 10**20 is no real count
    assert (junk.input_tokens, junk.output_tokens, junk.cache_read_tokens) == (0, 0, 0)
    assert (junk.reasoning_tokens, junk.cache_write_5m_tokens) == (0, 0)  # output is 0
    huge = event('{"input_tokens": 100000000000000000000, "output_tokens": 5}')
    assert (huge.input_tokens, huge.output_tokens) == (0, 5)  # no SQLite overflow later


def test_speed_comes_from_the_service_tier(home: Path, root: Root, store: Store) -> None:
    install(home, MAIN)
    scan(store, root)
    speeds = [r[0] for r in store.db.execute("SELECT speed FROM events ORDER BY ts")]
    assert speeds == [None, None, "priority", "priority"]


def test_tools_since_the_previous_response_go_on_the_next(
    home: Path, root: Root, store: Store
) -> None:
    install(home, MAIN)
    scan(store, root)
    assert [e.tools for e in store.events()] == ["exec_command", "apply_patch,local_shell", "", ""]


def test_a_response_counts_once_as_record_and_token_count(
    home: Path, root: Root, store: Store
) -> None:
    install(home, RECORDS)
    scan(store, root)
    # resp_001: record then token_count; resp_002: token_count then record;
    # response 3: token_count only; resp_004: record only.
    assert sums(store) == {
        "events": 4,
        "input": 14000,
        "cached": 11500,
        "output": 280,
        "reasoning": 100,
    }
    rows = store.db.execute("SELECT rank, speed, tools FROM events ORDER BY ts").fetchall()
    # The record of resp_002 replaced its earlier token_count row (higher rank, its
    # service tier), keeping the tools that token_count carried.
    assert rows[1] == (3, "priority", "exec_command")
    assert [r[0] for r in rows] == [3, 3, 1, 3]
    # A record names its own model (attribution), ahead of the turn_context one.
    assert [e.model for e in store.events()][-1] == "gpt-5.3-codex-spark"


def test_a_token_count_naming_its_model_overrides_the_turn_context() -> None:
    parser = CodexParser("t")
    parser.feed(
        b'{"timestamp":"2026-05-13T09:00:00Z","type":"turn_context",'
        b'"payload":{"model":"gpt-5.2-codex"}}'
    )
    usage = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 5}
    line = {
        "timestamp": "2026-05-13T09:01:00Z",
        "type": "event_msg",
        "payload": {
            "type": "token_count",
            "info": {
                "model": "gpt-5.3-codex",
                "total_token_usage": usage,
                "last_token_usage": usage,
            },
        },
    }
    (event,) = parser.feed(json.dumps(line).encode())
    assert isinstance(event, UsageEvent) and event.model == "gpt-5.3-codex"


def test_record_pairing_holds_whichever_comes_first(home: Path, root: Root, store: Store) -> None:
    path = install(home, RECORDS)
    lines = path.read_text().splitlines()
    kinds = [json.loads(line)["type"] for line in lines]
    # Swap every adjacent token_usage_record / token_count pair.
    i = 0
    while i < len(lines) - 1:
        if {kinds[i], kinds[i + 1]} == {"token_usage_record", "event_msg"}:
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
            i += 2
        else:
            i += 1
    path.write_text("\n".join(lines) + "\n")
    scan(store, root)
    assert sums(store)["events"] == 4
    assert sums(store)["input"] == 14000


def test_a_spawned_sub_agent_does_not_count_its_parents_replay(
    home: Path, root: Root, store: Store
) -> None:
    install(home, MAIN)
    install(home, SUBAGENT)
    scan(store, root)
    child = [e for e in store.events() if e.session_id == SUBAGENT]
    # Only the child's own two responses, although its first one is 1.5 s after the
    # replay burst (which itself spans a second boundary).
    assert [(e.input + e.cache_read, e.model) for e in child] == [
        (3000, "gpt-5.4-mini"),
        (4000, "gpt-5.4-mini"),
    ]
    assert [e.tools for e in child] == ["grep_files", ""]
    parent = [e for e in store.events() if e.session_id == MAIN]
    assert len(parent) == 4


def test_replayed_rate_limits_are_stale_and_dropped(home: Path, root: Root, store: Store) -> None:
    install(home, SUBAGENT)
    scan(store, root)
    seen = {(r.observed_at, r.window_minutes, r.used_percent) for r in store.limit_rows()}
    assert seen == {
        (utc("2026-10-01T11:00:02.400"), 300, 18.0),
        (utc("2026-10-01T11:00:02.400"), 10080, 23.0),
        (utc("2026-10-01T11:00:09"), 300, 19.0),
        (utc("2026-10-01T11:00:09"), 10080, 23.0),
    }


def test_a_fork_replay_with_original_timestamps_is_the_baseline_not_usage(
    home: Path, root: Root, store: Store
) -> None:
    install(home, FORK)
    scan(store, root)
    (own,) = store.events()
    # Its only token_count has totals but no last usage: the delta from the replayed
    # parent totals (22000/18000/500/260) is the child's response.
    assert (own.input + own.cache_read, own.cache_read, own.output, own.reasoning) == (
        4000,
        2000,
        80,
        20,
    )
    assert own.session_id == FORK
    assert [r.used_percent for r in store.limit_rows()] == [25.0, 24.0]


@pytest.mark.parametrize(
    "marker",
    [
        {"source": {"subagent": {"thread_spawn": {"parent_thread_id": MAIN, "depth": 1}}}},
        {"forked_from_id": MAIN},
        {"parent_thread_id": MAIN},
        {"thread_source": "subagent"},
    ],
    ids=["source.subagent", "forked_from_id", "parent_thread_id", "thread_source"],
)
def test_a_sub_agent_without_a_copied_parent_header_is_still_a_child(
    home: Path, root: Root, store: Store, marker: dict[str, Any]
) -> None:
    path = install(home, SPAWN_NO_META)
    first, rest = path.read_text().split("\n", 1)
    meta = json.loads(first)
    meta["payload"]["source"] = "cli"
    meta["payload"].update(marker)
    path.write_text(json.dumps(meta) + "\n" + rest)
    scan(store, root)
    # Marked only in its own header; its turn ids are not UUIDv7, so its own turn is
    # told apart by task_started.started_at (the copied parent turns keep theirs).
    assert [(e.input + e.cache_read, e.model) for e in store.events()] == [(1500, "gpt-5.4-mini")]
    assert [r.used_percent for r in store.limit_rows()] == [40.0, 41.0]


def test_a_copied_foreign_session_meta_starts_a_replay_that_time_ends(
    home: Path, root: Root, store: Store
) -> None:
    install(home, COPIED_META)
    scan(store, root)
    # No marker on its own header, no turn ids: the copied header starts the replay and
    # the first token_count well after the creation burst ends it.
    assert [(e.input + e.cache_read, e.model) for e in store.events()] == [(2000, "gpt-5.4-mini")]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "archived-compressed"])
def test_an_archived_copy_counts_once_and_the_active_copy_wins(
    home: Path, root: Root, store: Store, compressed: bool
) -> None:
    active = install(home, MAIN)
    archived = install(home, MAIN, "archived_sessions")
    if compressed:
        archived = compress(archived)
    ingest(store, root, active)
    ingest(store, root, archived)  # written last, yet must not take over
    assert sums(store)["events"] == 4
    assert sums(store)["input"] == 42000
    paths = {
        r[0]
        for r in store.db.execute(
            "SELECT files.path FROM events JOIN files ON files.id = events.file_id"
        )
    }
    assert paths == {str(active)}


def test_reading_in_two_parts_resumes_exactly(home: Path, root: Root, tmp_path: Path) -> None:
    """Every split point of every rollout gives the same rows as one read."""
    for marker in (MAIN, RECORDS, SUBAGENT, FORK, SPAWN_NO_META, COPIED_META, LEGACY, LIMITS):
        whole_home = tmp_path / f"whole-{marker}"
        whole_root = Root("codex", whole_home, "whole")
        install(whole_home, marker)
        expected_store = Store(tmp_path / f"whole-{marker}.db")
        scan(expected_store, whole_root)
        expected = dump(expected_store)
        data = fixture(marker).read_bytes()
        cuts = [i + 1 for i, b in enumerate(data) if b == ord("\n")][:-1]
        cuts += [len(data) // 2]  # one cut inside a line: a partial last line waits
        store = Store(tmp_path / f"split-{marker}.db")
        for cut in cuts:
            with store.db:  # a fresh store for each cut, without paying for a new file
                store.db.executescript("DELETE FROM events; DELETE FROM limits; DELETE FROM files;")
            path = install(home, marker)
            path.write_bytes(data[:cut])
            scan(store, root)
            with path.open("ab") as handle:
                handle.write(data[cut:])
            scan(store, root)
            assert dump(store) == expected, (marker, cut)
            path.unlink()
        store.close()


def test_rereading_a_truncated_or_replaced_file_is_idempotent(
    home: Path, root: Root, store: Store
) -> None:
    path = install(home, RECORDS)
    scan(store, root)
    once = dump(store)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # shrank: read again from 0
    scan(store, root)
    path.write_bytes(data)
    scan(store, root)
    replacement = path.with_suffix(".tmp")
    replacement.write_bytes(data)
    replacement.replace(path)  # new inode: read again from 0
    scan(store, root)
    assert dump(store) == once


def test_a_malformed_line_is_counted_and_skipped(home: Path, root: Root, store: Store) -> None:
    install(home, MAIN)
    scan(store, root)
    assert store.counts()["malformed"] == 1
    with pytest.raises(MalformedLine):
        CodexParser("t").feed(b'{"timestamp":"2026-10-01T10:05:00.000Z","type":"event_msg"')


# -- compressed rollouts (Codex's opt-in cold storage) ------------------------------


def scan_report(store: Store, root: Root) -> ScanReport:
    return Tailer(store, [(SOURCE, root)], cost_fn=lambda e: None, clock=lambda: 0.0).scan()


MARKERS = (MAIN, RECORDS, SUBAGENT, FORK, LIMITS)


def test_a_compressed_rollout_counts_exactly_as_its_plain_copy(
    root: Root, tmp_path: Path
) -> None:
    plain_home = tmp_path / "plain"
    plain_store = Store(tmp_path / "plain.db")
    for marker in MARKERS:
        install(plain_home, marker)
    scan(plain_store, Root("codex", plain_home, "plain"))

    home = root.path
    store = Store(tmp_path / "compressed.db")
    for marker in MARKERS:
        compress(install(home, marker))
    report = scan_report(store, root)

    assert report.errors == []
    assert report.files == report.files_read == len(MARKERS)
    assert dump(store) == dump(plain_store)  # events, limits: same keys, counts, times
    assert dump(store)[0] and dump(store)[1]
    assert store.counts()["malformed"] == plain_store.counts()["malformed"] == 1
    # Read once: nothing to do on the next scan.
    again = scan_report(store, root)
    assert (again.files, again.files_read, again.events) == (len(MARKERS), 0, 0)


def test_a_rollout_compressed_after_it_was_read_is_not_counted_twice(
    home: Path, root: Root, store: Store
) -> None:
    path = install(home, RECORDS)
    scan(store, root)
    before = dump(store)
    compress(path)
    report = scan_report(store, root)
    assert report.files_read == 1 and report.errors == []
    assert dump(store) == before


def test_beside_its_plain_copy_a_compressed_rollout_is_not_read(
    home: Path, root: Root, store: Store
) -> None:
    path = install(home, MAIN)
    compressed = path.with_name(path.name + ".zst")
    compressed.write_bytes(zstd.compress(path.read_bytes() + b"{not even json\n"))
    scan(store, root)
    assert sums(store)["events"] == 4
    assert store.counts()["malformed"] == 1  # the plain file's one bad line, not two
    paths = {r[0] for r in store.db.execute("SELECT path FROM files")}
    assert paths == {str(path)}


def test_a_cut_or_foreign_compressed_file_is_reported_and_the_rest_counted(
    home: Path, root: Root, store: Store
) -> None:
    good = install(home, MAIN)
    cut = compress(install(home, RECORDS))
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])  # a crash while Codex compressed it
    foreign = compress(install(home, FORK))
    foreign.write_bytes(b"plain text, not zstd\n")

    report = scan_report(store, root)
    assert sorted(e.split(": not a complete zstd file (")[0] for e in report.errors) == sorted(
        f"cannot read {p}" for p in (cut, foreign)
    )
    assert sums(store)["events"] == 4  # the good rollout
    assert str(good) in {r[0] for r in store.db.execute("SELECT path FROM files")}

    cut.write_bytes(whole)  # written again in full: read on the next scan
    report = scan_report(store, root)
    assert len(report.errors) == 1
    assert sums(store)["events"] > 4


def test_without_a_zstd_module_the_file_is_reported_with_the_fix(
    home: Path, root: Root, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = compress(install(home, RECORDS))
    real_import = importlib.import_module

    def no_zstd(name: str, package: str | None = None) -> Any:
        if name.endswith("zstd"):
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_zstd)
    report = scan_report(store, root)
    assert report.errors == [
        f"cannot read {cold}: reading {cold.name} needs zstd support: "
        "pip install backports.zstd"
    ]
    assert sums(store)["events"] == 0


# -- rate limits ---------------------------------------------------------------------


def test_every_rate_limits_shape_becomes_observations(home: Path, root: Root, store: Store) -> None:
    install(home, LIMITS)
    scan(store, root)
    rows = [
        (
            r.observed_at,
            r.limit_id,
            r.window_minutes,
            r.used_percent,
            r.resets_at,
            r.reached,
            r.plan_type,
            r.source,
        )
        for r in store.limit_rows()
    ]
    src = "codex_rate_limits"
    assert rows == [
        # flat v0.3x fields: no reset
        (utc("2025-09-20T10:00"), "codex", 300, 12.0, None, False, None, src),
        (utc("2025-09-20T10:00"), "codex", 10080, 30.0, None, False, None, src),
        # resets_in_seconds, relative to the line's timestamp
        (utc("2025-10-12T10:00"), "codex", 300, 5.0, utc("2025-10-12T10:10"), False, None, src),
        (utc("2025-10-12T10:00"), "codex", 10080, 50.0, utc("2025-10-13T10:00"), False, None, src),
        # weekly in the primary slot, secondary null
        (
            utc("2026-09-15T11:00"),
            "codex",
            10080,
            69.0,
            utc("2026-09-19T22:15"),
            False,
            "prolite",
            src,
        ),
        # a model-specific bucket stays apart
        (
            utc("2026-09-15T11:00:05"),
            "codex_bengalfox",
            10080,
            0.0,
            utc("2026-09-20T02:06:40"),
            False,
            "pro",
            src,
        ),
        # rate_limits null (11:00:09): nothing. Wall hit: the full window is reached.
        (utc("2026-09-15T12:00"), "codex", 300, 100.0, utc("2026-09-20T00:00"), True, "plus", src),
        (
            utc("2026-09-15T12:00"),
            "codex",
            10080,
            60.0,
            utc("2026-09-19T22:15"),
            False,
            "plus",
            src,
        ),
    ]
    assert {r.session_id for r in store.limit_rows()} == {LIMITS}


def test_junk_rate_limit_numbers_are_not_news_and_do_not_fail_the_scan() -> None:
    at = utc("2026-10-01T10:00:00Z")
    (primary,) = parse_rate_limits(
        {
            "primary": {"used_percent": 12.0, "window_minutes": 1e30, "resets_at": 1e300},
            "secondary": {"used_percent": float("nan"), "window_minutes": 10080},
        },
        at,
    )
    assert (primary.used_percent, primary.window_minutes, primary.resets_at) == (12.0, None, None)
    (flat,) = parse_rate_limits(
        {"primary_used_percent": 10**400, "secondary_used_percent": 40,
         "secondary_window_minutes": 10080, "secondary_resets_in_seconds": float("inf")},
        at,
    )
    assert (flat.used_percent, flat.window_minutes, flat.resets_at) == (40.0, 10080, None)
    (far,) = parse_rate_limits(
        {"primary": {"used_percent": 5.0, "window_minutes": 300, "resets_at": 253402300799}}, at
    )
    assert far.resets_at is None  # year 9999: no plausible reset time


def test_rate_limits_null_is_no_news() -> None:
    at = utc("2026-10-01T10:00")
    assert parse_rate_limits(None, at) == []
    assert parse_rate_limits({"primary": None, "secondary": None}, at) == []
    (hit,) = parse_rate_limits({"rate_limit_reached_type": "rate_limit_reached"}, at)
    assert hit.reached and hit.window_minutes is None and hit.used_percent is None


def test_parser_state_is_json_and_resumes_mid_pair() -> None:
    lines = fixture(RECORDS).read_bytes().splitlines()
    split = next(i for i, line in enumerate(lines) if b'"resp_002"' in line)
    first = CodexParser("x")
    before = [r for line in lines[:split] for r in first.feed(line)]
    state = json.loads(json.dumps(first.state()))
    second = CodexParser("x", state=state)
    after = [r for line in lines[split:] for r in second.feed(line)]
    keys = [r.dedup_key for r in before + after if isinstance(r, UsageEvent)]
    # resp_002's record reuses the key of the token_count read before the restart.
    assert len(keys) == 5 and len(set(keys)) == 4

"""Gemini CLI source: every counting rule, through the real tailer and store.

The fixture tree (tests/fixtures/gemini/README.md lists what each file encodes) is
copied to a temp home, read by :class:`~tokend.tail.Tailer` into a real
:class:`~tokend.store.Store`, and the totals come back from ``store.events()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tokend.errors import MalformedLine
from tokend.models import UsageEvent, utc_from_iso, utc_ms
from tokend.sources.base import Root, Source
from tokend.sources.gemini import SOURCE, GeminiSource
from tokend.store import EventRow, Store
from tokend.tail import Tailer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"

SESSION_A = "a1b2c3d4-1111-4a4a-8b8b-000000000001"
SUBAGENT = "5d6e7f80-2222-4b4b-9c9c-000000000002"
SESSION_B = "77e0f1a2-3333-4c4c-8d8d-000000000003"
BILLING = "/work/demo/billing-svc"
LEGACY = "/work/demo/legacy-tool"

A_FILE = "tmp/billing-svc/chats/session-2026-10-05T08-00-a1b2c3d4.jsonl"
SUB_FILE = f"tmp/billing-svc/chats/{SESSION_A}/{SUBAGENT}.jsonl"
B_JSON = "tmp/legacy-tool/chats/session-2026-03-10T09-30-77e0f1a2.json"
B_JSONL = "tmp/legacy-tool/chats/session-2026-03-10T09-30-77e0f1a2.jsonl"
HASH_DIR = hashlib.sha256(LEGACY.encode()).hexdigest()
H_FILE = f"tmp/{HASH_DIR}/chats/session-2026-01-20T16-45-0a0b0c0d.json"


@dataclass(frozen=True)
class Totals:
    events: int
    input: int
    cache_read: int
    output: int
    reasoning: int


def totals(rows: list[EventRow]) -> Totals:
    return Totals(
        events=len(rows),
        input=sum(r.input for r in rows),
        cache_read=sum(r.cache_read for r in rows),
        output=sum(r.output for r in rows),
        reasoning=sum(r.reasoning for r in rows),
    )


A_TOTALS = Totals(5, 6550, 19800, 1460, 350)
SUB_TOTALS = Totals(1, 1500, 500, 190, 40)
B_TOTALS = Totals(3, 4300, 6300, 990, 150)
H_TOTALS = Totals(1, 1000, 0, 100, 0)
ALL_TOTALS = Totals(10, 13350, 26600, 2740, 540)


# -- helpers ---------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fake user home holding a copy of the fixture ``~/.gemini``."""
    user = tmp_path / "home"
    shutil.copytree(FIXTURES / "gemini-home", user / ".gemini")
    return user


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db") as s:
        yield s


def gemini(home: Path) -> Path:
    return home / ".gemini"


def tailer(store: Store, home: Path) -> Tailer:
    return Tailer(store, [(SOURCE, r) for r in SOURCE.roots({}, home)], cost_fn=lambda e: None)


def scan(store: Store, home: Path) -> list[EventRow]:
    tailer(store, home).scan()
    return list(store.events(agent="gemini"))


def ingest(store: Store, home: Path, rel: str) -> None:
    root = SOURCE.roots({}, home)[0]
    result = tailer(store, home).ingest(SOURCE, root, root.path / rel)
    assert result.error is None


def at(rows: list[EventRow], iso: str) -> EventRow:
    """The one stored event of the message written at ``iso``."""
    hits = [r for r in rows if r.ts_ms == utc_ms(utc_from_iso(iso))]
    assert len(hits) == 1, hits
    return hits[0]


def only(home: Path, *keep: str) -> None:
    """Delete every chat file but ``keep`` so a test sees one scenario."""
    root = gemini(home)
    for path in SOURCE.files(Root("gemini", root, "t"), lambda e: None):
        if path.relative_to(root).as_posix() not in keep:
            path.unlink()


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def tokens(i: int, o: int, c: int = 0, t: int = 0, tool: int = 0) -> dict[str, int]:
    total = i + o + t + tool
    return {"input": i, "output": o, "cached": c, "thoughts": t, "tool": tool, "total": total}


def meta(session: str = "s-1") -> dict[str, str]:
    return {"sessionId": session, "projectHash": "h", "startTime": "2026-10-01T00:00:00Z"}


def reply(
    mid: str, tok: object, ts: str = "2026-10-01T00:00:01Z", **extra: object
) -> dict[str, object]:
    return {"id": mid, "timestamp": ts, "type": "gemini", "content": "", "tokens": tok, **extra}


def write_chat(home: Path, name: str, data: bytes, project: str = "proj") -> Path:
    path = gemini(home) / "tmp" / project / "chats" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- the whole fixture -----------------------------------------------------------------


def test_the_fixture_totals(home: Path, store: Store) -> None:
    rows = scan(store, home)
    assert totals(rows) == ALL_TOTALS
    assert totals([r for r in rows if r.session_id == SESSION_A and not r.sidechain]) == A_TOTALS
    assert totals([r for r in rows if r.sidechain]) == SUB_TOTALS
    assert totals([r for r in rows if r.session_id == SESSION_B]) == B_TOTALS
    old = [r for r in rows if r.project == LEGACY and r.session_id != SESSION_B]
    assert totals(old) == H_TOTALS


def test_a_second_scan_and_a_full_reread_change_nothing(home: Path, store: Store) -> None:
    first = totals(scan(store, home))
    assert totals(scan(store, home)) == first
    # An atomic replace (new inode) makes the tailer read the file again from 0.
    path = gemini(home) / A_FILE
    copy = path.with_suffix(".tmp")
    shutil.copy2(path, copy)
    copy.replace(path)
    assert totals(scan(store, home)) == first == ALL_TOTALS


# -- one test per counting rule ------------------------------------------------------------


def test_last_record_per_message_id_wins_once(home: Path, store: Store) -> None:
    """m1 is appended twice (tool running, tool done): one response, counted once."""
    only(home, A_FILE)
    rows = scan(store, home)
    m1 = at(rows, "2026-10-05T08:00:09Z")
    assert (m1.input, m1.cache_read, m1.output) == (2000, 3000, 320)
    assert m1.tools == "read_file"
    assert totals(rows) == A_TOTALS


def test_a_tokens_null_copy_counts_nothing_and_the_tokens_copy_counts(
    home: Path, store: Store
) -> None:
    only(home, A_FILE)
    m2 = at(scan(store, home), "2026-10-05T08:00:20Z")
    assert (m2.input, m2.cache_read, m2.output, m2.reasoning) == (1300, 4800, 430, 90)


def test_a_tokens_null_copy_after_the_tokens_cannot_erase_them(
    home: Path, store: Store
) -> None:
    shutil.rmtree(gemini(home) / "tmp")
    write_chat(home, "session-x.jsonl", jsonl(meta(), reply("r1", tokens(100, 10))))
    scan(store, home)
    path = gemini(home) / "tmp/proj/chats/session-x.jsonl"
    with path.open("ab") as f:
        f.write(jsonl(reply("r1", None)))
    assert totals(scan(store, home)) == Totals(1, 100, 0, 10, 0)
    assert SOURCE.parser(SOURCE.roots({}, home)[0], path, None).feed(
        json.dumps(reply("r1", None)).encode()
    ) == []


def test_input_excludes_cached_and_output_includes_thoughts(home: Path, store: Store) -> None:
    only(home, A_FILE)
    m4 = at(scan(store, home), "2026-10-05T08:01:40Z")
    # tokens: input 7200 (of which cached 6000), output 400, thoughts 60
    assert m4.input == 1200
    assert m4.cache_read == 6000
    assert m4.output == 460
    assert m4.reasoning == 60
    assert m4.total == 7660  # Gemini's totalTokenCount


def test_tool_use_prompt_tokens_are_input(home: Path, store: Store) -> None:
    only(home, A_FILE)
    m3 = at(scan(store, home), "2026-10-05T08:01:00Z")
    # tokens: input 7000 (cached 6000), tool 250, output 50
    assert (m3.input, m3.cache_read, m3.output) == (1250, 6000, 50)
    assert m3.total == 7300
    assert m3.model == "gemini-2.5-flash"
    assert m3.tools == "run_shell_command,glob"


def test_a_rewind_does_not_unspend_tokens(home: Path, store: Store) -> None:
    """m3 is rewound right after it was written; it was billed all the same."""
    only(home, A_FILE)
    rows = scan(store, home)
    at(rows, "2026-10-05T08:01:00Z")
    assert totals(rows).events == 5


def test_a_checkpoint_upserts_its_messages(home: Path, store: Store) -> None:
    """The checkpoint repeats m1 m2 m4 (no second count) and holds m5 (counted)."""
    only(home, A_FILE)
    rows = scan(store, home)
    m5 = at(rows, "2026-10-05T08:02:10Z")
    assert (m5.input, m5.output) == (800, 200)
    assert totals(rows) == A_TOTALS


def test_only_gemini_responses_with_tokens_are_events(home: Path, store: Store) -> None:
    shutil.rmtree(gemini(home) / "tmp")
    write_chat(home, "session-x.jsonl", jsonl(
        meta(),
        {"id": "u", "timestamp": "2026-10-01T00:00:01Z", "type": "user", "tokens": tokens(5, 5)},
        {"id": "i", "timestamp": "2026-10-01T00:00:02Z", "type": "info", "tokens": tokens(7, 7)},
        reply("z", tokens(0, 0)),
        reply("n", None),
        reply("g", tokens(40, 4)),
    ))
    assert totals(scan(store, home)) == Totals(1, 40, 0, 4, 0)


def test_a_resumed_legacy_session_counts_once_across_json_and_jsonl(
    home: Path, store: Store
) -> None:
    only(home, B_JSON, B_JSONL)
    rows = scan(store, home)
    assert totals(rows) == B_TOTALS
    assert {r.session_id for r in rows} == {SESSION_B}


@pytest.mark.parametrize("first", [B_JSON, B_JSONL])
def test_a_set_with_another_session_id_does_not_rekey_messages(
    home: Path, store: Store, first: str
) -> None:
    """After ``$set.sessionId`` the checkpoint repeats l1 l2 l3: same keys as before."""
    only(home, B_JSON, B_JSONL)
    ingest(store, home, first)
    ingest(store, home, B_JSONL if first == B_JSON else B_JSON)
    rows = list(store.events())
    assert totals(rows) == B_TOTALS
    assert at(rows, "2026-10-06T14:00:18Z").session_id == SESSION_B


def test_the_larger_copy_wins_whatever_the_read_order(tmp_path: Path) -> None:
    """A smaller copy of a message (a damaged file) never shadows the full one."""
    results = []
    for order in ("json-first", "jsonl-first"):
        user = tmp_path / order
        doc = {**meta("s-9"), "messages": [reply("r", tokens(900, 90, 300))]}
        write_chat(user, "session-s.json", json.dumps(doc).encode())
        write_chat(user, "session-s.jsonl", jsonl(meta("s-9"), reply("r", tokens(500, 50))))
        names = ["session-s.json", "session-s.jsonl"]
        with Store(tmp_path / f"{order}.db") as s:
            for name in names if order == "json-first" else names[::-1]:
                ingest(s, user, f"tmp/proj/chats/{name}")
            results.append(totals(list(s.events())))
    assert results[0] == results[1] == Totals(1, 600, 300, 90, 0)


def test_a_stray_byte_in_the_text_does_not_lose_the_message(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 read as U+FFFD (as Node reads them), in a line log and
    in a legacy whole-file session alike: the message's tokens still count."""
    user = tmp_path / "u"
    line = jsonl(meta("s-7"), reply("r", tokens(500, 50), content="ok"))
    write_chat(user, "session-a.jsonl", line.replace(b'"ok"', b'"o\xffk"'))
    doc = json.dumps({**meta("s-8"), "messages": [reply("q", tokens(70, 7), content="ok")]})
    write_chat(user, "session-b.json", doc.encode().replace(b'"ok"', b'"o\xffk"'))
    with Store(tmp_path / "s.db") as s:
        for name in ("session-a.jsonl", "session-b.json"):
            ingest(s, user, f"tmp/proj/chats/{name}")
        assert s.counts()["malformed"] == 0
        assert totals(list(s.events())) == Totals(2, 570, 0, 57, 0)


def test_a_subagent_file_counts_under_its_parent_session(home: Path, store: Store) -> None:
    only(home, SUB_FILE)
    rows = scan(store, home)
    assert totals(rows) == SUB_TOTALS
    s1 = rows[0]
    assert s1.session_id == SESSION_A
    assert s1.sidechain
    assert s1.project == BILLING
    assert s1.tools == "grep_search"


def test_a_malformed_line_is_counted_and_skipped(home: Path, store: Store) -> None:
    only(home, A_FILE)
    rows = scan(store, home)
    assert store.counts()["malformed"] == 1
    assert totals(rows) == A_TOTALS  # the lines after it still count


def test_a_truncated_legacy_json_is_retried_on_the_next_change(
    home: Path, store: Store
) -> None:
    only(home)
    path = gemini(home) / B_JSON
    shutil.copyfile(FIXTURES / "extra" / "legacy-truncated.json", path)
    assert scan(store, home) == []
    with pytest.raises(MalformedLine):
        SOURCE.parse_whole(path, path.read_bytes())
    shutil.copyfile(FIXTURES / "extra" / "legacy-grown.json", path)
    assert totals(scan(store, home)) == B_TOTALS


def test_a_legacy_json_rewritten_with_one_more_message_adds_only_it(
    home: Path, store: Store
) -> None:
    only(home, B_JSON)
    first = totals(scan(store, home))
    assert first == Totals(2, 3600, 2900, 460, 120)
    path = gemini(home) / B_JSON
    shutil.copyfile(FIXTURES / "extra" / "legacy-grown.json", path)
    bump_mtime(path)
    assert totals(scan(store, home)) == B_TOTALS


@pytest.mark.parametrize("rel", [A_FILE, B_JSONL, SUB_FILE])
def test_appending_in_two_halves_equals_one_read(
    home: Path, tmp_path: Path, rel: str
) -> None:
    only(home, rel)
    path = gemini(home) / rel
    data = path.read_bytes()
    with Store(tmp_path / "whole.db") as whole:
        expected = totals(scan(whole, home))
    assert expected.events
    # Cut inside the second line holding a re-appended message id, mid-line, so
    # the second read needs the first read's session id from the saved state.
    second = data.index(b'"id"', data.index(b"\n", data.index(b'"type":"gemini"')))
    cut = second + 5
    path.write_bytes(data[:cut])
    with Store(tmp_path / "halves.db") as halves:
        scan(halves, home)
        with path.open("ab") as f:
            f.write(data[cut:])
        assert totals(scan(halves, home)) == expected


def test_the_model_falls_back_to_the_last_one_named(home: Path, store: Store) -> None:
    shutil.rmtree(gemini(home) / "tmp")
    write_chat(home, "session-x.jsonl", jsonl(
        meta(),
        reply("a", tokens(10, 1), model="gemini-2.5-flash"),
        reply("b", tokens(20, 2), ts="2026-10-01T00:00:02Z"),
    ))
    rows = scan(store, home)
    assert [r.model for r in rows] == ["gemini-2.5-flash", "gemini-2.5-flash"]


# -- where files are and what they belong to ----------------------------------------------


def test_projects_resolve_from_marker_registry_and_hash(home: Path, store: Store) -> None:
    write_chat(home, "session-x.jsonl", jsonl(meta("s-x"), reply("r", tokens(1, 1))), "orphan")
    write_chat(home, "session-m.jsonl", jsonl(meta("s-m"), reply("r", tokens(1, 1))), "scratch")
    (gemini(home) / "tmp" / "scratch" / ".project_root").write_text("/work/demo/scratch\n")
    rows = scan(store, home)
    projects = {r.session_id: r.project for r in rows}
    assert projects["s-m"] == "/work/demo/scratch"  # .project_root marker, not in projects.json
    assert projects[SESSION_A] == BILLING  # marker and registry agree
    assert projects[SESSION_B] == LEGACY  # projects.json slug
    assert projects["0a0b0c0d-4444-4d4d-8e8e-000000000004"] == LEGACY  # sha256 folder
    assert projects["s-x"] == "orphan"  # nothing known: the folder name


def test_a_record_project_hash_resolves_an_unknown_folder(home: Path, store: Store) -> None:
    shutil.rmtree(gemini(home) / "tmp")
    digest = hashlib.sha256(BILLING.encode()).hexdigest()
    record = {**meta("s-h"), "projectHash": digest}
    write_chat(home, "session-h.jsonl", jsonl(record, reply("r", tokens(1, 1))), "renamed")
    assert scan(store, home)[0].project == BILLING


def test_roots_follow_gemini_cli_home(tmp_path: Path) -> None:
    default = SOURCE.roots({}, tmp_path / "u")
    assert [r.path for r in default] == [tmp_path / "u" / ".gemini"]
    assert default[0].agent == "gemini"
    moved = SOURCE.roots({"GEMINI_CLI_HOME": str(tmp_path / "g")}, tmp_path / "u")
    assert [r.path for r in moved] == [tmp_path / "g" / ".gemini"]
    assert SOURCE.roots({"GEMINI_CLI_HOME": ""}, tmp_path / "u")[0].path == default[0].path


def test_files_are_the_chats_only(home: Path) -> None:
    root = SOURCE.roots({}, home)[0]
    found = [p.relative_to(root.path).as_posix() for p in SOURCE.files(root, lambda e: None)]
    assert sorted(found) == sorted([A_FILE, SUB_FILE, B_JSON, B_JSONL, H_FILE])
    again = [p.relative_to(root.path).as_posix() for p in SOURCE.files(root, lambda e: None)]
    assert again == found  # a stable order
    chats = root.path / "tmp" / "billing-svc" / "chats"
    assert SOURCE.wants(root, chats / "session-2026-10-05T08-00-a1b2c3d4.jsonl")
    assert not SOURCE.wants(root, chats / "session-2026-10-05T08-00-a1b2c3d4.meta.json")
    assert not SOURCE.wants(root, chats / "session-x.jsonl.unreadable-1789")
    assert not SOURCE.wants(root, chats / "session-x.jsonl.tmp")
    assert not SOURCE.wants(root, chats / "notes.json")
    assert not SOURCE.wants(root, root.path / "tmp" / "billing-svc" / "logs.json")
    assert not SOURCE.wants(root, root.path / "settings.json")
    assert not SOURCE.wants(root, chats / "a" / "b" / "c.jsonl")
    assert SOURCE.whole_file(root.path / B_JSON)
    assert not SOURCE.whole_file(root.path / B_JSONL)


def test_a_missing_root_yields_no_files(tmp_path: Path) -> None:
    root = SOURCE.roots({}, tmp_path)[0]
    assert list(SOURCE.files(root, lambda e: None)) == []


def test_an_unreadable_tmp_goes_to_on_error(tmp_path: Path) -> None:
    root = SOURCE.roots({}, tmp_path)[0]
    root.path.mkdir()
    (root.path / "tmp").write_text("not a folder")
    errors: list[OSError] = []
    assert list(SOURCE.files(root, errors.append)) == []
    assert len(errors) == 1


def test_the_parser_state_round_trips_through_json(home: Path) -> None:
    root = SOURCE.roots({}, home)[0]
    path = root.path / A_FILE
    parser = SOURCE.parser(root, path, None)
    lines = path.read_bytes().splitlines()
    parser.feed(lines[0])
    state = json.loads(json.dumps(parser.state()))
    resumed = SOURCE.parser(root, path, state)
    (event,) = resumed.feed(lines[3])
    assert isinstance(event, UsageEvent)
    assert event.dedup_key == f"gemini:{SESSION_A}:m1-0000-0000-0000-000000000001"


def test_the_source_satisfies_the_protocol() -> None:
    source: Source = GeminiSource()
    assert source.agent == "gemini"

"""Codex CLI rollouts (``$CODEX_HOME/{sessions,archived_sessions}/**/rollout-*.jsonl[.zst]``).

A rollout is one thread's JSONL log: ``{"timestamp", "ordinal"?, "type", "payload"}`` per
line. Usage comes from two kinds of line, limits from one:

- ``event_msg`` / ``token_count``: ``info.total_token_usage`` (cumulative for the thread)
  and ``info.last_token_usage`` (the latest response), plus ``rate_limits``;
- ``token_usage_record`` (2026 rollouts): one completed response, with ``response_id``
  and the model in ``attribution``.

The rules, and why (reference/log-formats.md B.7-B.10):

1. **Re-emits are not usage.** Codex writes the same ``token_count`` again on every
   rate-limit refresh, so one counts only when ``total_token_usage`` differs from the
   previous one in the file. Its usage is ``last_token_usage``, else the difference of
   the totals (a total that went down is a restarted counter: the total itself is the
   usage). Events whose input, cached, output, reasoning and cache-write counts are all
   zero (``fill_to_context_window``) are skipped; their totals still become the baseline.
2. **A response counts once whether it shows as a token_usage_record, a token_count or
   both, in either order.** Both carry the response's usage (record ``usage`` ==
   token_count ``last_token_usage``; ``total_tokens`` aside, a writer may omit it). The
   parser keeps the last few unpaired ones of each kind: a token_count matching an earlier
   record yields nothing; a record matching an earlier token_count is emitted *under that
   token_count's dedup key* with a higher rank, so the store replaces the row. A
   token_count with no record (older files; records are best-effort) and a record with no
   token_count both count. The pending lists are part of :meth:`CodexParser.state`, so a
   pair split across two reads still pairs.
3. **Dedup keys never contain the path**: a token_count is keyed by thread id +
   cumulative total + its usage, a record by thread id + ``response_id``. The same rollout
   in ``sessions/`` and ``archived_sessions/`` therefore yields the same keys, and the
   active copy wins through a one-higher rank; re-reading a file from 0 is idempotent.
4. **Replayed parent history of forks and sub-agents is skipped.** A child rollout (its
   first ``session_meta`` names ``forked_from_id``, ``parent_thread_id`` or a
   ``source.subagent``, or a second ``session_meta`` of another thread follows it) starts
   with a copy of its parent's lines: either re-timestamped in a burst at the child's
   creation or with their original, earlier timestamps, depending on the Codex version.
   ccusage skips token_counts sharing the first replayed second; that breaks when the
   burst spans a second boundary. Here the replay ends at the first evidence of the
   child's *own* turn: a ``task_started``/``turn_context`` whose turn began at or after
   the child's creation (the UUIDv7 ``turn_id``'s embedded time, else ``started_at``;
   payloads are copied verbatim, so a replayed turn keeps its old time). Without such
   evidence (older files), a token_count stamped :data:`REPLAY_BURST_MS` or more after
   the creation ends the replay (fail open). Replayed token_counts still set the totals
   baseline, and their ``rate_limits`` are dropped: they are stale copies that would
   move the official gauge backwards.
5. **Model**: the event's own ``model`` (``info.model``, record ``attribution.model``),
   else the latest ``turn_context.model``, else ``"gpt-5"``: Codex started writing
   token_count before ``turn_context`` carried a model (early Sept 2025), and ccusage
   uses the same fallback, so totals per model stay comparable.
6. **Tokens**: ``input_tokens`` includes cached reads (and cache writes, unless
   ``total_tokens`` shows them billed on top), ``output_tokens`` includes reasoning. So
   ``UsageEvent.input_tokens = input - cached - cache_write``, ``cache_read_tokens =
   cached``, ``cache_write_5m_tokens = cache_write_input_tokens``, ``output_tokens =
   output`` and ``reasoning_tokens`` is informational. ``speed`` is the service tier
   (``attribution.service_tier`` or ``turn_context.service_tier``) when it is
   ``"priority"`` or ``"fast"``.
7. **Tools**: the names of ``function_call``, ``custom_tool_call`` and
   ``local_shell_call`` (as ``"local_shell"``) response items since the previous counted
   event go on the next counted event: the response that asked for a tool is the one
   whose usage is reported after it.
8. **Rate limits**: every non-null ``rate_limits`` of a token_count becomes one
   :class:`LimitObservation` per window, classified by ``window_minutes`` (300: 5 h,
   10080: week) whatever slot it sits in, with ``limit_id`` (default ``"codex"``) kept
   apart. Three shapes are read: flat ``primary_used_percent``/``primary_window_minutes``
   (no reset), ``resets_in_seconds`` (relative to the line timestamp) and ``resets_at``
   (epoch seconds). ``rate_limit_reached_type`` marks the windows at 100 % as reached (all
   of them when none is). ``rate_limits: null`` is "no news": nothing is emitted.

9. **Compressed rollouts** (``.jsonl.zst``, Codex's opt-in cold storage of rollouts
   untouched for a week) are read whole, once, and their lines go through this same
   parser (:mod:`tokend.sources.compressed`): the keys are those of the plain file, so
   a rollout compressed after it was read does not count again. Beside its plain copy
   (Codex decompresses one before appending to it) the compressed file is not read.

Out of scope: saved ``codex exec --json`` streams.

Speed: a byte-level look at a line's ``type`` decides whether to decode it at all, so
the big lines (tool output, messages, ``compacted`` history) are never JSON-parsed. The
price is that a line is reported malformed only if it is not ``{...}``-framed or is one
of the decoded kinds; a truncated write is still caught by the framing check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tokend.errors import MalformedLine
from tokend.models import (
    Agent,
    Record,
    UsageEvent,
    utc_from_iso,
    utc_ms,
)
from tokend.sources.base import OnError, Root, walk_names
from tokend.sources.codex_limits import parse_rate_limits
from tokend.sources.compressed import SUFFIX
from tokend.sources.jsonline import MAX_TOKENS, count_of, decode_object, number_of, text_of

__all__ = [
    "FALLBACK_MODEL",
    "REPLAY_BURST_MS",
    "SOURCE",
    "CodexParser",
    "CodexSource",
]

FALLBACK_MODEL = "gpt-5"
"""Model of usage written before ``turn_context`` named one (ccusage does the same)."""

REPLAY_BURST_MS = 5_000
"""How long after a child rollout's creation a token_count may still be replayed history
when the file shows no turn of the child's own. Real replays of thousands of lines were
seen written within two seconds of creation; a margin costs at most the child's first
response in old files that lack turn ids, an overrun would count the parent again."""

TURN_SLACK_MS = 1_000
"""A child's own first turn may be stamped slightly before its ``session_meta`` line
(lazily materialised rollouts); a parent turn cannot both start and spawn within it."""

COMPRESSED = ".jsonl" + SUFFIX
"""How Codex stores a rollout untouched for a week when its opt-in
``local_thread_store_compression`` feature is on (zstd; reference/log-formats.md B.1)."""

SUBDIRS = ("archived_sessions", "sessions")
"""Archived first, so within one scan the active copy is written last (it also ranks one
higher, so it wins whatever the order)."""

_PENDING = 4
"""Unpaired token_counts / records remembered for pairing: a pair sits a line apart."""

_RANK_TOKEN_COUNT = 0
_RANK_RECORD = 2
_RANK_ACTIVE = 1

_TOOL_ITEMS = {"function_call": None, "custom_tool_call": None, "local_shell_call": "local_shell"}
_TOOL_MARKER = re.compile(rb'"(?:function_call|custom_tool_call|local_shell_call)"')
_EVENT_MARKER = re.compile(rb'"(?:token_count|task_started|turn_started)"')
_DECODED_KINDS = (b"session_meta", b"turn_context", b"token_usage_record")
_SKIPPED_KINDS = (
    b"compacted",
    b"world_state",
    b"inter_agent_communication",
    b"inter_agent_communication_metadata",
    b"retained_context",
    b"security_risk_score",
    b"realtime_item",
)
_SPEED_TIERS = ("priority", "fast")

Usage = tuple[int, int, int, int, int, int]
"""``(input incl. cached, cached, output incl. reasoning, reasoning, cache_write, total)``."""


class CodexSource:
    """Where Codex keeps its rollouts, and a parser per rollout."""

    agent: Agent = "codex"

    def roots(self, env: Mapping[str, str], home: Path) -> list[Root]:
        """One root per ``CODEX_HOME`` entry (comma-separated), else ``~/.codex``."""
        paths: list[Path] = []
        for part in env.get("CODEX_HOME", "").split(","):
            part = part.strip()
            if not part:
                continue
            path = _expand(part, home)
            if path not in paths:
                paths.append(path)
        if not paths:
            paths = [home / ".codex"]
        return [Root("codex", path, _account(path, home)) for path in paths]

    def files(self, root: Root, on_error: OnError) -> Iterable[Path]:
        return map(Path, self.file_names(root, on_error))

    def file_names(self, root: Root, on_error: OnError) -> Iterable[str]:
        for sub in SUBDIRS:
            for name in walk_names(root.path / sub, _is_rollout, on_error):
                if not _is_shadowed(name):
                    yield name

    def wants(self, root: Root, path: Path) -> bool:
        return (
            _is_rollout(path.name)
            and any(path.is_relative_to(root.path / sub) for sub in SUBDIRS)
            and not _is_shadowed(str(path))
        )

    def whole_file(self, path: Path) -> bool:
        """A compressed rollout (``.jsonl.zst``) is read whole, once: Codex never
        appends to one (it decompresses it back to ``.jsonl`` first)."""
        return path.name.endswith(COMPRESSED)

    def parse_whole(self, path: Path, data: bytes) -> list[Record]:
        """Not used by the tailer (rollouts are appended); parses all lines at once."""
        parser = CodexParser(session_id=_session_from_name(path.name))
        records: list[Record] = []
        for line in data.split(b"\n"):
            if line.strip():
                records.extend(parser.feed(line))
        return records

    def parser(self, root: Root, path: Path, state: dict[str, Any] | None) -> CodexParser:
        active = path.is_relative_to(root.path / "sessions")
        return CodexParser(session_id=_session_from_name(path.name), active=active, state=state)

    def load_parsing(self) -> None:
        """Nothing to load: the parser imports all it needs with this module."""


SOURCE = CodexSource()


class CodexParser:
    """Turns the lines of one rollout into records, keeping the context between lines.

    :param session_id: used until the file's ``session_meta`` names the thread.
    :param active: the file lives in ``sessions/`` (its copy beats an archived one).
    :param state: what :meth:`state` returned after the last line fed, or ``None``.
    """

    def __init__(
        self, session_id: str, *, active: bool = True, state: dict[str, Any] | None = None
    ) -> None:
        self.bonus = _RANK_ACTIVE if active else 0
        self.sid = session_id
        self.meta = False
        self.cwd = ""
        self.model: str | None = None
        self.tier: str | None = None
        self.born: int | None = None  # ms, the child thread's creation
        self.replay = False
        self.total: Usage | None = None
        self.tools: list[str] = []
        self.pending_counts: list[tuple[Usage, str, list[str]]] = []
        self.pending_records: list[Usage] = []
        if state:
            self._restore(state)

    # -- state ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "sid": self.sid,
            "meta": self.meta,
            "cwd": self.cwd,
            "model": self.model,
            "tier": self.tier,
            "born": self.born,
            "replay": self.replay,
            "total": list(self.total) if self.total is not None else None,
            "tools": list(self.tools),
            "pc": [[list(u), key, list(tools)] for u, key, tools in self.pending_counts],
            "pr": [list(u) for u in self.pending_records],
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.sid = str(state.get("sid") or self.sid)
        self.meta = bool(state.get("meta"))
        self.cwd = str(state.get("cwd") or "")
        self.model = state.get("model")
        self.tier = state.get("tier")
        self.born = state.get("born")
        self.replay = bool(state.get("replay"))
        total = state.get("total")
        self.total = _as_usage(total) if total is not None else None
        self.tools = [str(t) for t in state.get("tools") or []]
        self.pending_counts = [
            (_as_usage(u), str(key), [str(t) for t in tools])
            for u, key, tools in state.get("pc") or []
        ]
        self.pending_records = [_as_usage(u) for u in state.get("pr") or []]

    # -- lines ------------------------------------------------------------------

    def feed(self, line: bytes) -> list[Record]:
        text = line if line[:1] == b"{" and line[-1:] == b"}" else line.strip()
        if not (text.startswith(b"{") and text.endswith(b"}")):
            raise MalformedLine("not a JSON object line")
        if not _worth_decoding(text):
            return []
        obj = decode_object(text)
        kind = obj.get("type")
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return []
        if kind == "session_meta":
            self._session_meta(obj, payload)
        elif kind == "turn_context":
            self._turn_context(payload)
        elif kind == "response_item":
            self._response_item(payload)
        elif kind == "event_msg":
            ptype = payload.get("type")
            if ptype == "token_count":
                return self._token_count(_timestamp(obj), payload)
            if ptype in ("task_started", "turn_started"):
                self._turn_started(payload)
        elif kind == "token_usage_record":
            return self._record(_timestamp(obj), payload)
        return []

    def _session_meta(self, obj: dict[str, Any], payload: dict[str, Any]) -> None:
        thread = text_of(payload.get("id"))
        if not self.meta:
            self.meta = True
            if thread:
                self.sid = thread
            self.cwd = text_of(payload.get("cwd")) or self.cwd
            born = [_iso_ms(obj.get("timestamp")), _iso_ms(payload.get("timestamp"))]
            known = [b for b in born if b is not None]
            self.born = min(known) if known else None
            if _is_child(payload) and self.born is not None:
                self.replay = True
        elif thread and thread != self.sid and self.born is not None:
            # A copy of another thread's header: its history follows.
            self.replay = True

    def _turn_context(self, payload: dict[str, Any]) -> None:
        model = _model_of(payload)
        if model:
            self.model = model
        cwd = text_of(payload.get("cwd"))
        if cwd:
            self.cwd = cwd
        tier = text_of(payload.get("service_tier"))
        if tier is not None:
            self.tier = tier
        self._maybe_own_turn(_uuid7_ms(payload.get("turn_id")))

    def _turn_started(self, payload: dict[str, Any]) -> None:
        when = _uuid7_ms(payload.get("turn_id"))
        if when is None:
            started = number_of(payload.get("started_at"))
            if started is not None:
                when = int(started) * 1000
        self._maybe_own_turn(when)

    def _maybe_own_turn(self, when: int | None) -> None:
        if (
            self.replay
            and when is not None
            and self.born is not None
            and when >= self.born - TURN_SLACK_MS
        ):
            self._end_replay()

    def _end_replay(self) -> None:
        self.replay = False
        self.tools = []

    def _replayed(self, ts: datetime) -> bool:
        """Whether a usage line at ``ts`` is still copied parent history."""
        if not self.replay or self.born is None:
            return False
        if utc_ms(ts) < self.born + REPLAY_BURST_MS:
            return True
        self._end_replay()
        return False

    def _response_item(self, payload: dict[str, Any]) -> None:
        if self.replay:
            return
        item = payload.get("type")
        if type(item) is not str or item not in _TOOL_ITEMS:
            return
        name = _TOOL_ITEMS[item] or text_of(payload.get("name"))
        if name and name not in self.tools:
            self.tools.append(name)

    def _token_count(self, ts: datetime, payload: dict[str, Any]) -> list[Record]:
        replayed = self._replayed(ts)
        records: list[Record] = []
        if not replayed:
            records.extend(parse_rate_limits(payload.get("rate_limits"), ts, self.sid))
        info = payload.get("info")
        if not isinstance(info, dict):
            return records
        total = _usage(info.get("total_token_usage"))
        last = _usage(info.get("last_token_usage"))
        if total is None and last is None:
            return records
        previous = self.total
        if total is not None:
            if total == self.total:
                return records  # a re-emit: rate-limit refresh, not a new response
            self.total = total
        if replayed:
            return records
        if last is not None:
            usage = last
        elif total is not None:
            usage = _delta(total, previous)
        else:
            return records
        if _is_zero(usage):
            return records
        for i, recorded in enumerate(self.pending_records):
            if recorded[:5] == usage[:5]:
                del self.pending_records[i]
                return records  # the token_usage_record already counted this response
        key = f"codex:{self.sid}:t{_tuple_key(total)}:l{_tuple_key(usage)}"
        if total is None:
            key += f":{utc_ms(ts)}"
        tools, self.tools = self.tools, []
        self.pending_counts.append((usage, key, tools))
        del self.pending_counts[:-_PENDING]
        records.append(
            self._event(
                key,
                ts,
                usage,
                _model_of(info) or _model_of(payload),
                tools,
                None,
                _RANK_TOKEN_COUNT,
            )
        )
        return records

    def _record(self, ts: datetime, payload: dict[str, Any]) -> list[Record]:
        if self._replayed(ts):
            return []
        usage = _usage(payload.get("usage"))
        if usage is None or _is_zero(usage):
            return []
        attribution = payload.get("attribution")
        attribution = attribution if isinstance(attribution, dict) else {}
        model = _model_of(attribution)
        tier = text_of(attribution.get("service_tier"))
        for i, (counted, key, tools) in enumerate(self.pending_counts):
            if counted[:5] == usage[:5]:
                # Same response as a token_count already emitted: replace that row.
                del self.pending_counts[i]
                return [self._event(key, ts, usage, model, tools, tier, _RANK_RECORD)]
        thread = text_of(payload.get("thread_id")) or self.sid
        response = text_of(payload.get("response_id"))
        if response:
            key = f"codex:{thread}:r:{response}"
        else:
            key = f"codex:{thread}:u{_tuple_key(_usage(payload.get('thread_token_usage')))}"
            key += f":{_tuple_key(usage)}"
        tools, self.tools = self.tools, []
        self.pending_records.append(usage)
        del self.pending_records[:-_PENDING]
        return [self._event(key, ts, usage, model, tools, tier, _RANK_RECORD)]

    def _event(
        self,
        key: str,
        ts: datetime,
        usage: Usage,
        model: str | None,
        tools: list[str],
        tier: str | None,
        rank: int,
    ) -> UsageEvent:
        inp, cached, out, reasoning, write, total = usage
        cached = min(cached, inp)
        if not (write and total and total == inp + out + write):
            write = min(write, inp - cached)  # cache writes are part of input_tokens
            inp -= write
        tier = tier if tier is not None else self.tier
        return UsageEvent(
            agent="codex",
            dedup_key=key,
            timestamp=ts,
            session_id=self.sid,
            project=self.cwd,
            model=model or self.model or FALLBACK_MODEL,
            input_tokens=inp - cached,
            output_tokens=out,
            cache_read_tokens=cached,
            cache_write_5m_tokens=write,
            reasoning_tokens=min(reasoning, out),
            tools=tuple(tools),
            rank=rank + self.bonus,
            speed=tier if tier in _SPEED_TIERS else None,
        )


# -- helpers ------------------------------------------------------------------------


def _worth_decoding(text: bytes) -> bool:
    """Whether a line can matter, judged from its envelope ``type`` without decoding it.

    Lines of an unknown shape (no compact ``"type":"`` near the start, or an unknown
    kind) are decoded, so nothing is missed when the writer changes.
    """
    at = text.find(b'"type":"', 0, 200)
    if at < 0:
        return True
    end = text.find(b'"', at + 8, 200)
    if end < 0:
        return True
    kind = text[at + 8 : end]
    # The payload's own type follows within 120 bytes; searched in place, no copy.
    if kind == b"response_item":
        return _TOOL_MARKER.search(text, end, end + 120) is not None
    if kind == b"event_msg":
        return _EVENT_MARKER.search(text, end, end + 120) is not None
    return kind in _DECODED_KINDS or kind not in _SKIPPED_KINDS


def _is_rollout(name: str) -> bool:
    return name.startswith("rollout-") and name.endswith((".jsonl", COMPRESSED))


def _is_shadowed(name: str) -> bool:
    """A compressed rollout whose plain copy is beside it: the plain one is read (the
    same lines and keys; Codex is between compressing and removing, or it
    decompressed the file to append to it)."""
    return name.endswith(COMPRESSED) and Path(name.removesuffix(SUFFIX)).exists()


def _expand(text: str, home: Path) -> Path:
    if text == "~":
        return home
    if text.startswith("~/"):
        return home / text[2:]
    return Path(text)


def _account(path: Path, home: Path) -> str:
    try:
        return f"~/{path.relative_to(home).as_posix()}"
    except ValueError:
        return str(path)


def _session_from_name(name: str) -> str:
    """The thread id at the end of ``rollout-<local time>-<uuid>.jsonl``, until
    ``session_meta`` says it (reverted threads add ``_<rollout id>`` after it)."""
    stem = name.removesuffix(SUFFIX).removesuffix(".jsonl").split("_", 1)[0]
    tail = stem[-36:]
    if len(tail) == 36 and tail.count("-") == 4:
        return tail
    return stem


def _is_child(meta: dict[str, Any]) -> bool:
    if meta.get("forked_from_id") or meta.get("parent_thread_id"):
        return True
    if meta.get("thread_source") == "subagent":
        return True
    source = meta.get("source")
    return isinstance(source, dict) and "subagent" in source


def _timestamp(obj: dict[str, Any]) -> datetime:
    value = obj.get("timestamp")
    if not isinstance(value, str):
        raise MalformedLine("usage line without a timestamp")
    try:
        return utc_from_iso(value)
    except ValueError as exc:
        raise MalformedLine(f"bad timestamp {value!r}") from exc


def _iso_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return utc_ms(utc_from_iso(value))
    except ValueError:
        return None


def _uuid7_ms(value: object) -> int | None:
    """The creation time embedded in a UUIDv7 (Codex thread and turn ids)."""
    if not isinstance(value, str):
        return None
    digits = value.replace("-", "")
    if len(digits) != 32 or digits[12] != "7":
        return None
    try:
        return int(digits[:12], 16)
    except ValueError:
        return None


def _count(obj: dict[str, Any], *names: str) -> int:
    """The first of ``names`` that holds a number, as a count (0 if none does)."""
    for name in names:
        value = obj.get(name)
        if type(value) is int or type(value) is float:
            return count_of(value)
    return 0


_USAGE_NAMES = (
    ("input_tokens", "prompt_tokens", "input"),
    ("cached_input_tokens", "cache_read_input_tokens", "cached_tokens"),
    ("output_tokens", "completion_tokens", "output"),
    ("reasoning_output_tokens", "reasoning_tokens"),
    ("cache_write_input_tokens",),
    ("total_tokens",),
)
"""Each ``Usage`` field's spellings, as ccusage reads them; the first is Codex's own."""


def _usage(value: object) -> Usage | None:
    """A ``TokenUsage`` object as a tuple (field aliases as ccusage reads them).

    Codex writes each field's first spelling as an integer: that is taken as it is,
    and only otherwise does :func:`_count` look further (twice per ``token_count``).
    """
    if type(value) is not dict:
        return None
    get = value.get
    counts = []
    for names in _USAGE_NAMES:
        count = get(names[0])
        counts.append(
            count if type(count) is int and 0 <= count <= MAX_TOKENS else _count(value, *names)
        )
    inp, cached, out, reasoning, write, total = counts
    return (inp, min(cached, inp), out, reasoning, write, total)


def _as_usage(value: Iterable[Any]) -> Usage:
    a, b, c, d, e, f = (int(v) for v in value)
    return (a, b, c, d, e, f)


def _delta(total: Usage, previous: Usage | None) -> Usage:
    if previous is None or any(t < p for t, p in zip(total, previous, strict=True)):
        return total  # first total, or a restarted counter
    return _as_usage(t - p for t, p in zip(total, previous, strict=True))


def _is_zero(usage: Usage) -> bool:
    return not any(usage[:5])


def _tuple_key(usage: Usage | None) -> str:
    return "-".join(map(str, usage)) if usage is not None else "none"


def _model_of(obj: dict[str, Any]) -> str | None:
    model = text_of(obj.get("model")) or text_of(obj.get("model_name"))
    if model:
        return model
    meta = obj.get("metadata")
    return text_of(meta.get("model")) if isinstance(meta, dict) else None

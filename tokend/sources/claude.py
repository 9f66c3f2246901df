"""Claude Code: where its transcripts live and which of their lines are usage.

Claude Code appends one JSON object per line to
``<config>/projects/<project>/<session>.jsonl`` and, for subagents and ``/btw`` side
questions, to ``<session>/subagents/agent-<id>.jsonl``. Only ``assistant`` lines with a
top-level ``message.usage`` are usage: ``progress`` lines echo subagent messages the
subagent files already hold, and ``toolUseResult.usage`` on user lines repeats a
subagent's last response. Counting either double-counts.

One API response is written as several lines (one per content block) sharing
``message.id`` and ``requestId``; ``output_tokens`` grows and only the last copy is
final. Each copy becomes an event with the same ``dedup_key`` and a ``rank`` that
encodes ccusage's winner rule, so the store keeps the right one whatever the order in
which files are read. ``<synthetic>`` lines (client-made errors) carry no real usage,
but a rate-limit error among them says the wall was hit: it becomes a
:class:`~tokend.models.LimitObservation` (:mod:`tokend.sources.claude_limits`).

The parser reads bytes and returns records: no I/O, no clock. Lines that cannot hold
usage are rejected on their bytes before any JSON decoding, because a cold scan of
hundreds of megabytes is dominated by decoding (:mod:`tokend.sources.jsonline`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.errors import MalformedLine
from tokend.models import (
    END_YEAR,
    FIRST_YEAR,
    Agent,
    LimitObservation,
    Record,
    UsageEvent,
    utc_from_iso,
)
from tokend.sources.base import OnError, Root, walk_files, walk_names
from tokend.sources.claude_limits import limit_observation
from tokend.sources.jsonline import MAX_TOKENS, count_of, decode_object, text_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokend.sources.claude_fast import Block, Line

__all__ = [
    "SOURCE",
    "ClaudeParser",
    "ClaudeSource",
    "rank_of",
]

AGENT: Agent = "claude"
_SIDECHAIN_BIT = 1 << 62
"""Non-sidechain copies outrank every sidechain copy, whatever their token totals."""
_TOTAL_CAP = (1 << 61) - 1
_TOOL_BLOCKS = ("tool_use", "server_tool_use")
"""The content blocks that call a tool (the second: web search and fetch on the API side)."""
_UTC = timezone.utc
_fromisoformat = datetime.fromisoformat


def rank_of(sidechain: bool, total: int, has_speed: bool) -> int:
    """ccusage's winner rule between copies of one response, as one integer.

    Non-sidechain beats sidechain, then the larger token total (the last streamed copy
    holds the final ``output_tokens``), then a copy that states ``speed``. The store
    keeps the larger rank, so comparing integers is the whole rule. (The parser
    computes it inline, once per usage line; a test holds it to this definition.)
    """
    capped = total if 0 <= total <= _TOTAL_CAP else (_TOTAL_CAP if total > 0 else 0)
    return (0 if sidechain else _SIDECHAIN_BIT) | (capped << 1) | (1 if has_speed else 0)


class ClaudeParser:
    """Turns one Claude Code transcript's lines into records.

    :param path: the file, only for a stable key of lines that have no id at all.
    :param project: the project label used until a line states its ``cwd``.
    :param session: the session id used when a line has no ``sessionId``.
    :param state: what :meth:`state` returned after the last committed line.

    The project of every event is the first ``cwd`` the file states: a session
    belongs to the directory it was started in, and a ``cd`` inside Bash (which
    changes later lines' ``cwd``) should not split one session over several
    projects in the reports.

    Tool names are merged over the copies of one response: each streamed line holds
    one content block, so parallel tool calls sit on different copies and only the
    union tells the user every tool the response called.
    """

    __slots__ = ("_best", "_cwd", "_file_tag", "_key", "_line", "_project", "_rank",
                 "_session", "_tools")

    def __init__(
        self,
        path: Path,
        *,
        project: str,
        session: str,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._file_tag = hashlib.sha1(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self._project = project
        self._session = session
        state = state or {}
        cwd = state.get("cwd")
        self._cwd: str | None = cwd if isinstance(cwd, str) and cwd else None
        line = state.get("line")
        self._line: int = line if isinstance(line, int) else 0
        key = state.get("key")
        self._key: str | None = key if isinstance(key, str) else None
        rank = state.get("rank")
        self._rank: int = rank if isinstance(rank, int) else -1
        tools = state.get("tools")
        self._tools: tuple[str, ...] = (
            tuple(t for t in tools if isinstance(t, str)) if isinstance(tools, list) else ()
        )
        # The best copy of the current response seen by this parser object (not kept
        # in the state: after a restart the store's row plays that role).
        self._best: UsageEvent | None = None

    def state(self) -> dict[str, Any]:
        """The first ``cwd``, the line count and the response being streamed."""
        return {
            "cwd": self._cwd,
            "line": self._line,
            "key": self._key,
            "rank": self._rank,
            "tools": list(self._tools),
        }

    def feed(self, line: bytes) -> list[Record]:
        """Records from one line; raises :class:`MalformedLine` for broken JSON."""
        self._line += 1
        if b'"usage"' not in line:
            self._other(line)
            return []
        events: list[UsageEvent] = []
        observations: list[LimitObservation] = []
        self._records(decode_object(line), events, observations)
        return [*observations, *events]

    def feed_chunk(self, data: bytes) -> tuple[list[UsageEvent], list[LimitObservation], int]:
        """Every line of ``data`` (complete lines, the last one ending with a newline):
        the events, the observations and how many lines were malformed.

        The same records and line numbers as :meth:`feed` line by line (blank lines
        are not lines), with less work per line: lines are found with ``memchr``
        (``bytes.split`` compares byte by byte), a line that cannot be usage is
        judged in place, neither copied out of ``data`` nor passed through a call, and
        a usage line of the common shape is decoded straight into the fields that
        count (:mod:`tokend.sources.claude_fast`) instead of into dictionaries.
        """
        events: list[UsageEvent] = []
        observations: list[LimitObservation] = []
        bad = 0
        fast_reading = _fast_reading() if b'"usage"' in data else None
        if fast_reading is not None:
            decode, unset = fast_reading
            fast = self._fast_records
        find = data.find
        rfind = data.rfind
        size = len(data)
        pos = 0
        while pos < size:
            end = find(b"\n", pos)
            if end < 0:
                end = size
            # From the end: an assistant line states its usage after the content.
            if rfind(b'"usage"', pos, end) < 0:
                if end > pos and data[pos] == 123 and data[end - 1] == 125 and self._cwd:
                    self._line += 1  # "{...}": shaped right, and nothing to learn from it
                else:
                    line = data[pos:end]
                    if line and not line.isspace():
                        self._line += 1
                        try:
                            self._other(line)
                        except MalformedLine:
                            bad += 1
                pos = end + 1
                continue
            line = data[pos:end]
            pos = end + 1
            self._line += 1
            if fast_reading is not None:
                try:
                    if fast(decode(line), events, unset):
                        continue
                except MalformedLine:  # a ValueError too: caught first
                    bad += 1
                    continue
                except (ValueError, RecursionError):
                    pass  # msgspec refused it: the reference reading below decides
            try:
                self._records(decode_object(line), events, observations)
            except MalformedLine:
                bad += 1
        return events, observations, bad

    def _other(self, line: bytes) -> None:
        """A line that cannot be usage nor a rate-limit error (those carry zero usage).

        Decoded only to learn the session's cwd, once per file; otherwise a cheap
        shape check catches the common corruption, a line cut short by a crash.
        """
        if self._cwd is None and b'"cwd"' in line:
            cwd = decode_object(line).get("cwd")
            if isinstance(cwd, str) and cwd:
                self._cwd = cwd
        elif not _looks_like_object(line):
            raise MalformedLine("not a JSON object")

    def _records(
        self,
        obj: dict[str, Any],
        events: list[UsageEvent],
        observations: list[LimitObservation],
    ) -> None:
        """The records of a decoded line that mentions usage, appended to the lists.

        The reference reading of a line; :meth:`_fast_records` reads the common shape
        from msgspec's structs in the same order and hands everything else here.
        """
        kind = obj.get("type")
        # Transcripts always say "assistant"; lines with no type at all are ccusage's
        # test shape (and very old versions), which ccusage counts, so we do too.
        if kind != "assistant" and kind is not None:
            if self._cwd is None:
                self._learn_cwd(obj.get("cwd"))
            return
        message = obj.get("message")
        if type(message) is not dict:
            return
        usage = message.get("usage")
        if type(usage) is not dict:
            return
        if self._cwd is None:
            self._learn_cwd(obj.get("cwd"))
        model = message.get("model")
        if type(model) is not str or not model:
            model = "unknown"
        if (
            model == "<synthetic>"
            or obj.get("isApiErrorMessage") is True
            or "error" in obj
            or "quotaLimits" in obj
        ):
            session = text_of(obj.get("sessionId")) or self._session
            observation = limit_observation(
                obj, message, _timestamp(obj.get("timestamp")), session
            )
            if observation is not None:
                observations.append(observation)
            if model == "<synthetic>":
                # Client-made lines: no request reached the API, so no tokens to count.
                return
        get = usage.get
        split = get("cache_creation")
        if type(split) is dict:
            # ccusage's rule: the TTL split, when present, is the cache write.
            write_5m = split.get("ephemeral_5m_input_tokens")
            write_1h = split.get("ephemeral_1h_input_tokens")
        else:
            write_5m = get("cache_creation_input_tokens")
            write_1h = 0
        content = message.get("content")
        event = self._event(
            get("input_tokens"), get("output_tokens"), get("cache_read_input_tokens"),
            write_5m, write_1h, get("speed"), get("service_tier"),
            obj.get("isSidechain") is True, message.get("id"), obj.get("requestId"),
            obj.get("uuid"), _tool_names(content) if type(content) is list else (),
            obj.get("sessionId"), obj.get("timestamp"), model,
        )
        if event is not None:
            events.append(event)

    def _fast_records(self, line: Line, events: list[UsageEvent], unset: object) -> bool:
        """:meth:`_records` for a line msgspec decoded (``unset``: an absent field);
        ``False``, before any change, when the line may be a limit observation, which
        the dictionary path reads."""
        if line.error is not unset or line.quotaLimits is not unset or (
            line.isApiErrorMessage is True
        ):
            return False
        kind = line.type
        if kind != "assistant" and kind is not None:
            if self._cwd is None:
                self._learn_cwd(line.cwd)
            return True
        message = line.message
        if message is None:
            return True
        usage = message.usage
        if usage is None:
            return True
        model = message.model
        if type(model) is not str or not model:
            model = "unknown"
        elif model == "<synthetic>":
            return False
        if self._cwd is None:
            self._learn_cwd(line.cwd)
        split = usage.cache_creation
        if split is not None:
            write_5m = split.ephemeral_5m_input_tokens
            write_1h = split.ephemeral_1h_input_tokens
        else:
            write_5m = usage.cache_creation_input_tokens
            write_1h = 0
        content = message.content
        if type(content) is not list or (len(content) == 1 and content[0].name is None):
            tools: tuple[str, ...] = ()  # a streamed line's one block, not a tool call
        else:
            tools = _block_tool_names(content)
        event = self._event(
            usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            write_5m, write_1h, usage.speed, usage.service_tier,
            line.isSidechain is True, message.id, line.requestId, line.uuid, tools,
            line.sessionId, line.timestamp, model,
        )
        if event is not None:
            events.append(event)
        return True

    # -- internals -----------------------------------------------------------------

    def _learn_cwd(self, cwd: object) -> None:
        if self._cwd is None and isinstance(cwd, str) and cwd:
            self._cwd = cwd

    def _dedup_key(self, message_id: str | None, request_id: object, uuid: object) -> str:
        """ccusage's key: ``message.id`` + ``requestId``, or the id alone when a
        gateway omits the request id; id-less lines are never merged (a stable key
        per line, so re-reading the file stays idempotent)."""
        if message_id is not None:
            request = text_of(request_id)
            return f"claude:{message_id}:{request}" if request else f"claude:{message_id}"
        line_id = text_of(uuid)
        return f"claude:uuid:{line_id}" if line_id else f"claude:line:{self._file_tag}:{self._line}"

    def _event(
        self,
        input_value: Any,
        output_value: Any,
        read_value: Any,
        write_5m_value: Any,
        write_1h_value: Any,
        speed_field: Any,
        service_tier: Any,
        sidechain: bool,
        message_id: Any,
        request_id: Any,
        uuid: Any,
        tools: tuple[str, ...],
        session: Any,
        stamp: Any,
        model: str,
    ) -> UsageEvent | None:
        """The event for this copy of a response, from the line's values as written;
        or ``None`` when an earlier copy already said everything this one says (no
        store write for it).

        The costliest Python of a cold scan (once per usage line), so written with
        few calls and lookups: token counts that are plain non-negative integers (all
        of them, in practice) skip :func:`count_of`, and the common key shape is built
        here rather than in :meth:`_dedup_key`. Both readings of a line call it with
        positional arguments (keywords cost more).
        """
        top = MAX_TOKENS
        value = input_value
        input_tokens = value if type(value) is int and 0 <= value <= top else count_of(value)
        value = output_value
        output_tokens = value if type(value) is int and 0 <= value <= top else count_of(value)
        value = read_value
        cache_read = value if type(value) is int and 0 <= value <= top else count_of(value)
        value = write_5m_value
        write_5m = value if type(value) is int and 0 <= value <= top else count_of(value)
        value = write_1h_value
        write_1h = value if type(value) is int and 0 <= value <= top else count_of(value)
        # rank_of(sidechain, total, speed_field is not None), inlined: each count is at
        # most MAX_TOKENS, so the total needs no cap (a test holds the two together).
        rank = (input_tokens + output_tokens + cache_read + write_5m + write_1h) << 1
        if speed_field is not None:
            rank |= 1
        if not sidechain:
            rank |= _SIDECHAIN_BIT
        if type(message_id) is str and message_id and type(request_id) is str and request_id:
            key = f"claude:{message_id}:{request_id}"
        else:
            message_id = text_of(message_id)
            key = self._dedup_key(message_id, request_id, uuid)

        if key == self._key:
            held = self._tools
            added = tuple(dict.fromkeys(t for t in tools if t not in held)) if tools else ()
            if rank <= self._rank:
                if not added:
                    return None  # an earlier copy of this response already said it all
                self._tools = held + added
                if self._best is not None:
                    # This copy adds a tool but not tokens: re-send the best copy with it.
                    self._best = replace(self._best, tools=self._tools)
                    return self._best
            tools = held + added
        else:
            self._key = key
            self._rank = -1
            self._best = None
            if len(tools) > 1:
                tools = tuple(dict.fromkeys(tools))

        try:
            # utc_from_iso's common case inline: "...Z" parses to UTC in one C call.
            when = _fromisoformat(stamp)
            if when.tzinfo is not _UTC or not FIRST_YEAR <= when.year < END_YEAR:
                when = _timestamp(stamp)
        except (TypeError, ValueError):
            when = _timestamp(stamp)  # raises MalformedLine with the reason
        # What changes the price: fast mode, else the priority tier.
        if speed_field == "fast":
            speed: str | None = "fast"
        else:
            speed = "priority" if service_tier == "priority" else None
        # Positional, in field order (keywords cost more, once per usage line): agent,
        # dedup_key, timestamp, session_id, project, model, input, output, cache read,
        # cache writes 5m and 1h, reasoning, tools, sidechain, rank; then shadow_key
        # (a /btw side question replays parent messages under the same message id and
        # a new request id; the store drops such a sidechain copy when the primary
        # exists, and the other way round) and speed.
        event = UsageEvent(
            AGENT, key, when,
            session if type(session) is str and session else self._session,
            self._cwd or self._project, model, input_tokens, output_tokens, cache_read,
            write_5m, write_1h, 0, tools, sidechain, rank, message_id, speed,
        )
        self._tools = tools
        if rank >= self._rank:
            self._rank = rank
            self._best = event
        return event


_NO_MSGSPEC = False
"""Set when msgspec could not be imported (a broken install): not tried again."""


def _fast_reading() -> tuple[Callable[[bytes], Line], object] | None:
    """msgspec's decoder of usage lines and its marker of an absent field; ``None``
    when tests switched it off or msgspec is missing (every line is then read through
    dictionaries, with the same results, only slower).

    Imported when the first usage line is read rather than with this module: msgspec
    takes about 10 ms to import, which a report finding nothing new should not pay.
    """
    global _NO_MSGSPEC
    if _NO_MSGSPEC:
        return None
    try:
        from tokend.sources import claude_fast
    except ImportError:
        _NO_MSGSPEC = True
        return None
    decode = claude_fast.DECODE
    return None if decode is None else (decode, claude_fast.UNSET)


def _looks_like_object(line: bytes) -> bool:
    """``{`` first and ``}`` last: what a complete JSON object line must look like."""
    if line[:1] != b"{" or line[-1:] != b"}":
        line = line.strip()
    return line[:1] == b"{" and line[-1:] == b"}"


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise MalformedLine("usage line without a timestamp")
    try:
        return utc_from_iso(value)
    except ValueError:
        raise MalformedLine(f"bad timestamp {value!r}") from None


def _tool_names(content: object) -> tuple[str, ...]:
    if not isinstance(content, list):
        return ()
    names = []
    for block in content:
        if (
            isinstance(block, dict)
            and block.get("type") in _TOOL_BLOCKS
            and isinstance(block.get("name"), str)
        ):
            names.append(block["name"])
    return tuple(names)


def _block_tool_names(content: list[Block]) -> tuple[str, ...]:
    """:func:`_tool_names` over msgspec's blocks."""
    names = []
    for block in content:
        if block.type in _TOOL_BLOCKS and isinstance(block.name, str):
            names.append(block.name)
    return tuple(names)


class ClaudeSource:
    """Where Claude Code keeps its transcripts, and how to read them."""

    agent: Agent = AGENT

    def roots(self, env: Mapping[str, str], home: Path) -> list[Root]:
        """``$CLAUDE_CONFIG_DIR`` entries, else ``~/.config/claude`` and ``~/.claude``.

        Like Claude Code and ccusage, a set ``CLAUDE_CONFIG_DIR`` (a comma-separated
        list here, as ccusage accepts) replaces the defaults; each entry may name the
        config dir or its ``projects/`` folder. Both defaults are kept because Claude
        Code 1.0.30 briefly wrote to ``~/.config/claude`` (``$XDG_CONFIG_HOME/claude``)
        and old sessions may still sit there.
        """
        configured = env.get("CLAUDE_CONFIG_DIR", "")
        entries = [part.strip() for part in configured.split(",") if part.strip()]
        if entries:
            projects = [_projects_dir(_expand(entry, home)) for entry in entries]
        else:
            xdg = env.get("XDG_CONFIG_HOME", "").strip()
            config_home = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
            projects = [config_home / "claude" / "projects", home / ".claude" / "projects"]
        roots: list[Root] = []
        seen: set[Path] = set()
        for path in projects:
            if path in seen:
                continue
            seen.add(path)
            roots.append(Root(AGENT, path, _account_name(path.parent, home)))
        return roots

    def files(self, root: Root, on_error: OnError) -> Iterable[Path]:
        """Every ``*.jsonl`` at any depth: sessions, ``subagents/``, older layouts."""
        return walk_files(root.path, _is_log_name, on_error)

    def file_names(self, root: Root, on_error: OnError) -> Iterable[str]:
        return walk_names(root.path, _is_log_name, on_error)

    def wants(self, root: Root, path: Path) -> bool:
        return _is_log_name(path.name) and _is_below(path, root.path)

    def whole_file(self, path: Path) -> bool:
        return False

    def parse_whole(self, path: Path, data: bytes) -> list[Record]:
        """Line by line, as the tailer would; only for callers holding a whole file."""
        parser = self.parser(Root(AGENT, path.parent, str(path.parent)), path, None)
        records: list[Record] = []
        for line in data.split(b"\n"):
            if line.strip():
                records.extend(parser.feed(line))
        return records

    def parser(self, root: Root, path: Path, state: dict[str, Any] | None) -> ClaudeParser:
        project, session = _labels(root.path, path)
        return ClaudeParser(path, project=project, session=session, state=state)

    def load_parsing(self) -> None:
        """msgspec, which the reading of usage lines imports on first use."""
        _fast_reading()


def _is_log_name(name: str) -> bool:
    return name.endswith(".jsonl")


def _is_below(path: Path, top: Path) -> bool:
    try:
        path.relative_to(top)
    except ValueError:
        return False
    return path != top


def _expand(entry: str, home: Path) -> Path:
    if entry == "~":
        return home
    if entry.startswith(("~/", "~\\")):
        return home / entry[2:]
    return Path(entry)


def _projects_dir(path: Path) -> Path:
    if path.name == "projects" and not (path / "projects").is_dir():
        return path
    return path / "projects"


def _account_name(config_dir: Path, home: Path) -> str:
    """The config dir as a user would type it: ``~/.claude``."""
    try:
        rest = config_dir.relative_to(home)
    except ValueError:
        return str(config_dir)
    return "~" if rest == Path() else f"~/{rest.as_posix()}"


def _labels(top: Path, path: Path) -> tuple[str, str]:
    """Project folder name and session id from the path, for lines that lack them.

    ``<project>/<session>.jsonl`` → the stem; ``<project>/<session>/subagents/x.jsonl``
    → the folder above ``subagents``; deeper files → their parent folder (ccusage's
    reading of the layouts).
    """
    try:
        parts = path.relative_to(top).parts
    except ValueError:
        parts = path.parts[-2:]
    project = parts[0] if len(parts) > 1 else top.name
    if path.parent.name == "subagents" and len(parts) > 2:
        session = path.parent.parent.name
    elif len(parts) > 2:
        session = path.parent.name
    else:
        session = path.stem
    return project, session


SOURCE = ClaudeSource()

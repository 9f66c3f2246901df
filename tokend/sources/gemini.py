"""Gemini CLI: where its chat recordings live and how to count their tokens.

Gemini CLI records every conversation under ``<gemini home>/tmp/<project>/chats/``:

- since v0.39 as an append-only ``session-*.jsonl``: a metadata line, then one line
  per *version* of a message (a message is appended again each time it changes:
  tool result in, tokens attached), ``{"$set": …}`` metadata updates (some of them
  full ``messages`` checkpoints) and ``{"$rewindTo": id}`` markers;
- before v0.39 as one ``session-*.json`` document rewritten in full on every change
  (read whole by the tailer, see :meth:`GeminiSource.whole_file`);
- subagent conversations as ``chats/<parentSessionId>/<subagentSessionId>.jsonl``.

Every copy of a message, in any of these files, maps to the same dedup key
``gemini:<sessionId>:<message id>``, so the store ends up with one row per model
response whatever the number of re-appends, checkpoints, resumes and re-reads.
Gemini writes no rate-limit or quota information, so this source observes none.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tokend.errors import MalformedLine
from tokend.models import Agent, Record, UsageEvent, utc_from_iso
from tokend.sources.base import OnError, Root, walk_files
from tokend.sources.jsonline import count_of, decode_object

__all__ = ["SOURCE", "GeminiParser", "GeminiSource", "TokenCounts", "tokens_from"]

HOME_ENV = "GEMINI_CLI_HOME"
"""Gemini's own override: when set, its folder is ``$GEMINI_CLI_HOME/.gemini``."""

REGISTRY = "projects.json"
"""``{"projects": {"<abs project path>": "<slug>"}}``, Gemini >= v0.29."""

MARKER = ".project_root"
"""The abs project path a ``tmp/<slug>/`` folder belongs to; Gemini trusts it over the registry."""

UNKNOWN_MODEL = "unknown"

_SUFFIXES = (".jsonl", ".json")
_SIDECAR = ".meta.json"
"""Session-list sidecars some versions write next to a chat file: metadata, no usage."""


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """A message's ``tokens`` (Gemini's ``TokensSummary``), clamped to non-negative ints.

    ``input`` is ``promptTokenCount`` and *includes* ``cached``; ``thoughts`` and
    ``tool`` (``toolUsePromptTokenCount``) are *not* part of ``output``.
    """

    input: int = 0
    output: int = 0
    cached: int = 0
    thoughts: int = 0
    tool: int = 0

    @property
    def raw_sum(self) -> int:
        """Every count as written; only used to compare two copies of one message."""
        return self.input + self.output + self.cached + self.thoughts + self.tool

    def is_zero(self) -> bool:
        return self.raw_sum == 0


def tokens_from(value: object) -> TokenCounts | None:
    """Read a ``tokens`` object; ``None`` when the message carries no usage (yet).

    Gemini appends a text reply with ``tokens: null`` and again once usage arrives,
    so a missing or null ``tokens`` means "not known in this copy", never zero.
    """
    if not isinstance(value, Mapping):
        return None
    return TokenCounts(
        input=count_of(value.get("input")),
        output=count_of(value.get("output")),
        cached=count_of(value.get("cached")),
        thoughts=count_of(value.get("thoughts")),
        tool=count_of(value.get("tool")),
    )


# -- project names --------------------------------------------------------------------


@dataclass(frozen=True)
class _Registry:
    """``projects.json`` indexed both ways Gemini names a project folder."""

    by_slug: dict[str, str] = field(default_factory=dict)
    by_hash: dict[str, str] = field(default_factory=dict)
    """``sha256(abs path)`` hex: the legacy folder name and every record's ``projectHash``."""


_NO_REGISTRY = _Registry()


def _load_registry(data: bytes) -> _Registry:
    try:
        doc = json.loads(data)
    except ValueError:
        return _NO_REGISTRY
    projects = doc.get("projects") if isinstance(doc, dict) else None
    if not isinstance(projects, dict):
        return _NO_REGISTRY
    by_slug: dict[str, str] = {}
    by_hash: dict[str, str] = {}
    for project_path, slug in projects.items():
        if not isinstance(slug, str):
            continue
        by_slug.setdefault(slug, project_path)
        by_hash[hashlib.sha256(project_path.encode()).hexdigest()] = project_path
    return _Registry(by_slug, by_hash)


class _RegistryCache:
    """Parses ``projects.json`` again only when it changed: the tailer asks per file read."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, int], _Registry]] = {}

    def get(self, gemini_root: Path) -> _Registry:
        path = gemini_root / REGISTRY
        try:
            st = path.stat()
            signature = (st.st_mtime_ns, st.st_size)
            hit = self._cache.get(path)
            if hit is not None and hit[0] == signature:
                return hit[1]
            registry = _load_registry(path.read_bytes())
        except OSError:
            return _NO_REGISTRY
        self._cache[path] = (signature, registry)
        return registry


def _read_marker(project_dir: Path) -> str | None:
    try:
        text = (project_dir / MARKER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        return None
    return text or None


@dataclass(frozen=True)
class _FileContext:
    """What a file's location says about its records, gathered once per parser.

    Layout: ``<gemini root>/tmp/<project dir>/chats/[<parent session>/]<file>``.
    """

    project_dir: str
    marker: str | None
    registry: _Registry
    parent_session: str | None
    """Set for a subagent file: the folder it sits in is its parent's session id."""
    fallback_session: str
    """The file name without suffix, used only if no line names the session."""

    def project(self, project_hash: str | None) -> str:
        """The real project path when any clue resolves it, else the folder name.

        Order follows Gemini's own trust: the folder's ``.project_root`` marker,
        then the registry's slug, then a sha256 folder name (before v0.29) or the
        record's ``projectHash`` matched against the registry's paths.
        """
        if self.marker:
            return self.marker
        found = self.registry.by_slug.get(self.project_dir) or self.registry.by_hash.get(
            self.project_dir
        )
        if found is None and project_hash:
            found = self.registry.by_hash.get(project_hash)
        return found or self.project_dir


# -- parsing ----------------------------------------------------------------------------


class GeminiParser:
    """Turns one Gemini chat file, line by line, into usage events.

    Keys use the file's *first* session id (its metadata line, or the legacy
    document's ``sessionId``). A ``$set`` naming a session id (Gemini appends one on
    every resume) never re-keys messages: a resumed legacy session is copied
    message by message into a new ``.jsonl`` under the same first id, and later
    checkpoints repeat the old messages, so only a stable key lets the ``.json`` and
    the ``.jsonl`` copies, and every checkpoint, land on one row.
    """

    def __init__(self, context: _FileContext, state: Mapping[str, Any] | None = None) -> None:
        self.context = context
        state = state or {}
        self.session: str | None = _str(state.get("session"))
        """The key's session id, fixed by the first line that names one."""
        self.current: str | None = _str(state.get("current"))
        """The latest session id a ``$set`` announced (informational)."""
        self.start: str | None = _str(state.get("start"))
        self.updated: str | None = _str(state.get("updated"))
        self.model: str | None = _str(state.get("model"))
        self.kind: str | None = _str(state.get("kind"))
        self.project_hash: str | None = _str(state.get("hash"))

    def state(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "current": self.current,
            "start": self.start,
            "updated": self.updated,
            "model": self.model,
            "kind": self.kind,
            "hash": self.project_hash,
        }

    def feed(self, line: bytes) -> list[Record]:
        record = decode_object(line)  # MalformedLine unless a JSON object
        if "$rewindTo" in record:
            # Rewinding hides messages from the conversation, but their tokens were
            # spent and billed: nothing is emitted and nothing is taken back.
            return []
        if "$set" in record:
            update = record["$set"]
            if not isinstance(update, dict):
                raise MalformedLine("$set is not an object")
            return self._metadata(update)
        if isinstance(record.get("id"), str):
            event = self._message(record)
            return [event] if event is not None else []
        if isinstance(record.get("sessionId"), str):
            return self._metadata(record)
        return []  # a line kind from a newer Gemini: not usage

    def load_document(self, doc: Mapping[str, Any]) -> list[Record]:
        """A whole legacy ``ConversationRecord``: metadata and every message at once."""
        return self._metadata(doc)

    def _metadata(self, fields: Mapping[str, Any]) -> list[Record]:
        """A metadata line, a ``$set`` update or a legacy document.

        A ``messages`` list here is a checkpoint (``/compress``, history masking):
        Gemini rebuilds the conversation from it, so each message is upserted under
        its usual key, which makes a repeated message a no-op rather than a second
        count, and a message known only from the checkpoint still counts.
        """
        session = _str(fields.get("sessionId"))
        if session is not None:
            self.current = session
            if self.session is None:
                self.session = session
        self.start = _str(fields.get("startTime")) or self.start
        self.updated = _str(fields.get("lastUpdated")) or self.updated
        self.kind = _str(fields.get("kind")) or self.kind
        self.project_hash = _str(fields.get("projectHash")) or self.project_hash
        messages = fields.get("messages")
        if not isinstance(messages, list):
            return []
        out: list[Record] = []
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("id"), str):
                event = self._message(message)
                if event is not None:
                    out.append(event)
        return out

    def _message(self, message: Mapping[str, Any]) -> UsageEvent | None:
        """One copy of one message; an event only for a model response with usage.

        Which copy wins is decided by the store from ``rank`` = the sum of the raw
        counts: copies of one message carry identical counts (Gemini attaches
        tokens once and never changes them), so they tie and the later write wins,
        which is "last record per id wins" for model, tools and time. A copy with
        ``tokens: null`` yields no event at all, so it can never erase counts
        already stored; and a copy with smaller counts (never written by Gemini,
        only by a damaged file) cannot shadow a larger one, whatever order the
        ``.json`` and ``.jsonl`` copies of a session are read in.
        """
        model = _str(message.get("model"))
        if model is not None:
            self.model = model
        if message.get("type") != "gemini":
            return None
        tokens = tokens_from(message.get("tokens"))
        if tokens is None or tokens.is_zero():
            return None
        timestamp = (
            _time(message.get("timestamp")) or _time(self.updated) or _time(self.start)
        )
        if timestamp is None:
            return None  # nowhere to place it in a window; ids/counts alone are useless
        if self.session is None:
            self.session = self.context.fallback_session
        subagent = self.context.parent_session is not None or self.kind == "subagent"
        return UsageEvent(
            agent="gemini",
            dedup_key=f"gemini:{self.session}:{message['id']}",
            timestamp=timestamp,
            session_id=self.context.parent_session or self.session,
            project=self.context.project(self.project_hash),
            model=model or self.model or UNKNOWN_MODEL,
            # Cached tokens are part of promptTokenCount; the tool-use prompt is not,
            # but it is prompt-side and billed at the input rate (ccusage adds it to
            # input too), so it joins the uncached input.
            input_tokens=max(tokens.input - tokens.cached, 0) + tokens.tool,
            cache_read_tokens=tokens.cached,
            # Thinking is billed as output; reasoning_tokens only says how much of it.
            output_tokens=tokens.output + tokens.thoughts,
            reasoning_tokens=tokens.thoughts,
            tools=_tool_names(message.get("toolCalls")),
            sidechain=subagent,
            rank=tokens.raw_sum,
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc_from_iso(value)
    except ValueError:
        return None


def _tool_names(calls: object) -> tuple[str, ...]:
    if not isinstance(calls, list):
        return ()
    return tuple(
        call["name"]
        for call in calls
        if isinstance(call, dict) and isinstance(call.get("name"), str)
    )


# -- the source ---------------------------------------------------------------------------


def _log_name(name: str) -> bool:
    return name.endswith(_SUFFIXES) and not name.endswith(_SIDECAR)


class GeminiSource:
    """Gemini CLI's chat recordings under ``<gemini home>/tmp/*/chats/``."""

    agent: Agent = "gemini"

    def __init__(self) -> None:
        self._registries = _RegistryCache()

    def roots(self, env: Mapping[str, str], home: Path) -> list[Root]:
        """``$GEMINI_CLI_HOME/.gemini`` when set (Gemini's own rule), else ``~/.gemini``."""
        base = env.get(HOME_ENV)
        top = Path(base).expanduser() if base else home
        path = top / ".gemini"
        return [Root(agent="gemini", path=path, account=str(path))]

    def files(self, root: Root, on_error: OnError) -> Iterator[Path]:
        """Chat files of every project folder, in a stable order.

        Only ``tmp/*/chats`` is walked: the project folders also hold tool outputs,
        shell history and checkpoints, which can be large and never carry usage.
        """
        tmp = root.path / "tmp"
        try:
            with os.scandir(tmp) as entries:
                projects = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return
        except OSError as exc:
            on_error(exc)
            return
        for name in projects:
            for path in walk_files(tmp / name / "chats", _log_name, on_error):
                if self.wants(root, path):
                    yield path

    def file_names(self, root: Root, on_error: OnError) -> Iterator[str]:
        return map(str, self.files(root, on_error))

    def wants(self, root: Root, path: Path) -> bool:
        """``tmp/<project>/chats/session-*.json[l]`` or a subagent's
        ``tmp/<project>/chats/<parent>/<id>.json[l]``; never a ``.meta.json`` sidecar,
        a ``.tmp`` file or an ``.unreadable-<ms>`` backup."""
        try:
            parts = path.relative_to(root.path / "tmp").parts
        except ValueError:
            return False
        if len(parts) < 3 or parts[1] != "chats" or not _log_name(parts[-1]):
            return False
        if len(parts) == 3:
            return parts[2].startswith("session-")
        return len(parts) == 4

    def whole_file(self, path: Path) -> bool:
        """Legacy ``.json`` recordings are rewritten in full, not appended to."""
        return path.suffix == ".json"

    def parse_whole(self, path: Path, data: bytes) -> list[Record]:
        """Every model response of a legacy ``ConversationRecord``.

        The keys are those the ``.jsonl`` copy of the same session uses, so a
        rewrite that adds a message adds one row, and a resumed session counted in
        both files counts once. Gemini rewrites the file in place: a half-written
        (truncated) document raises :class:`MalformedLine` and is read again on
        the next change.
        """
        try:
            doc = decode_object(data)
        except MalformedLine as exc:
            raise MalformedLine(
                f"{path.name}: incomplete, or not a conversation record ({exc})"
            ) from exc
        return GeminiParser(self._context(path)).load_document(doc)

    def parser(
        self, root: Root, path: Path, state: dict[str, Any] | None
    ) -> GeminiParser:
        return GeminiParser(self._context(path), state)

    def load_parsing(self) -> None:
        """Nothing to load: the parser imports all it needs with this module."""

    def _context(self, path: Path) -> _FileContext:
        chats = path.parent
        parent_session: str | None = None
        if chats.name != "chats" and chats.parent.name == "chats":
            parent_session = chats.name
            chats = chats.parent
        project_dir = chats.parent
        return _FileContext(
            project_dir=project_dir.name,
            marker=_read_marker(project_dir),
            registry=self._registries.get(project_dir.parent.parent),
            parent_session=parent_session,
            fallback_session=path.stem,
        )


SOURCE = GeminiSource()

"""Session checkpoints: where a session stands, saved before the budget runs out.

When a window nears its limit (or a session grows expensive) the costly thing to
lose is the session's context. A checkpoint is a short Markdown file, derived from
the agent's own transcript at write time (:mod:`tokend.transcript`), that lets a
fresh session — or the same work after the reset — continue without re-explaining.
It is the only place tokend ever writes prompt text, so it is redacted, private
(mode 0600) and kept out of git (a ``.gitignore`` in the folder tokend creates).

Safety rules, each tested:

- written atomically (temp file in the same folder, then ``os.replace``);
- never through a symlink that leads out of the session's working directory;
- never over a file tokend did not write (its first line carries :data:`MARKER`);
- a missing or read-only working directory skips the write with one log line
  (per session and reason: the daemon re-evaluates every few seconds);
- secrets that look like API keys, tokens or passwords are redacted before
  anything is cut short (a cut secret would no longer match a pattern).

Triggers (:func:`due_checkpoints`, settings in :class:`~tokend.config.CheckpointSettings`):
the session's agent window (5-hour or weekly, of the same account) at or above a
threshold (80 % and 95 % by default); a limit-reached observation; the session
past ``max_turns`` API requests, ``max_cost`` dollars, or a context above
``context_fraction`` of the model's window. Only live sessions (usage in the last
:data:`ACTIVE`) are considered; a file is rewritten at most every
``min_interval_minutes`` and only when the session moved on since; the caller is
told to notify only when the trigger level changes (80 → 95 → limit), not on every
refresh of the file.

The resume side: :func:`announce` answers Claude Code's SessionStart /
UserPromptSubmit hook with the latest unread checkpoint of that directory, once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.transcript import SessionDigest, context_window_for, digest_claude, digest_codex

if TYPE_CHECKING:  # only types: the resume hook must not pay for pydantic's import
    from tokend.config import CheckpointSettings
    from tokend.snapshot import Snapshot, WindowState
    from tokend.store import CheckpointRow, SessionRow, Store

__all__ = [
    "ACTIVE",
    "AGENTS",
    "MARKER",
    "CheckpointNumbers",
    "Due",
    "Notify",
    "WriteResult",
    "announce",
    "digest_session",
    "due_checkpoints",
    "find_session",
    "normalize_cwd",
    "redact",
    "render",
    "run_checkpoints",
    "target_path",
    "window_lines",
    "write_checkpoint",
    "write_session_checkpoint",
]

log = logging.getLogger(__name__)

MARKER = "<!-- tokend checkpoint"
"""First line of every file tokend writes; a file without it is never overwritten."""

AGENTS = ("claude", "codex")
"""Agents whose transcripts can be digested (Gemini's carry no tool calls to speak of)."""

MAX_ITEM = 300
MAX_LIST = 12
MAX_PROMPTS = 5
MAX_TODOS = 20
MAX_BYTES = 12_000
ACTIVE = timedelta(minutes=30)
"""A session counts as live for triggers when it had usage this recently."""

Notify = Callable[[str, str, Path], None]
"""``notify(title, body, checkpoint path)``: the daemon's notification adapter."""

_STATE_KEY = "checkpoint:"
_TOLD_KEY = "checkpoint.told:"

# -- redaction ------------------------------------------------------------------------

_REDACTED = "[REDACTED]"
_SECRETS = [
    re.compile(p)
    for p in (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        r"sk-ant-[A-Za-z0-9_\-]{10,}",
        r"sk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}",
        r"(?:rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}",
        r"gh[pousr]_[A-Za-z0-9]{20,}",
        r"github_pat_[A-Za-z0-9_]{20,}",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"xox[abposr]-[A-Za-z0-9\-]{10,}",
        r"AIza[0-9A-Za-z_\-]{30,}",
        r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
        r"glpat-[A-Za-z0-9_\-]{20,}",
        r"npm_[A-Za-z0-9]{30,}",
        r"hf_[A-Za-z0-9]{30,}",
    )
]
_NAME = (
    r"[A-Za-z0-9_\-]*(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API[_\-]?KEY|ACCESS[_\-]?KEY|"
    r"PRIVATE[_\-]?KEY|CREDENTIALS?)[A-Za-z0-9_\-]*"
)
_ASSIGN = re.compile(
    rf"(?i)(\b{_NAME}[\"']?)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s\"',;&|)]+)"
)
_FLAG = re.compile(
    r"(?i)((?<![\w-])--?(?:password|passwd|pass|token|secret|api-?key|auth-token|access-token)"
    r"(?:=|\s+))(\"[^\"]*\"|'[^']*'|\S+)"
)
_MYSQL = re.compile(r"((?:^|\s)(?:mysql|mysqldump|mariadb)\b[^\n]*?\s-p)(\S+)")
_BASIC_USER = re.compile(r"((?:^|\s)(?:-u|--user)\s+['\"]?[^:\s'\"]+:)([^\s'\"]+)")
_BEARER = re.compile(
    r"(?i)((?:authorization:\s*)?(?:bearer|basic|token)\s+)([A-Za-z0-9._~+/=\-]{12,})"
)
_URL_CREDS = re.compile(r"(://[^/\s:@]+:)([^@\s/]+)(@)")


def redact(text: str) -> str:
    """Replace what looks like a credential with ``[REDACTED]``.

    Errs on the side of hiding: a checkpoint is read by a model and maybe shared,
    a hidden harmless value costs nothing, a leaked key costs a rotation.
    """
    for pattern in _SECRETS:
        text = pattern.sub(_REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)
    text = _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", text)
    text = _FLAG.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)
    text = _MYSQL.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)
    text = _BASIC_USER.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)
    return _URL_CREDS.sub(lambda m: f"{m.group(1)}{_REDACTED}{m.group(3)}", text)


# -- rendering --------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _line(text: str, limit: int = MAX_ITEM) -> str:
    """One redacted line (whitespace collapsed), cut to ``limit`` characters."""
    return _cut(" ".join(redact(text).split()), limit)


def _quote(text: str, limit: int) -> str:
    """A redacted block quote: keeps paragraphs, cannot open a Markdown heading."""
    body = _cut(redact(text).strip(), limit)
    lines = [ln.rstrip() for ln in body.splitlines()]
    # drop runs of blank lines so a long paste stays compact
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1] != ">"):
            out.append(f"> {ln}" if ln else ">")
    return "\n".join(out).rstrip(">\n") or "> "


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _relative(path: str, cwd: str) -> str:
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1:]
    return path


@dataclass(frozen=True)
class CheckpointNumbers:
    """The figures shown under "Numbers": from the store and the snapshot, not the text."""

    cost: float | None
    requests: int
    windows: tuple[str, ...] = ()
    """E.g. ``"5-hour window: 83 % (official), resets 2026-09-15 14:30 UTC"``."""


def render(digest: SessionDigest, numbers: CheckpointNumbers, reason: str, now: datetime) -> str:
    """The checkpoint's Markdown, at most :data:`MAX_BYTES` bytes."""
    when = now.astimezone(timezone.utc)
    out = [
        f"{MARKER} v1 agent={digest.agent} session={digest.session_id} "
        f"written={when:%Y-%m-%dT%H:%M:%SZ} -->",
        f"# Checkpoint: {digest.agent} session {digest.session_id[:8]}",
        "",
        f"Saved by tokend at {when:%Y-%m-%d %H:%M} UTC because {reason}.",
        f"To continue in a fresh session, start it in `{digest.cwd}` and ask it to read "
        "this file. Written from the session's transcript; secrets are redacted.",
        "",
        "## Numbers",
        f"- turns: {digest.turns} ({numbers.requests} API requests)",
        f"- cost so far: {f'${numbers.cost:.2f}' if numbers.cost is not None else 'unpriced'}",
    ]
    if digest.context_tokens is not None:
        size = f"{digest.context_tokens:,} tokens"
        if digest.context_window:
            share = digest.context_tokens / digest.context_window
            size = (f"{digest.context_tokens:,} of {digest.context_window:,} tokens "
                    f"({share * 100:.0f} %)")
        out.append(f"- context in use: {size}")
    if digest.compactions:
        out.append(f"- compacted: {digest.compactions} time{'s' if digest.compactions > 1 else ''}")
    out += [f"- {w}" for w in numbers.windows]
    if digest.model:
        out.append(f"- model: {digest.model}")
    out += ["", "## Goal", _quote(digest.goal, 1200) if digest.goal else "(no prompt found)"]
    recent = digest.prompts[1:][-MAX_PROMPTS:]
    if recent:
        earlier = len(digest.prompts) - 1 - len(recent)
        out += ["", "## Latest prompts (oldest first)"]
        if earlier:
            out.append(f"- … {earlier} earlier")
        out += [f"- {_line(p)}" for p in recent]
    if digest.todos:
        marks = {"completed": "x", "in_progress": "~"}
        out += ["", "## Todo list"]
        out += [f"- [{marks.get(s, ' ')}] {_line(t, 200)}" for s, t in digest.todos[:MAX_TODOS]]
        if len(digest.todos) > MAX_TODOS:
            out.append(f"- … {len(digest.todos) - MAX_TODOS} more")
    for title, items, relative in (
        ("Files modified", digest.files_modified, True),
        ("Files read", digest.files_read, True),
        ("Commands run (latest last)", digest.commands, False),
    ):
        if items:
            shown = items[-MAX_LIST:]
            more = len(items) - len(shown)
            out += ["", f"## {title}"]
            if more:
                out.append(f"- … {more} earlier")
            out += [
                f"- {_code(_line(_relative(i, digest.cwd) if relative else i, 200))}"
                for i in shown
            ]
    if digest.last_assistant:
        out += ["", "## Last assistant message", _quote(digest.last_assistant, 1500)]
    return _cap("\n".join(out) + "\n")


def _cap(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_BYTES:
        return text
    cut = data[: MAX_BYTES - 20].decode("utf-8", errors="ignore")
    return cut[: cut.rfind("\n") + 1] + "\n(truncated)\n"


# -- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteResult:
    """What became of one checkpoint: written, or why not (``reason``)."""

    written: bool
    path: Path | None
    reason: str = ""
    session_id: str = ""
    trigger: str = ""
    """Why it was written (the reason text of the trigger)."""


def normalize_cwd(cwd: str) -> str:
    """The form checkpoints are filed under, so the hook's ``cwd`` finds them."""
    return os.path.normpath(Path(cwd).expanduser()) if cwd else ""


def _safe_session(session_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", session_id).lstrip(".")
    return name or "session"


def target_path(template: str, cwd: str, session_id: str) -> Path:
    """Where a session's checkpoint goes: the template with ``{cwd}`` and ``{session}``.

    :raises ValueError: a template with another placeholder.
    """
    try:
        text = template.format(cwd=cwd.rstrip("/") or "/", session=_safe_session(session_id))
    except (KeyError, IndexError) as exc:
        raise ValueError(f"checkpoint path {template!r}: only {{cwd}} and {{session}}") from exc
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(cwd) / path


def _base_of(template: str, cwd: str) -> Path:
    """The folder a checkpoint must stay inside: the session's cwd, or the fixed
    folder a template without ``{cwd}`` names (``~/notes/{session}.md`` -> ``~/notes``)."""
    if "{cwd}" in template or not Path(template.split("{", 1)[0]).expanduser().is_absolute():
        return Path(cwd)
    prefix = template.split("{", 1)[0]
    base = Path(prefix).expanduser()
    return base if prefix.endswith("/") else base.parent


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def write_checkpoint(target: Path, cwd: Path, text: str, base: Path | None = None) -> WriteResult:
    """Write ``text`` to ``target`` under the safety rules of this module.

    ``cwd`` is the session's working directory (it must exist); ``base`` the folder
    the target must resolve into (default ``cwd``). Never raises for the expected
    refusals and never logs: the reason is in the result, the caller decides how
    often to say it.
    """
    base = cwd if base is None else base
    if not cwd.is_dir():
        return WriteResult(False, target, f"the session folder {cwd} is gone")
    real_base = base.resolve()
    if not _inside(target.parent.resolve(), real_base):
        return WriteResult(False, target, f"{target.parent} leads outside {base} (symlink?)")
    if target.is_symlink() and not _inside(target.resolve(), real_base):
        return WriteResult(False, target, f"{target} is a symlink out of {base}")
    if target.is_dir():
        return WriteResult(False, target, f"{target} is a folder")
    if target.exists():
        try:
            with open(target, encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
        except OSError as exc:
            return WriteResult(False, target, f"cannot read {target}: {exc.strerror or exc}")
        if not first.startswith(MARKER):
            return WriteResult(False, target, f"{target} exists and was not written by tokend")
    try:
        created = _make_parents(target.parent, real_base)
        if not _inside(target.parent.resolve(), real_base):  # a link raced in
            return WriteResult(False, target, f"{target.parent} leads outside {base}")
        if created is not None and created.name.startswith("."):
            # A folder of ours inside the user's project: keep prompt text out of git.
            (created / ".gitignore").write_text("*\n", encoding="utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".tokend-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        return WriteResult(
            False, target, f"cannot write in {target.parent}: {exc.strerror or exc}"
        )
    return WriteResult(True, target)


def _make_parents(folder: Path, real_base: Path) -> Path | None:
    """Create ``folder`` and its missing parents; the topmost folder created, if any."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    top = missing[-1] if missing else None
    return top if top is not None and _inside(top.resolve(), real_base) else None


def _main_transcript(paths: Sequence[str]) -> Path | None:
    """The session's own transcript among the files that produced its events.

    Claude subagent files sit in ``<project>/<session>/subagents/``; the main file is
    ``<project>/<session>.jsonl``. A Codex rollout may exist twice (``sessions/`` and
    ``archived_sessions/``): the live copy wins, else the newest.
    """
    files = [Path(p) for p in paths]
    main = [p for p in files if "subagents" not in p.parts]
    if not main:
        for p in files:
            if "subagents" in p.parts:
                session_dir = p.parents[1] if p.parent.name == "subagents" else p.parent
                main.append(session_dir.with_name(session_dir.name + ".jsonl"))
    existing = [p for p in main if p.is_file()]
    if not existing:
        return None
    live = [p for p in existing if "archived_sessions" not in p.parts]
    return max(live or existing, key=lambda p: p.stat().st_mtime_ns)


def _subagent_files(main: Path) -> list[Path]:
    folder = main.with_suffix("") / "subagents"
    try:
        return sorted(folder.glob("*.jsonl"))
    except OSError:
        return []


def _claude_lines(main: Path) -> list[dict[str, Any]]:
    """The main transcript and its subagents' lines, in time order.

    Subagents' edits and commands are part of the session's work; reading their
    files in time order keeps "latest last" true. A line without a timestamp keeps
    the place of the line before it in its file.
    """
    keyed: list[tuple[str, int, dict[str, Any]]] = []
    for rank, path in enumerate([main, *_subagent_files(main)]):
        try:
            with open(path, "rb") as handle:
                last = ""
                for raw in handle:
                    try:
                        line = json.loads(raw)
                    except (ValueError, UnicodeDecodeError):
                        continue
                    if not isinstance(line, dict):
                        continue
                    ts = line.get("timestamp")
                    last = ts if isinstance(ts, str) else last
                    keyed.append((last, rank, line))
        except OSError as exc:
            if rank == 0:
                raise
            log.debug("checkpoint: skipping %s: %s", path, exc)
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [line for _, _, line in keyed]


def digest_session(store: Store, session_id: str, agent: str) -> SessionDigest | None:
    """Read the session's transcript again and digest it (``None``: nothing to read)."""
    if agent not in AGENTS:
        return None
    main = _main_transcript(store.session_files(session_id))
    if main is None:
        return None
    try:
        if agent == "codex":
            with open(main, "rb") as handle:
                digest = digest_codex(handle)
        else:
            digest = digest_claude(_claude_lines(main))
    except OSError as exc:
        log.warning("checkpoint: cannot read %s: %s", main, exc.strerror or exc)
        return None
    digest.session_id = digest.session_id or session_id
    return digest


_WINDOW_NAMES = {"5h": "5-hour window", "weekly": "weekly window", "daily": "daily quota"}


def _windows_of(snapshot: Snapshot | None, session: SessionRow) -> list[WindowState]:
    """The windows of the account (root) the session counts against."""
    if snapshot is None:
        return []
    for agent in snapshot.agents:
        # the store keys roots as "agent:/path", the snapshot shows the path
        if agent.agent == session.agent and session.root in (
            f"{agent.agent}:{agent.root}", agent.root
        ):
            return list(agent.windows)
    return []


def window_lines(snapshot: Snapshot | None, session: SessionRow) -> tuple[str, ...]:
    """``"5-hour window: 83 % (official), resets 2026-09-15 14:30 UTC"`` per window."""
    out = []
    for w in _windows_of(snapshot, session):
        name = _WINDOW_NAMES.get(w.kind, w.kind)
        if w.percent is None:
            text = f"{name}: unknown share of the limit"
        else:
            text = f"{name}: {w.percent:.0f} % ({w.provenance})"
        if w.resets_at is not None:
            text += f", resets {w.resets_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"
        out.append(text)
    return tuple(out)


def write_session_checkpoint(
    store: Store,
    session: SessionRow,
    settings: CheckpointSettings,
    reason: str,
    now: datetime,
    snapshot: Snapshot | None = None,
) -> WriteResult:
    """Digest, render, write and record one session's checkpoint."""
    digest = digest_session(store, session.session_id, session.agent)
    if digest is None:
        return WriteResult(False, None, "the session's transcript cannot be read",
                           session.session_id, reason)
    cwd = digest.cwd or session.project
    if not cwd or not Path(cwd).is_absolute():
        return WriteResult(False, None, "the session's folder is unknown",
                           session.session_id, reason)
    digest.cwd = cwd
    try:
        target = target_path(settings.path, cwd, session.session_id)
    except ValueError as exc:
        return WriteResult(False, None, str(exc), session.session_id, reason)
    numbers = CheckpointNumbers(session.cost, session.requests, window_lines(snapshot, session))
    text = render(digest, numbers, reason, now)
    result = write_checkpoint(target, Path(cwd), text, _base_of(settings.path, cwd))
    if result.written:
        store.record_checkpoint(
            session_id=session.session_id, agent=session.agent, path=str(target),
            cwd=normalize_cwd(cwd), reason=reason, written_ms=_ms(now),
        )
    return WriteResult(result.written, result.path, result.reason, session.session_id, reason)


# -- triggers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A session to checkpoint now: why (``reason``, for the file and the notification)
    and the trigger ``level`` (a change of level is what deserves a notification)."""

    session: SessionRow
    reason: str
    level: str
    resets_ms: int | None = None
    """When the triggering window resets: a later window crossing 80 % again is news."""


@dataclass
class _State:
    """Per-session bookkeeping in the store's ``kv``, so a restart keeps it."""

    level: str = ""
    at: int = 0
    seen: int = 0
    skip: str = ""
    resets: int = 0

    @classmethod
    def load(cls, store: Store, session_id: str) -> _State:
        raw = store.get_kv(_STATE_KEY + session_id)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls(str(data.get("level", "")), int(data.get("at", 0)),
                   int(data.get("seen", 0)), str(data.get("skip", "")),
                   int(data.get("resets", 0)))

    def news(self, due: Due) -> bool:
        """Is ``due`` a new level, or the same level in a later window instance?

        Official reset times jitter by seconds between observations, so a new
        instance is a reset more than half a window later, not any other reset.
        """
        if due.level != self.level:
            return True
        if due.resets_ms is None or not self.resets:
            return False
        kind = due.level.split(":")[1] if due.level.startswith("window:") else ""
        return due.resets_ms - self.resets > _HALF_WINDOW_MS.get(kind, 0)

    def save(self, store: Store, session_id: str) -> None:
        store.set_kv(_STATE_KEY + session_id, json.dumps(
            {"level": self.level, "at": self.at, "seen": self.seen, "skip": self.skip,
             "resets": self.resets}
        ))


_HALF_WINDOW_MS = {"5h": 150 * 60_000, "weekly": 84 * 3_600_000, "daily": 12 * 3_600_000}


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _last_context(store: Store, session: SessionRow) -> tuple[str, int] | None:
    """``(model, prompt tokens)`` of the session's latest main-thread request.

    The prompt of the last request is the context in use: input + cache read +
    cache writes (Codex's cached input is stored as cache read). One indexed query
    (``events_session``); kept here until the store grows a method for it.
    """
    row = store.db.execute(
        "SELECT model, input + cache_read + cache_write_5m + cache_write_1h FROM events "
        "WHERE session_id = ? AND agent = ? AND root = ? AND sidechain = 0 "
        "ORDER BY ts DESC, id DESC LIMIT 1",
        (session.session_id, session.agent, session.root),
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def _reached(store: Store, session: SessionRow, since_ms: int) -> bool:
    """A limit-reached observation of the session's account (or the session) since then."""
    for row in store.limit_rows(agent=session.agent, since_ms=since_ms):
        if row.reached and (row.root == session.root or row.session_id == session.session_id):
            return True
    return False


def _trigger(
    store: Store, snapshot: Snapshot | None, settings: CheckpointSettings,
    session: SessionRow, now_ms: int,
) -> Due | None:
    """The strongest trigger that holds for the session now."""
    if _reached(store, session, now_ms - int(ACTIVE.total_seconds() * 1000)):
        return Due(session, f"the {session.agent} usage limit was reached", "limit")
    best: tuple[float, int, WindowState] | None = None
    for w in _windows_of(snapshot, session):
        passed = [t for t in settings.thresholds if w.percent is not None and w.percent >= t]
        if passed and (best is None or (w.percent or 0.0) > best[0]):
            best = (w.percent or 0.0, max(passed), w)
    if best is not None:
        percent, threshold, w = best
        name = _WINDOW_NAMES.get(w.kind, w.kind)
        return Due(session, f"the {session.agent} {name} is at {percent:.0f} %",
                   f"window:{w.kind}:{threshold}", _ms(w.resets_at) if w.resets_at else None)
    context = _last_context(store, session)
    if context is not None:
        model, used = context
        size = context_window_for(model, used)
        if size and used >= settings.context_fraction * size:
            return Due(session, f"the context is {used / size * 100:.0f} % full "
                       f"({used:,} of {size:,} tokens)", "context")
    if session.requests >= settings.max_turns:
        return Due(session, f"the session made {session.requests} API requests", "turns")
    if session.cost is not None and session.cost >= settings.max_cost:
        return Due(session, f"the session cost ${session.cost:.2f}", "cost")
    return None


def due_checkpoints(
    store: Store, snapshot: Snapshot | None, settings: CheckpointSettings, now: datetime
) -> list[Due]:
    """Live sessions whose checkpoint should be (re)written now.

    A session is due when a trigger holds, the last attempt (written or refused) is
    at least ``min_interval_minutes`` old, and either the trigger level changed
    (80 → 95 → limit, or a new window instance) or the session moved on (new usage).
    """
    if not settings.enabled:
        return []
    now_ms = _ms(now)
    out: list[Due] = []
    for session in store.active_sessions(now_ms - int(ACTIVE.total_seconds() * 1000)):
        if session.agent not in AGENTS:
            continue
        due = _trigger(store, snapshot, settings, session, now_ms)
        if due is None:
            continue
        state = _State.load(store, session.session_id)
        if state.at and now_ms - state.at < settings.min_interval_minutes * 60_000:
            continue  # at most every few minutes, whatever happened (a failed write too)
        if state.at and not state.news(due) and session.last_ms <= state.seen:
            continue  # nothing new since the last write
        out.append(due)
    return out


def run_checkpoints(
    store: Store,
    snapshot: Snapshot | None,
    settings: CheckpointSettings,
    now: datetime,
    notify: Notify | None = None,
) -> list[WriteResult]:
    """Write every due checkpoint; the daemon calls this after each recompute.

    ``notify("Checkpoint saved", body, path)`` is called when a session's trigger
    level changed (not when the file is merely refreshed). Never raises: one
    session's failure is logged and the others still run. A refusal is logged once
    per session and reason (a read-only folder would otherwise log every few seconds).
    """
    results: list[WriteResult] = []
    try:
        due = due_checkpoints(store, snapshot, settings, now)
    except Exception:
        log.exception("cannot evaluate checkpoint triggers")
        return results
    for item in due:
        session = item.session
        try:
            result = write_session_checkpoint(store, session, settings, item.reason, now, snapshot)
            state = _State.load(store, session.session_id)
            changed = state.news(item)
            if result.written:
                log.info("checkpoint of %s session %s written to %s (%s)",
                         session.agent, session.session_id, result.path, item.reason)
                if changed and notify is not None and result.path is not None:
                    try:
                        notify("Checkpoint saved", _notice(session, item.reason, result.path),
                               result.path)
                    except Exception:  # a broken notifier must not make us rewrite in a loop
                        log.exception("cannot notify about the checkpoint %s", result.path)
                state.skip = ""
            else:
                if result.reason != state.skip:
                    log.warning("checkpoint of %s session %s not written: %s",
                                session.agent, session.session_id, result.reason)
                state.skip = result.reason
            state.level, state.at, state.seen = item.level, _ms(now), session.last_ms
            state.resets = item.resets_ms or state.resets
            state.save(store, session.session_id)
            results.append(result)
        except Exception:
            log.exception("checkpoint of session %s failed", session.session_id)
    return results


def _notice(session: SessionRow, reason: str, path: Path) -> str:
    return f"{session.agent} in {session.project}: {reason}. Saved to {path}"


# -- finding and resuming ----------------------------------------------------------------


def find_session(
    store: Store, *, session_id: str | None = None, cwd: str | None = None
) -> SessionRow | None:
    """A session by id (a unique prefix is enough), else the latest one in ``cwd``,
    else (``cwd=None``) the latest Claude or Codex session of all."""
    sessions = [s for s in store.active_sessions(0) if s.agent in AGENTS]
    if session_id:
        exact = [s for s in sessions if s.session_id == session_id]
        if exact:
            return exact[0]
        matches = [s for s in sessions if s.session_id.startswith(session_id)]
        return matches[0] if len(matches) == 1 else None
    if cwd is not None:
        want = normalize_cwd(cwd)
        sessions = [s for s in sessions if normalize_cwd(s.project) == want]
    return sessions[0] if sessions else None


def _told(store: Store, session_id: str) -> list[str]:
    raw = store.get_kv(_TOLD_KEY + session_id) if session_id else None
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _claim(store: Store, row: CheckpointRow, now_ms: int) -> bool:
    """Mark ``row`` announced unless another hook run just did: two sessions started
    together in one folder must not both be told. (A conditional update, kept here
    until the store grows a method for it.)"""
    with store.db:
        cur = store.db.execute(
            "UPDATE checkpoints SET announced_at = ? WHERE session_id = ? "
            "AND written_at = ? AND announced_at IS NULL",
            (now_ms, row.session_id, row.written_ms),
        )
    return cur.rowcount == 1


def announce(store: Store, cwd: str, now: datetime, session_id: str = "") -> str | None:
    """The hook's message about the latest unread checkpoint of ``cwd``, at most once.

    Once: the checkpoint is marked announced, and the asking session (``session_id``)
    remembers it was told, so a rewrite of that checkpoint (which makes it unread
    for the *next* session) is not announced again on this session's later prompts.
    A session is never told about its own checkpoint. Only the newest checkpoint of
    the folder counts: once it was read, older ones are stale.
    """
    told = _told(store, session_id)
    for row in store.checkpoints(normalize_cwd(cwd)):
        if row.session_id == session_id:
            continue
        if row.session_id in told or row.announced_ms is not None:
            return None
        if not Path(row.path).is_file():
            continue
        if not _claim(store, row, _ms(now)):
            return None
        if session_id:
            store.set_kv(_TOLD_KEY + session_id, json.dumps([*told, row.session_id]))
        when = datetime.fromtimestamp(row.written_ms / 1000, tz=timezone.utc)
        return (
            f"tokend saved a checkpoint of an earlier {row.agent} session in this folder "
            f"on {when:%Y-%m-%d %H:%M} UTC, because {row.reason}: {row.path} . "
            "If the user wants to continue that work, read that file first: it lists the "
            "goal, the latest prompts, the files touched, the commands run and the todo list."
        )
    return None

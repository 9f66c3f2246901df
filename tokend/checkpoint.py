"""Session checkpoints: where a session stands, saved before the budget runs out.

When a window nears its limit (or a session grows expensive) the costly thing to
lose is the session's context. A checkpoint is a short Markdown file, derived from
the agent's own transcript at write time (:mod:`tokend.transcript`), that lets a
fresh session — or the same work after the reset — continue without re-explaining.

Safety rules, each tested:

- written atomically (temp file in the same folder, then ``os.replace``);
- never through a symlink that leads out of the session's working directory;
- never over a file tokend did not write (its first line carries :data:`MARKER`);
- a missing or read-only working directory skips the write with one log line;
- secrets that look like API keys, tokens or passwords are redacted.

The resume side: :func:`announce` answers Claude Code's SessionStart /
UserPromptSubmit hook with the latest unread checkpoint of that directory, once.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tokend.config import CheckpointSettings
from tokend.snapshot import Snapshot
from tokend.store import SessionRow, Store
from tokend.transcript import SessionDigest, digest_claude, digest_codex

__all__ = [
    "MARKER",
    "CheckpointNumbers",
    "WriteResult",
    "announce",
    "due_checkpoints",
    "redact",
    "render",
    "target_path",
    "write_checkpoint",
    "write_session_checkpoint",
]

log = logging.getLogger(__name__)

MARKER = "<!-- tokend checkpoint"
"""First line of every file tokend writes; a file without it is never overwritten."""

MAX_ITEM = 400
MAX_LIST = 12
MAX_BYTES = 12_000
ACTIVE = timedelta(minutes=30)
"""A session counts as live for triggers when it had usage this recently."""

_SECRETS = [
    re.compile(p)
    for p in (
        r"sk-ant-[A-Za-z0-9_\-]{10,}",
        r"sk-(?:proj-)?[A-Za-z0-9_\-]{16,}",
        r"gh[pousr]_[A-Za-z0-9]{20,}",
        r"github_pat_[A-Za-z0-9_]{20,}",
        r"AKIA[0-9A-Z]{16}",
        r"xox[abposr]-[A-Za-z0-9\-]{10,}",
        r"AIza[0-9A-Za-z_\-]{30,}",
        r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
        r"glpat-[A-Za-z0-9_\-]{20,}",
    )
]
_ASSIGN = re.compile(
    r"(?i)\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY)"
    r"[A-Z0-9_]*)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)
_FLAG = re.compile(r"(?i)(--?(?:password|passwd|token|secret|api-key|apikey)[= ])(\S+)")
_BEARER = re.compile(r"(?i)(authorization:\s*(?:bearer|basic|token)\s+)(\S+)")
_URL_CREDS = re.compile(r"(://[^/\s:@]+:)([^@\s/]+)(@)")


def redact(text: str) -> str:
    """Replace what looks like a credential with ``[REDACTED]``."""
    for pattern in _SECRETS:
        text = pattern.sub("[REDACTED]", text)
    text = _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", text)
    text = _FLAG.sub(lambda m: f"{m.group(1)}[REDACTED]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}[REDACTED]", text)
    return _URL_CREDS.sub(lambda m: f"{m.group(1)}[REDACTED]{m.group(3)}", text)


def _clip(text: str, limit: int = MAX_ITEM) -> str:
    text = redact(" ".join(text.split()) if "\n" not in text else text.strip())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class CheckpointNumbers:
    """The figures shown at the top of a checkpoint."""

    cost: float | None
    requests: int
    window: str = ""
    """E.g. ``"5-hour window 83 % (official), resets 14:30 UTC"``."""


def render(digest: SessionDigest, numbers: CheckpointNumbers, reason: str, now: datetime) -> str:
    """The checkpoint's Markdown, capped at about :data:`MAX_BYTES`."""
    out = [
        f"{MARKER} v1 session={digest.session_id} agent={digest.agent} -->",
        f"# Checkpoint: {digest.agent} session {digest.session_id[:8]}",
        "",
        f"Saved by tokend at {now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC because "
        f"{reason}. To continue in a fresh session, start it in `{digest.cwd}` and ask it to "
        "read this file.",
        "",
        "## Numbers",
        f"- turns: {digest.turns}; API requests: {numbers.requests}",
        f"- cost so far: {f'${numbers.cost:.2f}' if numbers.cost is not None else 'unpriced'}",
    ]
    if digest.context_tokens is not None:
        size = f"{digest.context_tokens:,} tokens"
        if digest.context_window:
            share = digest.context_tokens / digest.context_window
            size += f" of {digest.context_window:,} ({share:.0%})"
        out.append(f"- context in use: {size}")
    if digest.compactions:
        out.append(f"- compacted {digest.compactions} time(s)")
    if numbers.window:
        out.append(f"- {numbers.window}")
    if digest.model:
        out.append(f"- model: {digest.model}")
    out += ["", "## Goal", _clip(digest.goal, 1200) or "(no prompt found)"]
    recent = digest.prompts[1:][-5:]
    if recent:
        out += ["", "## Latest prompts", *[f"- {_clip(p)}" for p in recent]]
    if digest.todos:
        marks = {"completed": "x", "in_progress": "~"}
        out += ["", "## Todo list"]
        out += [f"- [{marks.get(s, ' ')}] {_clip(t, 200)}" for s, t in digest.todos[:20]]
    for title, items in (
        ("Files modified", digest.files_modified),
        ("Files read", digest.files_read),
        ("Commands run (latest last)", digest.commands),
    ):
        if items:
            shown = items[-MAX_LIST:]
            more = len(items) - len(shown)
            out += ["", f"## {title}"]
            if more:
                out.append(f"- … {more} earlier")
            out += [f"- `{_clip(i, 200)}`" for i in shown]
    if digest.last_assistant:
        out += ["", "## Last assistant message", _clip(digest.last_assistant, 1500)]
    text = "\n".join(out) + "\n"
    if len(text.encode()) > MAX_BYTES:
        text = text.encode()[: MAX_BYTES - 40].decode(errors="ignore") + "\n\n(truncated)\n"
    return text


def target_path(template: str, cwd: str, session_id: str) -> Path:
    return Path(template.format(cwd=cwd, session=session_id)).expanduser()


@dataclass(frozen=True)
class WriteResult:
    written: bool
    path: Path
    reason: str = ""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def write_checkpoint(target: Path, cwd: Path, text: str) -> WriteResult:
    """Write ``text`` to ``target`` under the safety rules of this module.

    Never raises for the expected refusals; the reason is in the result and logged once.
    """
    if not cwd.is_dir():
        return _skip(target, f"the session folder {cwd} is gone")
    real_cwd = cwd.resolve()
    if not _inside(target.parent.resolve(), real_cwd):
        return _skip(target, f"{target.parent} leads outside {cwd} (symlink?)")
    if target.is_symlink() and not _inside(target.resolve(), real_cwd):
        return _skip(target, f"{target} is a symlink out of {cwd}")
    if target.exists():
        try:
            with open(target, encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
        except OSError as exc:
            return _skip(target, f"cannot read {target}: {exc.strerror}")
        if not first.startswith(MARKER):
            return _skip(target, f"{target} exists and was not written by tokend")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _inside(target.parent.resolve(), real_cwd):  # a link raced in
            return _skip(target, f"{target.parent} leads outside {cwd}")
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
        return _skip(target, f"cannot write in {target.parent}: {exc.strerror or exc}")
    return WriteResult(True, target)


def _skip(target: Path, why: str) -> WriteResult:
    log.warning("checkpoint not written: %s", why)
    return WriteResult(False, target, why)


def digest_session(store: Store, session_id: str, agent: str) -> SessionDigest | None:
    """Read the session's main transcript again and digest it."""
    paths = [Path(p) for p in store.session_files(session_id)]
    main = [p for p in paths if "subagents" not in p.parts] or paths
    if not main:
        return None
    try:
        with open(main[0], "rb") as handle:
            digest = digest_codex(handle) if agent == "codex" else digest_claude(handle)
    except OSError as exc:
        log.warning("checkpoint: cannot read %s: %s", main[0], exc.strerror)
        return None
    digest.session_id = digest.session_id or session_id
    return digest


def write_session_checkpoint(
    store: Store,
    session: SessionRow,
    settings: CheckpointSettings,
    reason: str,
    now: datetime,
    window: str = "",
) -> WriteResult | None:
    """Digest, render, write and record one session's checkpoint."""
    digest = digest_session(store, session.session_id, session.agent)
    if digest is None:
        return None
    cwd = digest.cwd or session.project
    target = target_path(settings.path, cwd, session.session_id)
    numbers = CheckpointNumbers(cost=session.cost, requests=session.requests, window=window)
    result = write_checkpoint(target, Path(cwd), render(digest, numbers, reason, now))
    if result.written:
        store.record_checkpoint(
            session_id=session.session_id, agent=session.agent, path=str(target), cwd=cwd,
            reason=reason, written_ms=int(now.timestamp() * 1000),
        )
    return result


def due_checkpoints(
    store: Store, snapshot: Snapshot, settings: CheckpointSettings, now: datetime,
    context_windows: dict[str, int] | None = None,
) -> list[tuple[SessionRow, str, str]]:
    """Live sessions that should be checkpointed now: ``(session, reason, window text)``.

    Triggers: the agent's 5-hour or weekly window at or above a checkpoint threshold
    (or the wall hit), or the session itself past ``max_turns`` requests, ``max_cost``
    dollars. A session is rewritten at most every ``min_interval_minutes``.
    """
    if not settings.enabled:
        return []
    now_ms = int(now.timestamp() * 1000)
    written = {c.session_id: c.written_ms for c in store.checkpoints()}
    lowest = min(settings.thresholds) if settings.thresholds else 101
    out: list[tuple[SessionRow, str, str]] = []
    for session in store.active_sessions(now_ms - int(ACTIVE.total_seconds() * 1000)):
        if session.last_ms < now_ms - ACTIVE.total_seconds() * 1000:
            continue
        last = written.get(session.session_id)
        if last is not None and now_ms - last < settings.min_interval_minutes * 60_000:
            continue
        reason, window = _window_reason(snapshot, session, lowest)
        if not reason and session.requests >= settings.max_turns:
            reason = f"the session reached {session.requests} requests"
        if not reason and session.cost is not None and session.cost >= settings.max_cost:
            reason = f"the session cost ${session.cost:.2f}"
        if reason:
            out.append((session, reason, window))
    return out


def _window_reason(snapshot: Snapshot, session: SessionRow, lowest: int) -> tuple[str, str]:
    names = {"5h": "5-hour window", "weekly": "weekly window", "daily": "daily quota"}
    for agent in snapshot.agents:
        if agent.agent != session.agent or agent.root != session.root:
            continue
        for w in sorted(agent.windows, key=lambda w: -(w.percent or 0)):
            if w.percent is None or w.percent < lowest:
                continue
            reset = f", resets {w.resets_at:%H:%M} UTC" if w.resets_at else ""
            text = f"{names.get(w.kind, w.kind)} {w.percent:.0f} % ({w.provenance}){reset}"
            return f"the {agent.agent} {text.split(' (')[0]} is used", text
    return "", ""


def announce(store: Store, cwd: str, now: datetime) -> str | None:
    """The hook's message about the latest unread checkpoint of ``cwd``, at most once."""
    for row in store.checkpoints(cwd):
        if row.announced_ms is not None:
            return None
        if not Path(row.path).is_file():
            continue
        store.mark_announced(row.session_id, int(now.timestamp() * 1000))
        when = datetime.fromtimestamp(row.written_ms / 1000, tz=timezone.utc)
        return (
            f"tokend saved a checkpoint of an earlier {row.agent} session in this folder "
            f"({when:%Y-%m-%d %H:%M} UTC, because {row.reason}): {row.path}. "
            "Read it to pick up where that session stopped."
        )
    return None


def checkpoints_for(store: Store, cwd: str | None) -> Sequence[tuple[str, str, str, datetime]]:
    """``(session, agent, path, written)`` rows for ``tokend checkpoint list``."""
    return [
        (r.session_id, r.agent, r.path, datetime.fromtimestamp(r.written_ms / 1000, timezone.utc))
        for r in store.checkpoints(cwd)
    ]

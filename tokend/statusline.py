"""``tokend statusline``: one line for a shell prompt or Claude Code, in milliseconds.

This module is the hot path of every prompt, so it imports the standard library only
and nothing heavy of it (no pydantic, watchdog, PIL, apscheduler, sqlite3, argparse,
subprocess unless ``--chain`` asks for it). It never computes usage: the daemon
publishes ``statusline.txt`` (the default line) and ``status.json`` (the Snapshot)
into the runtime dir, and this module only reads them, checks that they are fresh and
that the daemon lives, and prints. The daemon calls :func:`render` to build
``statusline.txt`` so both paths print the same words.

Claude Code pipes its statusLine JSON on stdin. Its ``rate_limits`` are the only
official Claude figures there are, so they are handed to the daemon as a small JSON
file in the spool dir (atomic, never blocks on the daemon) and the line is printed for
that session.
"""

# ruff: noqa: PTH103, PTH105, PTH111, PTH116, PTH118
# (os.path instead of pathlib on purpose: importing pathlib costs more than this module)
from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import (7 ms cold): more than this module
    from typing import Any

__all__ = [
    "DEFAULT_FORMAT",
    "FIELDS",
    "STALE_AFTER_SECONDS",
    "claude_line",
    "main",
    "render",
    "runtime_dir",
    "spool_claude",
]

STALE_AFTER_SECONDS = 150.0
"""The daemon republishes at least every minute (the reset-countdown tick), so a file
older than this means a hung daemon: its numbers are not shown as fresh."""

DEFAULT_FORMAT = "{agent} 5h {5h} {reset} wk {weekly}"
FIELDS = (
    "agent", "account", "5h", "weekly", "reset", "weekly_reset", "runs_out", "runs-out",
    "burn", "provenance", "weekly_provenance", "cost",
)
_SEP = " · "
_NOT_RUNNING = "tokend: not running"
_NO_STATUS = "tokend: no status yet"

_USAGE = """\
usage: tokend statusline [--format FMT] [--agent NAME] [--color] [--chain CMD] [--join SEP]

Print the usage line the tokend daemon published (stale/not-running marked).
When stdin holds Claude Code's statusLine JSON, record its official rate limits and
print a line for that session.

  --format FMT   template per agent, fields: {agent} {account} {5h} {weekly} {reset}
                 {weekly_reset} {runs_out} {burn} {provenance} {weekly_provenance} {cost}
  --agent NAME   only this agent (claude, codex, gemini)
  --color        colour the percentages (ANSI)
  --chain CMD    also run CMD (your previous statusline) with the same stdin
  --join SEP     what joins CMD's output and ours (default " | ")
"""


# -- where the files are ----------------------------------------------------------


def runtime_dir(env: Any = None) -> str:
    """The runtime dir exactly as :class:`tokend.paths.Paths` computes it.

    Duplicated on purpose: importing ``tokend.paths`` pulls ``dataclasses`` and
    ``pathlib`` in, which is most of this command's budget. A unit test keeps the two
    in step. ``platformdirs`` is imported only when neither variable is set.
    """
    env = os.environ if env is None else env
    home = env.get("TOKEND_HOME")
    if home:
        return os.path.join(os.path.realpath(os.path.expanduser(home)), "run")
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "tokend")
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("tokend"), "run")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _daemon_pid(rundir: str) -> int | None:
    """The pid written into the lock file, if that process still lives."""
    text = _read(os.path.join(rundir, "tokend.lock"))
    try:
        pid = int((text or "").split()[0])
    except (ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def _load_json(path: str) -> dict[str, Any] | None:
    text = _read(path)
    if not text:
        return None
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# -- formatting ---------------------------------------------------------------------


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m"


def _colour(text: str, percent: float | None, color: bool) -> str:
    if not color or percent is None:
        return text
    code = "32" if percent < 60 else "33" if percent < 80 else "31"
    return f"\033[{code}m{text}\033[0m"


def _percent(window: dict[str, Any] | None, color: bool) -> str:
    """``38%`` when official, ``~38%`` for an estimate, ``?`` when unknown (never 0 %)."""
    if not window:
        return "?"
    value = window.get("percent")
    if not isinstance(value, (int, float)):
        return "?"
    mark = "" if window.get("provenance") == "official" else "~"
    return _colour(f"{mark}{value:.0f}%", float(value), color)


def _window(agent: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for window in agent.get("windows") or ():
        if isinstance(window, dict) and window.get("kind") == kind:
            return window
    return None


def _until(window: dict[str, Any] | None, key: str, now: float) -> str:
    at = _parse_time((window or {}).get(key))
    return _duration(at - now) if at is not None and at > now else ""


def _fields(agent: dict[str, Any], now: float, color: bool) -> dict[str, str]:
    five = _window(agent, "5h")
    week = _window(agent, "weekly")
    burn = ""
    if five:
        usd = five.get("burn_usd_per_hour")
        tpm = five.get("burn_tokens_per_min") or 0
        if isinstance(usd, (int, float)) and usd > 0:
            burn = f"${usd:.2f}/h"
        elif isinstance(tpm, (int, float)) and tpm > 0:
            burn = f"{tpm / 1000:.1f}k tok/min"
    cost = (five or {}).get("used_cost")
    runs_out = _until(five, "runs_out_at", now)
    return {
        "agent": str(agent.get("agent", "")),
        "account": str(agent.get("account", "")),
        "5h": _percent(five, color),
        "weekly": _percent(week, color),
        "reset": _until(five, "resets_at", now),
        "weekly_reset": _until(week, "resets_at", now),
        "runs_out": runs_out,
        "runs-out": runs_out,
        "burn": burn,
        "provenance": str((five or {}).get("provenance", "unknown")),
        "weekly_provenance": str((week or {}).get("provenance", "unknown")),
        "cost": f"${cost:.2f}" if isinstance(cost, (int, float)) else "",
    }


def _fill(template: str, values: dict[str, str]) -> str:
    """``{name}`` substitution without ``str.format``: field names such as ``5h`` and
    ``runs-out`` are not valid there, and a stray brace must not raise."""
    out: list[str] = []
    i = 0
    while i < len(template):
        start = template.find("{", i)
        if start < 0:
            out.append(template[i:])
            break
        end = template.find("}", start)
        if end < 0:
            out.append(template[i:])
            break
        out.append(template[i:start])
        name = template[start + 1 : end]
        out.append(values.get(name, template[start : end + 1]))
        i = end + 1
    return " ".join("".join(out).split())


def _other_windows(name: str, agent: dict[str, Any], color: bool) -> str:
    """``gemini daily ~12%``: an agent's windows by their own kind."""
    parts = [name]
    for window in agent.get("windows") or ():
        if isinstance(window, dict):
            parts.append(f"{window.get('kind', '?')} {_percent(window, color)}")
    return " ".join(parts)


def _shown(agent: dict[str, Any]) -> bool:
    """An agent is worth a segment when it was found and has a window with data."""
    if agent.get("found") is False:
        return False
    for window in agent.get("windows") or ():
        if isinstance(window, dict) and (
            window.get("percent") is not None or window.get("used_tokens")
        ):
            return True
    return False


def render(
    data: dict[str, Any],
    fmt: str | None = None,
    now: float | None = None,
    *,
    color: bool = False,
    agent: str | None = None,
) -> str:
    """One line from a published snapshot dict (``Snapshot.to_dict()``).

    Pure apart from reading the clock when ``now`` is not given; the daemon uses it to
    write ``statusline.txt``.
    """
    now = time.time() if now is None else now
    template = fmt or DEFAULT_FORMAT
    entries = [
        e for e in data.get("agents") or ()
        if isinstance(e, dict) and (e.get("agent") == agent if agent else _shown(e))
    ]
    names = [e.get("agent") for e in entries]
    segments = []
    for entry in entries:
        values = _fields(entry, now, color)
        if names.count(entry.get("agent")) > 1:  # two accounts of one agent: say which
            values["agent"] = f"{values['agent']}({values['account']})"
        if fmt is None and values["reset"]:
            values["reset"] = f"↻{values['reset']}"
        if fmt is None and not (_window(entry, "5h") or _window(entry, "weekly")):
            # Gemini has one daily request quota: show the windows it has, not "5h ?".
            segments.append(_other_windows(values["agent"], entry, color))
            continue
        segments.append(_fill(template, values))
    return _SEP.join(segments) if segments else "tokend: no usage yet"


# -- Claude Code statusLine stdin -----------------------------------------------------


def _is_claude(payload: object) -> bool:
    return isinstance(payload, dict) and (
        "session_id" in payload and ("model" in payload or "rate_limits" in payload)
    )


def spool_claude(payload: dict[str, Any], rundir: str, now: float | None = None) -> str | None:
    """Hand Claude's official rate limits to the daemon as one spool file.

    One file per session, replaced atomically: the daemon reads and deletes it, and if
    the daemon is down the spool holds at most the latest figure of each session.
    Only ``session_id``, ``transcript_path`` (to find the account) and ``rate_limits``
    are kept; nothing of the conversation. Returns the path written, or ``None``.
    """
    limits = payload.get("rate_limits")
    if not isinstance(limits, dict) or not limits:
        return None
    import json

    now = time.time() if now is None else now
    session = str(payload.get("session_id") or "unknown")
    safe = "".join(c for c in session if c.isalnum() or c in "-_")[:80] or "unknown"
    spool = os.path.join(rundir, "spool")
    record = {
        "version": 1,
        "kind": "claude_statusline",
        "observed_at": now,
        "payload": {
            "session_id": payload.get("session_id"),
            "transcript_path": payload.get("transcript_path"),
            "rate_limits": limits,
        },
    }
    try:
        os.makedirs(spool, mode=0o700, exist_ok=True)
        final = os.path.join(spool, f"claude-{safe}.json")
        tmp = os.path.join(spool, f".claude-{safe}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, separators=(",", ":"))
        os.replace(tmp, final)
    except OSError:
        return None
    return final


def claude_line(
    payload: dict[str, Any],
    snapshot: dict[str, Any] | None,
    now: float | None = None,
    *,
    color: bool = False,
) -> str:
    """Model, session cost, context %, then the 5-hour and weekly windows.

    Official figures from stdin win; without them (API-key users, before the first
    response) the daemon's Claude windows are shown, marked ``~`` when estimated.
    """
    now = time.time() if now is None else now
    parts: list[str] = []
    model = payload.get("model")
    if isinstance(model, dict) and model.get("display_name"):
        parts.append(str(model["display_name"]))
    cost = (payload.get("cost") or {}).get("total_cost_usd") if isinstance(
        payload.get("cost"), dict
    ) else None
    if isinstance(cost, (int, float)):
        parts.append(f"${cost:.2f}")
    ctx = payload.get("context_window")
    if isinstance(ctx, dict) and isinstance(ctx.get("used_percentage"), (int, float)):
        parts.append(f"ctx {ctx['used_percentage']:.0f}%")
    limits = payload.get("rate_limits") if isinstance(payload.get("rate_limits"), dict) else {}
    shown = False
    for name, label in (("five_hour", "5h"), ("seven_day", "wk")):
        window = limits.get(name) if isinstance(limits, dict) else None
        if not isinstance(window, dict):
            continue
        used = window.get("used_percentage")
        if not isinstance(used, (int, float)) or isinstance(used, bool):
            continue
        text = f"{label} " + _colour(f"{used:.0f}%", float(used), color)
        resets = window.get("resets_at")
        if name == "five_hour" and isinstance(resets, (int, float)) and resets > now:
            text += f" ↻{_duration(resets - now)}"
        parts.append(text)
        shown = True
    if not shown and snapshot:
        for entry in snapshot.get("agents") or ():
            if isinstance(entry, dict) and entry.get("agent") == "claude" and _shown(entry):
                values = _fields(entry, now, color)
                reset = f" ↻{values['reset']}" if values["reset"] else ""
                parts.append(f"5h {values['5h']}{reset}")
                parts.append(f"wk {values['weekly']}")
                break
    return _SEP.join(parts) if parts else "claude"


def _read_stdin(limit: float = 0.25) -> bytes:
    """What is on stdin, if it is not a terminal; waits at most ``limit`` seconds.

    A shell prompt may hand a pipe that never closes: the deadline keeps the prompt
    responsive whatever the caller did with stdin.
    """
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return b""
        fd = sys.stdin.fileno()
    except (OSError, ValueError):
        return b""
    import select

    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            ready, _, _ = select.select([fd], [], [], remaining)
        except (OSError, ValueError):
            break
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        if sum(map(len, chunks)) > (4 << 20):
            break
    return b"".join(chunks)


def _chain(command: str, stdin: bytes) -> str:
    import subprocess

    try:
        done = subprocess.run(
            command, shell=True, input=stdin, capture_output=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.decode("utf-8", "replace").rstrip("\n")


# -- the command ----------------------------------------------------------------------


class _Args:
    fmt: str | None = None
    agent: str | None = None
    color: bool = False
    chain: str | None = None
    join: str = " | "


def _parse(argv: list[str]) -> _Args | str:
    """Hand-rolled: ``argparse`` would cost more than the rest of this command."""
    args = _Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if arg in ("-h", "--help"):
            return "help"
        if arg in ("--color", "--colour"):
            args.color = True
            i += 1
            continue
        if arg in ("--no-color", "--no-colour"):
            args.color = False
            i += 1
            continue
        if name in ("--format", "--agent", "--chain", "--join"):
            if eq:
                value = inline
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            else:
                return f"{name} needs a value"
            if name == "--format":
                args.fmt = value
            elif name == "--agent":
                args.agent = value
            elif name == "--chain":
                args.chain = value
            else:
                args.join = value
            i += 1
            continue
        return f"unknown argument {arg!r}"
    return args


def _status_line(args: _Args, rundir: str, now: float) -> str:
    pid = _daemon_pid(rundir)
    if pid is None:
        return _NOT_RUNNING
    if args.fmt is None and args.agent is None and not args.color:
        path = os.path.join(rundir, "statusline.txt")
        try:
            age = now - os.stat(path).st_mtime
        except OSError:
            return _NO_STATUS
        text = (_read(path) or "").strip()
        if not text:
            return _NO_STATUS
        return f"stale {_duration(age)}{_SEP}{text}" if age > STALE_AFTER_SECONDS else text
    data = _load_json(os.path.join(rundir, "status.json"))
    if data is None:
        return _NO_STATUS
    line = render(data, args.fmt, now, color=args.color, agent=args.agent)
    generated = _parse_time(data.get("generated_at"))
    if generated is None or now - generated > STALE_AFTER_SECONDS:
        ago = _duration(now - generated) if generated is not None else "?"
        return f"stale {ago}{_SEP}{line}"
    return line


def main(argv: list[str] | None = None) -> int:
    """Print one line; exit 0 whatever the state so a prompt never breaks."""
    parsed = _parse(list(sys.argv[1:] if argv is None else argv))
    if parsed == "help":
        sys.stdout.write(_USAGE)
        return 0
    if isinstance(parsed, str):
        sys.stderr.write(f"tokend statusline: {parsed}\n{_USAGE}")
        return 2
    args = parsed
    now = time.time()
    rundir = runtime_dir()
    raw = _read_stdin()
    line = ""
    payload: object = None
    if raw.lstrip().startswith(b"{"):
        import json

        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
    if isinstance(payload, dict) and _is_claude(payload):
        spool_claude(payload, rundir, now)
        snapshot = _load_json(os.path.join(rundir, "status.json"))
        fresh = (
            snapshot is not None
            and _daemon_pid(rundir) is not None
            and now - (_parse_time(snapshot.get("generated_at")) or 0) <= STALE_AFTER_SECONDS
        )
        line = claude_line(payload, snapshot if fresh else None, now, color=args.color)
    else:
        line = _status_line(args, rundir, now)
    if args.chain:
        theirs = _chain(args.chain, raw)
        if theirs:
            line = f"{theirs}{args.join}{line}" if "\n" not in theirs else f"{theirs}\n{line}"
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return 0

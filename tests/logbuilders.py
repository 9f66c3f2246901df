"""Builders for log lines in the agents' real formats, for tests that write logs.

They produce the shapes of /work/shared/reference/log-formats.md (Claude Code
assistant lines, Codex rollout lines) with only the fields tokend reads plus the
usual envelope, so a test reads like the scenario it sets up.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def claude_assistant(
    ts: datetime,
    message_id: str,
    request_id: str | None = "req_1",
    *,
    input_tokens: int = 10,
    output_tokens: int = 100,
    cache_read: int = 0,
    cache_write: int = 0,
    model: str = "claude-sonnet-4-5-20250929",
    session: str = "sess-1",
    cwd: str = "/home/dev/acme-api",
    sidechain: bool = False,
    tools: tuple[str, ...] = (),
) -> str:
    """One ``assistant`` line of Claude Code's transcript, as a compact JSON string."""
    content: list[dict[str, Any]] = [{"type": "text", "text": "(response text)"}]
    content += [{"type": "tool_use", "id": f"toolu_{n}", "name": n, "input": {}} for n in tools]
    line: dict[str, Any] = {
        "type": "assistant",
        "uuid": f"u-{message_id}-{output_tokens}",
        "parentUuid": None,
        "sessionId": session,
        "timestamp": iso(ts),
        "cwd": cwd,
        "isSidechain": sidechain,
        "version": "2.1.90",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
                "output_tokens": output_tokens,
            },
        },
    }
    if request_id is not None:
        line["requestId"] = request_id
    return json.dumps(line, separators=(",", ":"))


def claude_user(ts: datetime, text: str = "please fix the bug", session: str = "sess-1") -> str:
    return json.dumps(
        {"type": "user", "uuid": "u-user", "sessionId": session, "timestamp": iso(ts),
         "cwd": "/home/dev/acme-api", "message": {"role": "user", "content": text}},
        separators=(",", ":"),
    )


def append(path: Path, *lines: str, newline: bool = True) -> None:
    """Append lines the way the agents do: whole lines, each ending in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + ("\n" if newline else ""))

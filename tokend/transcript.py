"""Where a session stands, read from the agent's own transcript at checkpoint time.

The store never keeps text; a checkpoint needs some (the goal, the last prompts,
the files touched). So this module re-reads the transcript file when a checkpoint
is written, keeps only what a resuming session needs, and lets it go. Pure: lines
in, a :class:`SessionDigest` out.

Claude Code: real user prompts are ``user`` lines whose content is text (not tool
results, not ``isMeta`` injections, not compaction summaries, not slash-command
wrappers); tool calls are ``tool_use`` blocks (``Edit``/``Write``/``MultiEdit``/
``NotebookEdit`` modify a file, ``Read`` reads one, ``Bash`` runs a command,
``TodoWrite`` carries the todo list). Codex: ``user_message`` events are prompts,
``exec_command``/``shell`` calls are commands, ``apply_patch`` names the files it
touches, ``update_plan`` is the todo list, ``agent_message`` the assistant's words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SessionDigest", "digest_claude", "digest_codex"]

_MODIFY_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path",
                 "NotebookEdit": "notebook_path"}
_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+)$", re.MULTILINE)
_WRAPPER = re.compile(r"^\s*<(command-name|command-message|local-command-stdout|"
                      r"local-command-stderr|user-prompt-submit-hook|system-reminder)>")


@dataclass
class SessionDigest:
    """What a fresh session needs to continue this one; no numbers about cost here."""

    agent: str
    session_id: str = ""
    cwd: str = ""
    model: str = ""
    prompts: list[str] = field(default_factory=list)
    files_modified: list[str] = field(default_factory=list)
    files_read: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    todos: list[tuple[str, str]] = field(default_factory=list)
    last_assistant: str = ""
    compactions: int = 0
    context_tokens: int | None = None
    context_window: int | None = None

    @property
    def goal(self) -> str:
        return self.prompts[0] if self.prompts else ""

    @property
    def turns(self) -> int:
        return len(self.prompts)


def _remember(items: list[str], value: str) -> None:
    """Keep each item once, most recent last."""
    if not value:
        return
    if value in items:
        items.remove(value)
    items.append(value)


def _loads(line: bytes | str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text", "") for b in content if isinstance(b, dict)
                 and b.get("type") in ("text", "input_text", "output_text")]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def digest_claude(lines: Iterable[bytes | str]) -> SessionDigest:
    """Digest a Claude Code main transcript (``<session>.jsonl``)."""
    d = SessionDigest(agent="claude")
    for raw in lines:
        line = _loads(raw)
        if line is None:
            continue
        kind = line.get("type")
        d.session_id = d.session_id or str(line.get("sessionId") or "")
        if isinstance(line.get("cwd"), str):
            d.cwd = line["cwd"]
        if kind == "system" and line.get("subtype") == "compact_boundary":
            d.compactions += 1
            d.context_tokens = None  # the last usage no longer describes the context
            continue
        message = line.get("message")
        if not isinstance(message, dict):
            continue
        if kind == "user":
            _claude_user(d, line, message)
        elif kind == "assistant" and message.get("model") != "<synthetic>":
            _claude_assistant(d, message)
    return d


def _claude_user(d: SessionDigest, line: dict[str, Any], message: dict[str, Any]) -> None:
    if line.get("isMeta") or line.get("isCompactSummary") or line.get("isSidechain"):
        return
    content = message.get("content")
    if isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    ):
        return
    text = _text_of(content).strip()
    if text and not _WRAPPER.match(text):
        d.prompts.append(text)


def _claude_assistant(d: SessionDigest, message: dict[str, Any]) -> None:
    d.model = str(message.get("model") or d.model)
    usage = message.get("usage")
    if isinstance(usage, dict):
        d.context_tokens = sum(
            int(usage.get(k) or 0)
            for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )
    content = message.get("content")
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            d.last_assistant = block["text"].strip() or d.last_assistant
        elif block.get("type") == "tool_use":
            _claude_tool(d, str(block.get("name")), block.get("input"))


def _claude_tool(d: SessionDigest, name: str, args: Any) -> None:
    if not isinstance(args, dict):
        return
    if name in _MODIFY_TOOLS:
        _remember(d.files_modified, str(args.get(_MODIFY_TOOLS[name]) or ""))
    elif name == "Read":
        _remember(d.files_read, str(args.get("file_path") or ""))
    elif name == "Bash":
        _remember(d.commands, str(args.get("command") or "").strip())
    elif name == "TodoWrite" and isinstance(args.get("todos"), list):
        d.todos = [
            (str(t.get("status", "")), str(t.get("content", "")))
            for t in args["todos"] if isinstance(t, dict)
        ]


def digest_codex(lines: Iterable[bytes | str]) -> SessionDigest:
    """Digest a Codex CLI rollout (``rollout-*.jsonl``)."""
    d = SessionDigest(agent="codex")
    for raw in lines:
        line = _loads(raw)
        if line is None:
            continue
        payload = line.get("payload")
        if not isinstance(payload, dict):
            continue
        kind = line.get("type")
        if kind == "session_meta":
            d.session_id = str(payload.get("id") or d.session_id)
            d.cwd = str(payload.get("cwd") or d.cwd)
        elif kind == "turn_context":
            d.model = str(payload.get("model") or d.model)
            d.cwd = str(payload.get("cwd") or d.cwd)
        elif kind == "compacted":
            d.compactions += 1
        elif kind == "event_msg":
            _codex_event(d, payload)
        elif kind == "response_item":
            _codex_item(d, payload)
    return d


def _codex_event(d: SessionDigest, payload: dict[str, Any]) -> None:
    kind = payload.get("type")
    if kind == "user_message" and isinstance(payload.get("message"), str):
        text = payload["message"].strip()
        if text:
            d.prompts.append(text)
    elif kind == "agent_message" and isinstance(payload.get("message"), str):
        d.last_assistant = payload["message"].strip() or d.last_assistant
    elif kind == "token_count" and isinstance(payload.get("info"), dict):
        info = payload["info"]
        last = info.get("last_token_usage")
        if isinstance(last, dict):
            d.context_tokens = int(last.get("input_tokens") or 0)
        if info.get("model_context_window"):
            d.context_window = int(info["model_context_window"])


def _codex_item(d: SessionDigest, payload: dict[str, Any]) -> None:
    kind = payload.get("type")
    if kind == "function_call":
        try:
            args = json.loads(payload.get("arguments") or "{}")
        except ValueError:
            return
        if not isinstance(args, dict):
            return
        name = payload.get("name")
        if name in ("exec_command", "shell", "container.exec", "local_shell"):
            command = args.get("cmd") or args.get("command")
            if isinstance(command, list):
                command = " ".join(str(c) for c in command)
                command = command.removeprefix("bash -lc ")
            _remember(d.commands, str(command or "").strip())
        elif name == "update_plan" and isinstance(args.get("plan"), list):
            d.todos = [
                (str(s.get("status", "")), str(s.get("step", "")))
                for s in args["plan"] if isinstance(s, dict)
            ]
    elif kind == "custom_tool_call" and payload.get("name") == "apply_patch":
        for path in _PATCH_FILE.findall(str(payload.get("input") or "")):
            _remember(d.files_modified, path.strip())
    elif kind == "local_shell_call":
        action = payload.get("action")
        if isinstance(action, dict) and isinstance(action.get("command"), list):
            _remember(d.commands, " ".join(str(c) for c in action["command"]))

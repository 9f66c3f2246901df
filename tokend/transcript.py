"""Where a session stands, read from the agent's own transcript at checkpoint time.

The store never keeps text; a checkpoint needs some (the goal, the last prompts,
the files touched). So this module re-reads the transcript file when a checkpoint
is written, keeps only what a resuming session needs, and lets it go. Pure: lines
in, a :class:`SessionDigest` out (no file system, no clock).

Claude Code (main transcript only: subagents report back through the main file's
tool results, and their own prompts are the parent's instructions, not the
user's): real user prompts are ``user`` lines whose content is text, not tool
results, not ``isMeta`` injections, not compaction summaries, not hook or
``!bash`` echoes; a slash command counts as its ``/name args``. Tool calls are
``tool_use`` blocks (``Edit``/``Write``/``MultiEdit``/``NotebookEdit`` modify a
file, ``Read`` reads one, ``Bash`` runs a command, ``TodoWrite`` carries the todo
list). ``<synthetic>`` lines (client-made errors) say nothing about the work.

Codex: ``event_msg/user_message`` events are prompts (``response_item`` user
messages only when a rollout has no such event, and never the injected
``<environment_context>``/``<user_instructions>`` blocks); ``exec_command``/
``shell`` calls are commands, ``apply_patch`` (tool call or heredoc in a shell
command) names the files it touches, ``cat``/``sed -n``/``head``… name files read,
``update_plan`` is the todo list, ``agent_message`` the assistant's words.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SessionDigest", "context_window_for", "digest_claude", "digest_codex"]

_MODIFY_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path",
                 "NotebookEdit": "notebook_path"}
_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+)$", re.MULTILINE)
_WRAPPER = re.compile(r"^\s*(?:<(?:command-message|command-args|local-command-stdout|"
                      r"local-command-stderr|local-command-caveat|bash-input|bash-stdout|"
                      r"bash-stderr|user-prompt-submit-hook|system-reminder|"
                      r"task-notification)>|\[Request interrupted by user)")
_COMMAND = re.compile(r"<command-name>\s*(/?[^<\s]+)\s*</command-name>")
_COMMAND_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.DOTALL)
_BOOKKEEPING_COMMANDS = frozenset({
    "/clear", "/compact", "/cost", "/model", "/status", "/help", "/login", "/logout",
    "/config", "/resume", "/context", "/usage", "/exit", "/statusline", "/hooks",
    "/permissions", "/memory", "/doctor", "/ide", "/vim", "/theme", "/rewind",
})
"""Slash commands that steer the client, not the work: never a goal."""
_CODEX_INJECTED = re.compile(r"^\s*<(environment_context|user_instructions|user_shell_command|"
                             r"turn_aborted)>|^\s*# AGENTS\.md instructions")
_CODEX_SHELLS = frozenset({"exec_command", "shell", "container.exec", "local_shell",
                           "shell_command"})
_READERS = frozenset({"cat", "head", "tail", "nl", "less", "more", "bat", "sed"})

_CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("claude-", 200_000),
    ("gpt-5", 272_000),
    ("gpt-4.1", 1_047_576),
    ("o3", 200_000),
    ("o4-mini", 200_000),
    ("codex-mini", 200_000),
    ("gemini-", 1_048_576),
)
"""Prefix -> context window in tokens, for the "context nearly full" trigger when the
log does not say (Codex writes ``model_context_window``; Claude Code does not)."""


def context_window_for(model: str, used: int | None = None) -> int | None:
    """The context window of ``model`` in tokens, ``None`` when unknown.

    Claude's 1M-token window is a request option that the transcript does not name,
    so a context already larger than 200k means the 1M window was on.
    """
    name = model.lower()
    for prefix, size in _CONTEXT_WINDOWS:
        if name.startswith(prefix):
            if prefix == "claude-" and ("[1m]" in name or (used or 0) > size):
                return 1_000_000
            return size
    return None


@dataclass
class SessionDigest:
    """What a fresh session needs to continue this one; cost figures come from the store."""

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
        """The first real prompt: what the session was started for."""
        return self.prompts[0] if self.prompts else ""

    @property
    def turns(self) -> int:
        """User turns (prompts), not API requests: what a user counts."""
        return len(self.prompts)


def _remember(items: list[str], value: str) -> None:
    """Keep each item once, most recent last (a file edited twice shows once, late)."""
    if not value:
        return
    if value in items:
        items.remove(value)
    items.append(value)


def _loads(line: bytes | str | dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(line, dict):
        return line
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
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


# -- Claude Code --------------------------------------------------------------------


def digest_claude(lines: Iterable[bytes | str | dict[str, Any]]) -> SessionDigest:
    """Digest a Claude Code transcript (``<session>.jsonl``).

    Sidechain lines (subagents, merged in by the caller in time order, or inline in
    old transcripts) add only the files they touched and the commands they ran:
    their prompts are the parent's instructions and their words are not the
    session's last message.
    """
    d = SessionDigest(agent="claude")
    for raw in lines:
        line = _loads(raw)
        if line is None:
            continue
        kind = line.get("type")
        if not d.session_id and isinstance(line.get("sessionId"), str):
            d.session_id = line["sessionId"]
        if isinstance(line.get("cwd"), str) and line["cwd"] and not line.get("isSidechain"):
            d.cwd = line["cwd"]
        if kind == "system" and line.get("subtype") == "compact_boundary":
            d.compactions += 1
            d.context_tokens = None  # the last usage no longer describes the context
            continue
        message = line.get("message")
        if not isinstance(message, dict):
            continue
        if line.get("isSidechain"):
            if kind == "assistant" and isinstance(message.get("content"), list):
                for block in message["content"]:
                    if isinstance(block, dict) and block.get("type") == "tool_use":
                        _claude_tool(d, str(block.get("name")), block.get("input"), side=True)
            continue
        if kind == "user":
            _claude_user(d, line, message)
        elif kind == "assistant" and message.get("model") != "<synthetic>":
            _claude_assistant(d, message)
    if d.model:
        d.context_window = context_window_for(d.model, d.context_tokens)
    return d


def _claude_user(d: SessionDigest, line: dict[str, Any], message: dict[str, Any]) -> None:
    if line.get("isMeta") or line.get("isCompactSummary") or line.get("isVisibleInTranscriptOnly"):
        return
    content = message.get("content")
    if isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    ):
        return
    text = _text_of(content).strip()
    command = _COMMAND.search(text)
    if command:
        name = command.group(1)
        if not name.startswith("/"):
            name = "/" + name
        if name in _BOOKKEEPING_COMMANDS:
            return
        args = _COMMAND_ARGS.search(text)
        text = f"{name} {args.group(1).strip() if args else ''}".strip()
    if text and not _WRAPPER.match(text):
        d.prompts.append(text)


def _claude_assistant(d: SessionDigest, message: dict[str, Any]) -> None:
    d.model = str(message.get("model") or d.model)
    usage = message.get("usage")
    if isinstance(usage, dict):
        d.context_tokens = sum(
            _int(usage.get(k))
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


def _claude_tool(d: SessionDigest, name: str, args: Any, side: bool = False) -> None:
    if not isinstance(args, dict):
        return
    if name in _MODIFY_TOOLS:
        _remember(d.files_modified, str(args.get(_MODIFY_TOOLS[name]) or ""))
    elif name == "Read":
        _remember(d.files_read, str(args.get("file_path") or ""))
    elif name == "Bash":
        _remember(d.commands, str(args.get("command") or "").strip())
    elif name == "TodoWrite" and not side and isinstance(args.get("todos"), list):
        d.todos = [
            (str(t.get("status", "")), str(t.get("content", "")))
            for t in args["todos"] if isinstance(t, dict)
        ]


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# -- Codex ----------------------------------------------------------------------------


def digest_codex(lines: Iterable[bytes | str]) -> SessionDigest:
    """Digest a Codex CLI rollout (``rollout-*.jsonl``)."""
    d = SessionDigest(agent="codex")
    fallback: list[str] = []  # prompts seen only as response items (old rollouts)
    for raw in lines:
        line = _loads(raw)
        if line is None:
            continue
        payload = line.get("payload")
        if not isinstance(payload, dict):
            continue
        kind = line.get("type")
        if kind == "session_meta":
            # A forked rollout repeats its parent's meta after its own: the first wins.
            d.session_id = d.session_id or str(payload.get("id") or "")
            d.cwd = d.cwd or str(payload.get("cwd") or "")
        elif kind == "turn_context":
            d.model = str(payload.get("model") or d.model)
            d.cwd = str(payload.get("cwd") or d.cwd)
        elif kind == "compacted":
            d.compactions += 1
            d.context_tokens = None
        elif kind == "event_msg":
            _codex_event(d, payload)
        elif kind == "response_item":
            _codex_item(d, payload, fallback)
    if not d.prompts:
        d.prompts = fallback
    if d.context_window is None and d.model:
        d.context_window = context_window_for(d.model)
    return d


def _codex_event(d: SessionDigest, payload: dict[str, Any]) -> None:
    kind = payload.get("type")
    if kind == "user_message" and isinstance(payload.get("message"), str):
        text = payload["message"].strip()
        if text and not _CODEX_INJECTED.match(text):
            d.prompts.append(text)
    elif kind == "agent_message" and isinstance(payload.get("message"), str):
        d.last_assistant = payload["message"].strip() or d.last_assistant
    elif kind == "task_started" and payload.get("model_context_window"):
        d.context_window = _int(payload["model_context_window"]) or d.context_window
    elif kind == "token_count" and isinstance(payload.get("info"), dict):
        info = payload["info"]
        last = info.get("last_token_usage")
        if isinstance(last, dict) and _int(last.get("input_tokens")):
            d.context_tokens = _int(last.get("input_tokens"))  # includes cached input
        if info.get("model_context_window"):
            d.context_window = _int(info["model_context_window"]) or d.context_window


def _codex_item(d: SessionDigest, payload: dict[str, Any], fallback: list[str]) -> None:
    kind = payload.get("type")
    if kind == "message" and payload.get("role") == "user":
        text = _text_of(payload.get("content")).strip()
        if text and not _CODEX_INJECTED.match(text):
            fallback.append(text)
    elif kind == "message" and payload.get("role") == "assistant":
        d.last_assistant = _text_of(payload.get("content")).strip() or d.last_assistant
    elif kind == "function_call":
        _codex_call(d, str(payload.get("name") or ""), payload.get("arguments"))
    elif kind == "custom_tool_call" and payload.get("name") == "apply_patch":
        _patched(d, str(payload.get("input") or ""))
    elif kind == "local_shell_call":
        action = payload.get("action")
        if isinstance(action, dict) and isinstance(action.get("command"), list):
            _codex_command(d, _argv_text(action["command"]))


def _codex_call(d: SessionDigest, name: str, arguments: Any) -> None:
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return
    if not isinstance(args, dict):
        return
    if name in _CODEX_SHELLS:
        command = args.get("cmd") or args.get("command")
        if isinstance(command, list):
            command = _argv_text(command)
        _codex_command(d, str(command or "").strip())
    elif name == "apply_patch":
        _patched(d, str(args.get("input") or args.get("patch") or ""))
    elif name == "update_plan" and isinstance(args.get("plan"), list):
        d.todos = [
            (str(s.get("status", "")), str(s.get("step", "")))
            for s in args["plan"] if isinstance(s, dict)
        ]


def _argv_text(argv: list[Any]) -> str:
    """``["bash", "-lc", "make test"]`` -> ``make test``; other argv joined as a shell line."""
    words = [str(w) for w in argv]
    if len(words) == 3 and words[1] in ("-lc", "-c") and words[0].rsplit("/", 1)[-1] in (
        "bash", "sh", "zsh"
    ):
        return words[2]
    return shlex.join(words)


def _patched(d: SessionDigest, patch: str) -> None:
    for path in _PATCH_FILE.findall(patch):
        _remember(d.files_modified, path.strip())


def _codex_command(d: SessionDigest, command: str) -> None:
    if not command:
        return
    if "*** Begin Patch" in command:
        # apply_patch through the shell: the heredoc is the patch, not a command to show
        _patched(d, command)
        return
    _remember(d.commands, command)
    for path in _files_read_by(command):
        _remember(d.files_read, path)


def _files_read_by(command: str) -> list[str]:
    """Files a simple ``cat``/``sed -n``/``head``/``nl`` command reads (no pipes parsed)."""
    first = re.split(r"\s*(?:\|\||&&|\||;)\s*", command, maxsplit=1)[0]
    try:
        words = shlex.split(first)
    except ValueError:
        return []
    if not words or words[0] not in _READERS:
        return []
    args = words[1:]
    if words[0] == "sed":
        if "-n" not in args and not any(a.startswith("-n") for a in args):
            return []  # sed without -n is an edit or a filter, not a read
        args = [a for a in args if not a.startswith("-")]
        args = args[1:]  # the script
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-n", "-c") and words[0] in ("head", "tail"):
            skip = True
            continue
        if not arg.startswith("-"):
            out.append(arg)
    return out

"""Digesting transcripts: which lines are prompts, files, commands, todos, context."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokend.transcript import _files_read_by, context_window_for, digest_claude, digest_codex

TS = "2026-09-15T09:00:00.000Z"


def user(content: Any, **extra: Any) -> str:
    return json.dumps({"type": "user", "sessionId": "s1", "cwd": "/p", "timestamp": TS,
                       "message": {"role": "user", "content": content}, **extra})


def assistant(*blocks: dict[str, Any], model: str = "claude-opus-4-6",
              usage: dict[str, int] | None = None, **extra: Any) -> str:
    return json.dumps({"type": "assistant", "sessionId": "s1", "cwd": "/p", "timestamp": TS,
                       "message": {"model": model, "id": "m", "role": "assistant",
                                   "content": list(blocks),
                                   "usage": usage or {"input_tokens": 1, "output_tokens": 1}},
                       **extra})


def tool(name: str, **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "t", "name": name, "input": args}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def test_claude_prompts_are_only_what_the_user_typed() -> None:
    d = digest_claude([
        user("<local-command-caveat>Caveat: ...</local-command-caveat>", isMeta=True),
        user("first real prompt"),
        user([{"type": "tool_result", "tool_use_id": "t", "content": "output"}]),
        user("<command-name>/clear</command-name><command-args></command-args>"),
        user("<local-command-stdout>cleared</local-command-stdout>"),
        user("<bash-input>ls</bash-input>"),
        user("[Request interrupted by user for tool use]"),
        user("Summary of the conversation so far", isCompactSummary=True),
        user("<command-name>/fix-issue</command-name><command-args>123</command-args>"),
        user([{"type": "text", "text": "with an image"}, {"type": "image", "source": {}}]),
        "not json at all",
        "[1, 2]",
    ])
    assert d.prompts == ["first real prompt", "/fix-issue 123", "with an image"]
    assert d.goal == "first real prompt" and d.turns == 3
    assert d.session_id == "s1" and d.cwd == "/p"


def test_claude_tools_and_todo_state() -> None:
    d = digest_claude([
        user("go"),
        assistant(tool("Read", file_path="/p/a.py"), tool("Edit", file_path="/p/a.py"),
                  tool("Bash", command="pytest -q"),
                  tool("TodoWrite", todos=[{"content": "x", "status": "in_progress"}])),
        assistant(tool("Read", file_path="/p/b.py"), tool("Read", file_path="/p/a.py"),
                  tool("MultiEdit", file_path="/p/c.py"),
                  tool("NotebookEdit", notebook_path="/p/n.ipynb"),
                  tool("Bash", command="pytest -q"), tool("Grep", pattern="x"),
                  tool("TodoWrite", todos=[{"content": "x", "status": "completed"},
                                           {"content": "y", "status": "pending"}]),
                  text("all done")),
    ])
    assert d.files_read == ["/p/b.py", "/p/a.py"]  # once each, most recent last
    assert d.files_modified == ["/p/a.py", "/p/c.py", "/p/n.ipynb"]
    assert d.commands == ["pytest -q"]
    assert d.todos == [("completed", "x"), ("pending", "y")]
    assert d.last_assistant == "all done"


def test_claude_sidechain_lines_add_work_but_not_words() -> None:
    side: dict[str, Any] = {"isSidechain": True, "agentId": "a1"}
    d = digest_claude([
        user("main goal"),
        assistant(text("delegating")),
        user("subagent instructions", **side),
        assistant(tool("Edit", file_path="/p/by-agent.py"), tool("Bash", command="make"),
                  tool("TodoWrite", todos=[{"content": "agent todo", "status": "pending"}]),
                  text("subagent report"), model="claude-haiku-4-5", **side),
    ])
    assert d.prompts == ["main goal"]
    assert d.files_modified == ["/p/by-agent.py"] and d.commands == ["make"]
    assert d.todos == []
    assert d.last_assistant == "delegating"
    assert d.model == "claude-opus-4-6"


def test_claude_context_after_compaction_and_synthetic_lines() -> None:
    big = {"input_tokens": 10, "cache_read_input_tokens": 150_000,
           "cache_creation_input_tokens": 5_000, "output_tokens": 10}
    compact = json.dumps({"type": "system", "subtype": "compact_boundary", "timestamp": TS})
    synthetic = assistant(text("You've hit your limit"), model="<synthetic>",
                          usage={"input_tokens": 0, "output_tokens": 0})
    d = digest_claude([user("go"), assistant(text("a"), usage=big), compact])
    assert d.context_tokens is None and d.compactions == 1
    d = digest_claude([user("go"), assistant(text("a"), usage=big), synthetic])
    assert d.context_tokens == 155_010 and d.context_window == 200_000
    assert d.last_assistant == "a" and d.model == "claude-opus-4-6"


def test_context_windows() -> None:
    assert context_window_for("claude-sonnet-4-5-20250929") == 200_000
    assert context_window_for("claude-sonnet-4-5-20250929", 350_000) == 1_000_000
    assert context_window_for("gpt-5.3-codex") == 272_000
    assert context_window_for("mystery-model") is None


def codex(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"timestamp": TS, "type": kind, "payload": payload})


def call(name: str, **args: Any) -> str:
    return codex("response_item", {"type": "function_call", "name": name,
                                   "arguments": json.dumps(args), "call_id": "c"})


def test_codex_prompts_fall_back_to_response_items_without_user_message_events() -> None:
    d = digest_codex([
        codex("session_meta", {"id": "t1", "cwd": "/p"}),
        codex("session_meta", {"id": "parent", "cwd": "/elsewhere"}),  # fork: parent's meta
        codex("response_item", {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>x</environment_context>"}]}),
        codex("response_item", {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "old style prompt"}]}),
        codex("response_item", {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "old style answer"}]}),
    ])
    assert d.session_id == "t1" and d.cwd == "/p"
    assert d.prompts == ["old style prompt"]
    assert d.last_assistant == "old style answer"


def test_codex_events_win_over_response_items() -> None:
    d = digest_codex([
        codex("response_item", {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "fix it"}]}),
        codex("event_msg", {"type": "user_message", "message": "fix it"}),
        codex("turn_context", {"cwd": "/p", "model": "gpt-5.3-codex"}),
    ])
    assert d.prompts == ["fix it"]
    assert d.context_window == 272_000


def test_codex_commands_patches_and_plan() -> None:
    d = digest_codex([
        call("shell", command=["bash", "-lc", "cargo test"]),
        call("shell", command=["git", "diff", "--stat", "a b"]),
        call("exec_command", cmd="cat README.md docs/a.md"),
        call("apply_patch", input="*** Begin Patch\n*** Delete File: old.rs\n*** End Patch"),
        call("update_plan", plan=[{"step": "one", "status": "completed"}]),
        codex("response_item", {"type": "local_shell_call", "action": {
            "type": "exec", "command": ["ls", "-la"]}}),
        call("exec_command", cmd="not json"),
        codex("response_item", {"type": "function_call", "name": "shell", "arguments": "{bad"}),
    ])
    assert d.commands == ["cargo test", "git diff --stat 'a b'", "cat README.md docs/a.md",
                          "ls -la", "not json"]
    assert d.files_read == ["README.md", "docs/a.md"]
    assert d.files_modified == ["old.rs"]
    assert d.todos == [("completed", "one")]


@pytest.mark.parametrize(("command", "files"), [
    ("sed -n 1,80p src/a.ts", ["src/a.ts"]),
    ("sed -i s/a/b/ src/a.ts", []),
    ("head -n 20 src/a.ts", ["src/a.ts"]),
    ("nl -ba src/a.ts | sed -n 1,5p", ["src/a.ts"]),
    ("cat a.txt && rm a.txt", ["a.txt"]),
    ("rg upload src", []),
    ("cat 'unterminated", []),
])
def test_files_read_by_simple_commands(command: str, files: list[str]) -> None:
    assert _files_read_by(command) == files

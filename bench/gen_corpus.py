"""Generate a synthetic agent-log corpus in the real on-disk formats, for benchmarks.

Writes ``<out>/claude/projects/...`` (Claude Code JSONL with responses streamed over
several lines, tool results, subagent files), ``<out>/codex/sessions/...`` (Codex
rollouts with session_meta, turn_context, token_count) and ``<out>/gemini/tmp/...``
(Gemini CLI JSONL with same-id re-appends). Bulk comes from tool results and
prompts, as in real logs, where most bytes are not usage.

``--quirks`` adds what real logs also contain and what tokend and ccusage count
differently on purpose (progress echoes of subagent usage, Codex token_count
re-emits, ``/btw`` sidechain replays, pretty JSON whitespace, a malformed line).
Without it the corpus is one on which both tools must agree to the token.

Deterministic for a given ``--seed``. Usage::

    python bench/gen_corpus.py --out bench/corpus --size-mb 400 [--quirks]
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

CLAUDE_MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
CODEX_MODELS = ("gpt-5-codex", "gpt-5.1-codex", "gpt-5")
GEMINI_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash")
WORDS = [
    "alpha", "beta", "gamma", "delta", "render", "parse", "token", "window", "budget",
    "daemon", "socket", "tray", "commit", "branch", "merge", "refactor", "module", "import",
    "return", "value", "error", "handler", "config", "schema",
]


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def tool_output_size(rng: random.Random) -> int:
    """Sizes of tool output as seen in real transcripts: mostly short, a long tail.

    Keeps the average line near 1 KB, like the real histories ccusage's benchmarks
    describe (321 MB in 360k lines).
    """
    roll = rng.random()
    if roll < 0.80:
        return rng.randint(100, 1500)
    if roll < 0.98:
        return rng.randint(1500, 8000)
    return rng.randint(8000, 60000)


def filler(rng: random.Random, size: int) -> str:
    """Text of about ``size`` characters (tool output, prompts)."""
    out: list[str] = []
    n = 0
    while n < size:
        word = rng.choice(WORDS)
        out.append(word)
        n += len(word) + 1
    return " ".join(out)


def compact(obj: object) -> str:
    """Agents write compact JSON (and ccusage's byte pre-filter relies on it)."""
    return json.dumps(obj, separators=(",", ":"))


def dumps(obj: object, rng: random.Random, quirks: bool) -> str:
    if quirks and rng.random() < 0.01:
        return json.dumps(obj, separators=(", ", ": "))  # a pretty-printed line
    return json.dumps(obj, separators=(",", ":"))


class Claude:
    def __init__(self, out: Path, rng: random.Random, quirks: bool) -> None:
        self.root = out / "claude" / "projects"
        self.rng = rng
        self.quirks = quirks

    def session(self, start: datetime, turns: int) -> int:
        """Write one session (and maybe a subagent); return the bytes written."""
        rng = self.rng
        project = f"/home/dev/{rng.choice(['acme-api', 'web-app', 'tokend', 'infra'])}"
        folder = self.root / project.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        path = folder / f"{sid}.jsonl"
        lines: list[str] = []
        ts = start
        parent = None
        model = rng.choice(CLAUDE_MODELS)
        base = {"sessionId": sid, "cwd": project, "version": "2.1.90", "gitBranch": "main",
                "userType": "external", "isSidechain": False}
        for turn in range(turns):
            ts += timedelta(seconds=rng.randint(20, 400))
            uid = str(uuid.UUID(int=rng.getrandbits(128)))
            lines.append(dumps({**base, "type": "user", "uuid": uid, "parentUuid": parent,
                                "timestamp": iso(ts), "message": {"role": "user",
                                "content": filler(rng, rng.randint(50, 1200))}}, rng, self.quirks))
            parent = uid
            for _ in range(rng.randint(1, 4)):
                ts += timedelta(seconds=rng.randint(2, 60))
                parent = self._response(lines, base, ts, parent, model)
                ts += timedelta(seconds=1)
                tid = str(uuid.UUID(int=rng.getrandbits(128)))
                lines.append(dumps({**base, "type": "user", "uuid": tid, "parentUuid": parent,
                                    "timestamp": iso(ts), "message": {"role": "user", "content": [
                                        {"type": "tool_result", "tool_use_id": "toolu_x",
                                         "content": filler(rng, tool_output_size(rng))}]},
                                    "toolUseResult": {"stdout": "", "stderr": ""}}, rng,
                                   self.quirks))
                parent = tid
            if turn == 2 and rng.random() < 0.5:
                self._subagent(folder, sid, project, ts, lines, base, parent)
        if self.quirks:
            lines.insert(len(lines) // 2, '{"type":"assistant","message":{"id":"msg_broken",')
        text = "\n".join(lines) + "\n"
        path.write_text(text, encoding="utf-8")
        return len(text)

    def _usage(self, out_tokens: int) -> dict[str, object]:
        rng = self.rng
        write = rng.randint(0, 8000)
        one_hour = write if rng.random() < 0.2 else 0
        return {"input_tokens": rng.randint(1, 50), "cache_creation_input_tokens": write,
                "cache_read_input_tokens": rng.randint(0, 150000),
                "cache_creation": {"ephemeral_5m_input_tokens": write - one_hour,
                                   "ephemeral_1h_input_tokens": one_hour},
                "output_tokens": out_tokens, "service_tier": "standard"}

    def _response(self, lines: list[str], base: dict[str, object], ts: datetime,
                  parent: str | None, model: str, sidechain: bool = False) -> str:
        rng = self.rng
        mid = f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}"
        rid = f"req_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}"
        usage = self._usage(rng.randint(10, 3000))
        blocks = [{"type": "thinking", "thinking": filler(rng, 300), "signature": "sig"},
                  {"type": "text", "text": filler(rng, rng.randint(50, 800))},
                  {"type": "tool_use", "id": "toolu_x", "name": rng.choice(
                      ["Bash", "Read", "Edit", "Grep"]), "input": {"command": "ls"}}]
        n = rng.randint(1, 3)
        uid = ""
        for i, block in enumerate(blocks[:n]):
            partial = dict(usage)
            if i < n - 1:
                partial["output_tokens"] = rng.randint(1, 10)  # streamed, not final yet
            uid = str(uuid.UUID(int=rng.getrandbits(128)))
            lines.append(dumps({**base, "type": "assistant", "uuid": uid, "parentUuid": parent,
                                "timestamp": iso(ts + timedelta(milliseconds=300 * i)),
                                "requestId": rid, "isSidechain": sidechain,
                                "message": {"model": model, "id": mid, "type": "message",
                                            "role": "assistant", "content": [block],
                                            "usage": partial}}, self.rng, self.quirks))
            parent = uid
        if self.quirks and not sidechain and rng.random() < 0.05:
            # a /btw sidechain replay: same message id, new request id
            lines.append(dumps({**base, "type": "assistant", "uuid": "btw", "isSidechain": True,
                                "timestamp": iso(ts), "requestId": rid + "b",
                                "message": {"model": model, "id": mid, "content": [],
                                            "usage": usage}}, self.rng, self.quirks))
        return uid

    def _subagent(self, folder: Path, sid: str, project: str, ts: datetime,
                  parent_lines: list[str], base: dict[str, object], parent: str | None) -> None:
        rng = self.rng
        agent = uuid.UUID(int=rng.getrandbits(128)).hex[:7]
        sub = folder / sid / "subagents"
        sub.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        sbase = {**base, "isSidechain": True, "agentId": agent}
        for _ in range(rng.randint(2, 6)):
            ts += timedelta(seconds=rng.randint(2, 30))
            before = len(lines)
            self._response(lines, sbase, ts, None, "claude-haiku-4-5-20251001", sidechain=True)
            if self.quirks:
                # the parent echoes the subagent's message in a progress line
                echo = json.loads(lines[before])
                parent_lines.append(dumps({**base, "type": "progress", "timestamp": iso(ts),
                                           "data": {"type": "agent_progress",
                                                    "message": echo}}, rng, self.quirks))
        (sub / f"agent-{agent}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


class Codex:
    def __init__(self, out: Path, rng: random.Random, quirks: bool) -> None:
        self.root = out / "codex" / "sessions"
        self.rng = rng
        self.quirks = quirks

    def session(self, start: datetime, turns: int) -> int:
        rng = self.rng
        tid = str(uuid.UUID(int=rng.getrandbits(128)))
        day = self.root / f"{start:%Y/%m/%d}"
        day.mkdir(parents=True, exist_ok=True)
        path = day / f"rollout-{start:%Y-%m-%dT%H-%M-%S}-{tid}.jsonl"
        cwd = f"/home/dev/{rng.choice(['acme-api', 'web-app', 'tokend'])}"
        ts = start
        lines = [compact({"timestamp": iso(ts), "type": "session_meta", "payload": {
            "id": tid, "timestamp": iso(ts), "cwd": cwd, "originator": "codex_cli_rs",
            "cli_version": "0.153.4", "source": "cli",
            "base_instructions": {"text": filler(rng, 20000)}}})]
        total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0,
                 "reasoning_output_tokens": 0, "total_tokens": 0}
        model = rng.choice(CODEX_MODELS)
        for _ in range(turns):
            ts += timedelta(seconds=rng.randint(20, 500))
            lines.append(compact({"timestamp": iso(ts), "type": "turn_context", "payload": {
                "turn_id": "t", "cwd": cwd, "model": model, "effort": "medium"}}))
            lines.append(compact({"timestamp": iso(ts), "type": "response_item", "payload": {
                "type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": filler(rng, rng.randint(100, 3000))}]}}))
            for _ in range(rng.randint(1, 4)):
                ts += timedelta(seconds=rng.randint(2, 60))
                output = filler(rng, tool_output_size(rng))
                lines.append(compact({"timestamp": iso(ts), "type": "response_item",
                                      "payload": {"type": "function_call_output",
                                                  "call_id": "c", "output": output}}))
                inp = rng.randint(2000, 120000)
                cached = rng.randint(0, inp)
                out = rng.randint(10, 4000)
                reasoning = rng.randint(0, out)
                last = {"input_tokens": inp, "cached_input_tokens": cached,
                        "output_tokens": out, "reasoning_output_tokens": reasoning,
                        "total_tokens": inp + out}
                total = {k: total[k] + last[k] for k in total}
                event = {"timestamp": iso(ts), "type": "event_msg", "payload": {
                    "type": "token_count", "info": {"total_token_usage": dict(total),
                                                    "last_token_usage": last,
                                                    "model_context_window": 272000},
                    "rate_limits": {"limit_id": "codex", "primary": {
                        "used_percent": 10.0, "window_minutes": 300,
                        "resets_at": int(ts.timestamp()) + 3600},
                        "secondary": {"used_percent": 5.0, "window_minutes": 10080,
                                      "resets_at": int(ts.timestamp()) + 86400}}}}
                lines.append(compact(event))
                if self.quirks and rng.random() < 0.3:
                    event["timestamp"] = iso(ts + timedelta(seconds=1))  # re-emit, same totals
                    lines.append(compact(event))
        text = "\n".join(lines) + "\n"
        path.write_text(text, encoding="utf-8")
        return len(text)


class Gemini:
    def __init__(self, out: Path, rng: random.Random, quirks: bool) -> None:
        self.root = out / "gemini" / ".gemini" / "tmp"
        self.rng = rng

    def session(self, start: datetime, turns: int) -> int:
        rng = self.rng
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        chats = self.root / rng.choice(["acme-api", "web-app"]) / "chats"
        chats.mkdir(parents=True, exist_ok=True)
        path = chats / f"session-{start:%Y-%m-%dT%H-%M}-{sid[:8]}.jsonl"
        ts = start
        lines = [compact({"sessionId": sid, "projectHash": "0" * 64, "startTime": iso(ts),
                             "lastUpdated": iso(ts), "kind": "main"})]
        for i in range(turns):
            ts += timedelta(seconds=rng.randint(20, 300))
            lines.append(compact({"id": f"u{i}", "timestamp": iso(ts), "type": "user",
                                     "content": [{"text": filler(rng, 500)}]}))
            msg = {"id": f"g{i}", "timestamp": iso(ts), "type": "gemini",
                   "content": [{"text": filler(rng, 1500)}], "model": rng.choice(GEMINI_MODELS),
                   "tokens": None}
            lines.append(compact(msg))
            inp = rng.randint(1000, 60000)
            msg["tokens"] = {"input": inp, "output": rng.randint(10, 2000),
                             "cached": rng.randint(0, inp), "thoughts": rng.randint(0, 500),
                             "tool": 0, "total": 0}
            lines.append(compact(msg))
            lines.append(compact({"$set": {"lastUpdated": iso(ts)}}))
        text = "\n".join(lines) + "\n"
        path.write_text(text, encoding="utf-8")
        return len(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size-mb", type=float, default=50.0)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quirks", action="store_true")
    ap.add_argument("--agents", default="claude,codex,gemini")
    ap.add_argument("--end", default="2026-11-20T12:00:00+00:00",
                    help="newest session start (fixed so runs compare)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    agents = args.agents.split(",")
    makers = {
        "claude": Claude(args.out, rng, args.quirks),
        "codex": Codex(args.out, rng, args.quirks),
        "gemini": Gemini(args.out, rng, args.quirks),
    }
    weights = {"claude": 0.6, "codex": 0.3, "gemini": 0.1}
    end = datetime.fromisoformat(args.end).astimezone(timezone.utc)
    target = args.size_mb * 1e6
    written = 0
    for agent in agents:
        share = target * weights[agent] / sum(weights[a] for a in agents)
        goal = written + share
        while written < goal:
            start = end - timedelta(minutes=rng.randint(0, args.days * 24 * 60))
            written += makers[agent].session(start, rng.randint(3, 30))
    total = sum(p.stat().st_size for p in args.out.rglob("*.json*"))
    print(f"wrote {total / 1e6:.1f} MB under {args.out}")


if __name__ == "__main__":
    main()

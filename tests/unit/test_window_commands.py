"""``tokend status``, ``tokend blocks`` and ``tokend config`` with a fake home and clock."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tokend.commands import blocks as blocks_cmd
from tokend.commands import config as config_cmd
from tokend.commands import status as status_cmd
from tokend.config import Settings, load_settings
from tokend.context import Context
from tokend.errors import TokendError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def parse(register: Register, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def make_ctx(tmp: Path, now: datetime = NOW) -> Context:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"TOKEND_HOME": str(tmp / "tokend"), "HOME": str(home),
           "CLAUDE_CONFIG_DIR": str(tmp / "claude")}
    return Context(env=env, home=home, clock=lambda: now)


def claude_line(at: datetime, n: int, tokens: int = 1000, model: str = "claude-sonnet-4-5",
                speed: str | None = None) -> str:
    usage: dict[str, object] = {
        "input_tokens": tokens // 2, "output_tokens": tokens // 4,
        "cache_creation_input_tokens": tokens // 8,
        "cache_read_input_tokens": tokens - tokens // 2 - tokens // 4 - tokens // 8,
    }
    if speed:
        usage["speed"] = speed
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return json.dumps({
        "type": "assistant", "timestamp": stamp, "sessionId": "sess-1", "cwd": "/home/dev/app",
        "requestId": f"req_{n}", "version": "2.0.14", "uuid": f"u{n}",
        "message": {"id": f"msg_{n}", "role": "assistant", "model": model, "type": "message",
                    "content": [{"type": "text", "text": "ok"}], "usage": usage},
    }, separators=(",", ":"))


def write_claude(tmp: Path, lines: list[str]) -> None:
    folder = tmp / "claude" / "projects" / "-home-dev-app"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sess-1.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- status ------------------------------------------------------------------------------


def test_status_without_data_says_so_and_lists_the_roots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = make_ctx(tmp_path)
    assert status_cmd.run(parse(status_cmd.register, ["status"]), ctx) == 0
    out = capsys.readouterr().out
    assert "No agent usage recorded yet" in out
    assert str(tmp_path / "claude" / "projects") in out
    assert str(tmp_path / "home" / ".codex") in out
    assert "0%" not in out and "0 %" not in out.replace("as 0 %", "")


def test_status_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_claude(tmp_path, [
        claude_line(NOW - timedelta(minutes=50), 1),
        claude_line(NOW - timedelta(minutes=10), 2, tokens=3000),
    ])
    (tmp_path / "tokend" / "config").mkdir(parents=True)
    (tmp_path / "tokend" / "config" / "config.toml").write_text(
        "[claude]\nfive_hour_tokens = 10000\n", encoding="utf-8")
    ctx = make_ctx(tmp_path)
    assert status_cmd.run(parse(status_cmd.register, ["status"]), ctx) == 0
    out = capsys.readouterr().out
    daemon, header, first = out.splitlines()[:3]
    assert daemon == "daemon: not running (start it with 'tokend start')"
    assert header.split()[:3] == ["AGENT", "WINDOW", "USED"]
    assert first.startswith("claude") and "5-hour" in first
    assert "40%" in first and "plan" in first
    assert "(in 3 h 30 m)" in first  # 11:40 floors to an 11:00-16:00 block
    assert "100/min" in first and "runs out" in first and first.rstrip().endswith("+10")
    assert status_cmd.run(parse(status_cmd.register, ["status", "--json", "--no-scan"]), ctx) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1
    claude = next(a for a in data["agents"] if a["agent"] == "claude")
    five = next(w for w in claude["windows"] if w["kind"] == "5h")
    assert five["provenance"] == "plan" and five["percent"] == pytest.approx(40.0)


def test_human_delta() -> None:
    assert status_cmd.human_delta(timedelta(hours=2, minutes=15, seconds=59)) == "2 h 15 m"
    assert status_cmd.human_delta(timedelta(days=3, hours=4)) == "3 d 4 h"
    assert status_cmd.human_delta(timedelta(seconds=42)) == "42 s"


# -- blocks -------------------------------------------------------------------------------


def test_blocks_json_has_ccusage_keys_and_gap_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = datetime(2026, 11, 22, 8, 20, tzinfo=UTC)
    write_claude(tmp_path, [
        claude_line(t0, 1),
        claude_line(t0 + timedelta(minutes=40), 2, model="claude-opus-4-1", speed="fast"),
        claude_line(NOW - timedelta(minutes=70), 3, tokens=2000),
        claude_line(NOW - timedelta(minutes=10), 4, tokens=4000),
    ])
    ctx = make_ctx(tmp_path)
    args = parse(blocks_cmd.register, ["blocks", "--json", "--token-limit", "max"])
    assert blocks_cmd.run(args, ctx) == 0
    data = json.loads(capsys.readouterr().out)
    blocks = data["blocks"]
    assert [b["id"] for b in blocks] == [
        "2026-11-22T08:00:00.000Z", "gap-2026-11-22T14:00:00.000Z", "2026-11-23T11:00:00.000Z",
    ]
    assert set(blocks[0]) == {
        "id", "startTime", "endTime", "actualEndTime", "isActive", "isGap", "entries",
        "tokenCounts", "totalTokens", "costUSD", "models", "burnRate", "projection",
    }
    assert blocks[0]["models"] == ["claude-sonnet-4-5", "claude-opus-4-1-fast"]
    assert blocks[0]["tokenCounts"] == {
        "inputTokens": 1000, "outputTokens": 500, "cacheCreationInputTokens": 250,
        "cacheReadInputTokens": 250,
    }
    gap = blocks[1]
    assert gap["isGap"] and gap["endTime"] == "2026-11-23T11:20:00.000Z"
    active = blocks[2]
    assert active["isActive"] and active["entries"] == 2 and active["totalTokens"] == 6000
    assert active["burnRate"]["tokensPerMinute"] == pytest.approx(6000 / 60)
    assert active["projection"]["remainingMinutes"] == 210
    status = active["tokenLimitStatus"]
    assert status["limit"] == 2000  # the largest completed block
    assert status["projectedUsage"] == 6000 + 100 * 210
    assert status["status"] == "exceeds"
    args = parse(blocks_cmd.register, ["blocks", "--json", "--active", "--no-scan"])
    assert blocks_cmd.run(args, ctx) == 0
    only = json.loads(capsys.readouterr().out)["blocks"]
    assert [b["id"] for b in only] == ["2026-11-23T11:00:00.000Z"]
    assert "tokenLimitStatus" not in only[0]


def test_blocks_filtered_to_nothing_says_so_not_scan_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_claude(tmp_path, [claude_line(NOW - timedelta(days=5), 1)])
    ctx = make_ctx(tmp_path)
    assert blocks_cmd.run(parse(blocks_cmd.register, ["blocks"]), ctx) == 0
    assert "2026-11-18" in capsys.readouterr().out  # the store holds a block
    for flag, says in (("--recent", "started in the last 3 days"), ("--active", "is active")):
        assert blocks_cmd.run(parse(blocks_cmd.register, ["blocks", flag]), ctx) == 0
        out = capsys.readouterr().out
        assert out == f"No claude usage block {says}; 'tokend blocks' lists them all.\n"


def test_blocks_token_limit_must_be_a_number() -> None:
    with pytest.raises(TokendError, match="--token-limit"):
        blocks_cmd.token_limit("lots", [], 0, 1)


# -- config --------------------------------------------------------------------------------


def test_config_init_writes_commented_defaults_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = make_ctx(tmp_path)
    path = ctx.paths.config_file
    assert config_cmd.run(parse(config_cmd.register, ["config", "init"]), ctx) == 0
    text = path.read_text(encoding="utf-8")
    assert "# plan = \"none\"" in text and "[claude]" in text
    assert load_settings(path) == Settings()
    path.write_text("[claude]\nplan = \"max5\"\n", encoding="utf-8")
    with pytest.raises(TokendError, match="already exists"):
        config_cmd.run(parse(config_cmd.register, ["config", "init"]), ctx)
    assert "max5" in path.read_text(encoding="utf-8")
    assert config_cmd.run(parse(config_cmd.register, ["config", "init", "--force"]), ctx) == 0
    assert load_settings(path) == Settings()


def test_config_show_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_ctx(tmp_path)
    ctx.paths.config_file.parent.mkdir(parents=True)
    ctx.paths.config_file.write_text(
        "[claude]\nplan = \"max20\"\n[weekly]\nanchor = \"tue 10:00\"\n", encoding="utf-8")
    assert config_cmd.run(parse(config_cmd.register, ["config", "path"]), ctx) == 0
    assert capsys.readouterr().out.strip() == str(ctx.paths.config_file)
    assert config_cmd.run(parse(config_cmd.register, ["config", "show"]), ctx) == 0
    shown = capsys.readouterr().out
    parsed = tomllib.loads(shown)
    assert parsed["claude"]["plan"] == "max20" and parsed["weekly"]["anchor"] == "tue 10:00"
    assert Settings(**parsed) == ctx.settings
    assert config_cmd.run(parse(config_cmd.register, ["config", "show", "--json"]), ctx) == 0
    assert json.loads(capsys.readouterr().out)["claude"]["plan"] == "max20"


def test_recent_and_active_read_only_the_tail_but_match_the_full_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a week of sessions every 3 hours (no pause long enough to restart the chain)
    # and an earlier one that is separated by a long pause
    lines = [claude_line(NOW - timedelta(days=12), 1)]
    t = NOW - timedelta(days=7, minutes=13)
    n = 2
    while t < NOW:
        lines.append(claude_line(t, n, tokens=100 + n))
        t += timedelta(hours=3, minutes=7)
        n += 1
    write_claude(tmp_path, lines)
    ctx = make_ctx(tmp_path)
    full_args = parse(blocks_cmd.register, ["blocks", "--json"])
    assert blocks_cmd.run(full_args, ctx) == 0
    full = json.loads(capsys.readouterr().out)["blocks"]
    cutoff = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    expected = [b for b in full if b["startTime"] >= cutoff or b["isActive"]]
    assert len(expected) < len(full)
    args = parse(blocks_cmd.register, ["blocks", "--json", "--recent", "--no-scan"])
    assert blocks_cmd.run(args, ctx) == 0
    assert json.loads(capsys.readouterr().out)["blocks"] == expected
    args = parse(blocks_cmd.register, ["blocks", "--json", "--active", "--no-scan"])
    assert blocks_cmd.run(args, ctx) == 0
    assert json.loads(capsys.readouterr().out)["blocks"] == [b for b in full if b["isActive"]]
    with ctx.open_store() as store:
        start = blocks_cmd.chain_start(store, "claude", int(NOW.timestamp() * 1000) - 3 * 86400000,
                                       int(NOW.timestamp() * 1000), 5 * 3600000)
    assert start == int((NOW - timedelta(days=7, minutes=13)).timestamp() * 1000)

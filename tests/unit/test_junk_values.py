"""Junk values anywhere in real log lines: the scan and every report go on.

Each seed copies the Claude, Codex and Gemini fixtures and replaces values at random
(at any depth) with things a corrupt or hand-edited log can hold: huge and negative
numbers, NaN and infinities (the stdlib decoder reads those), booleans, empty and
wrong-typed containers, timestamps at the edges of the calendar. Then ``scan`` and the
reports run through the CLI in this process: each must end with an exit code, never
an exception. This found four crashes (a 10**25 count overflowing SQLite, a year-9999
timestamp breaking ``weekly`` and ``blocks`` for good, a NaN turn start, a dict where
Codex writes an item type).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from tokend.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

JUNK: list[Any] = [
    10**30, 2**63, -(2**63) - 1, 1e20, 1e308, -1e308, -1, 0, 1.5, float("nan"), float("inf"),
    True, None, "", "x", [], {}, ["x"], {"a": 1},
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-45T99:99:99Z",
    "2026-11-20T10:00:00+14:00", 253402300799, -5e9,
]

REPORTS = (
    ["daily", "--json"], ["weekly", "--csv"], ["monthly", "--breakdown"], ["sessions"],
    ["blocks"], ["status"],
)


def _mutate(value: Any, rng: random.Random, p: float) -> Any:
    if isinstance(value, dict):
        return {k: rng.choice(JUNK) if rng.random() < p else _mutate(v, rng, p)
                for k, v in value.items()}
    if isinstance(value, list):
        return [rng.choice(JUNK) if rng.random() < p else _mutate(v, rng, p) for v in value]
    return value


def _spoil(tree: Path, rng: random.Random) -> None:
    p = rng.choice([0.05, 0.15, 0.3])
    for path in sorted([*tree.rglob("*.jsonl"), *tree.rglob("*.json")]):
        whole = path.suffix == ".json"
        lines = [path.read_text(encoding="utf-8")] if whole else path.read_text(
            encoding="utf-8").splitlines()
        out = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            out.append(json.dumps(_mutate(obj, rng, p)) if rng.random() < 0.7 else line)
        path.write_text("\n".join(out) + ("" if whole else "\n"), encoding="utf-8")


@pytest.mark.parametrize("seed", range(12))
def test_junk_values_never_crash_scan_or_reports(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(FIXTURES / "claude" / "projects", tmp_path / "claude" / "projects")
    shutil.copytree(FIXTURES / "codex" / "home", tmp_path / "codex")
    shutil.copytree(FIXTURES / "gemini" / "gemini-home", tmp_path / "home" / ".gemini")
    _spoil(tmp_path, random.Random(seed))
    for name, value in (("HOME", tmp_path / "home"), ("TOKEND_HOME", tmp_path / "tokend"),
                        ("CLAUDE_CONFIG_DIR", tmp_path / "claude"),
                        ("CODEX_HOME", tmp_path / "codex")):
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # +14:00: the far edge of the calendar
    assert main(["scan", "--quiet"]) == 0
    for args in REPORTS:
        code = main(args)
        assert code in (0, 1), (args, capsys.readouterr().err)

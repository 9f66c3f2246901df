"""Helpers shared by the checkpoint tests (no tests here).

The fixture transcripts under ``tests/fixtures/checkpoint/`` name the project
``/home/dev/acme-api``; :func:`install` copies them into a temp agent home with that
path replaced by a real temp folder, so the whole chain (tailer -> store ->
transcript -> file) runs on real files. :func:`golden_text` maps it back.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from tokend.snapshot import AgentState, Snapshot, WindowState
from tokend.sources import claude, codex
from tokend.sources.base import Root, Source
from tokend.store import SessionRow, Store
from tokend.tail import Tailer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint"
PROJECT = "/home/dev/acme-api"
CLAUDE_SESSION = "7c2e4a10-5b3d-4e8f-9a21-6d0f3b8c1e52"
CODEX_SESSION = "01a0e3c2-7b41-7d90-9f3e-5c2a8b1d4e67"
NOW = datetime(2026, 9, 15, 9, 45, tzinfo=timezone.utc)
"""Four minutes after the last line of both fixture transcripts."""
RESETS = datetime(2026, 9, 15, 14, 0, tzinfo=timezone.utc)


def install(agent: str, home: Path, project: Path) -> Root:
    """Copy one agent's fixture tree into ``home`` with the project path replaced."""
    src = FIXTURES / agent
    for path in src.rglob("*"):
        if path.is_file():
            target = home / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8").replace(PROJECT, str(project))
            target.write_text(text, encoding="utf-8")
    if agent == "claude":
        return Root("claude", home / "projects", "test")
    return Root("codex", home, "test")


def scan(store: Store, *roots: Root) -> None:
    """Read the installed logs into the store; every request costs $0.25."""
    sources: dict[str, Source] = {"claude": claude.SOURCE, "codex": codex.SOURCE}
    Tailer(store, [(sources[r.agent], r) for r in roots], cost_fn=lambda e: 0.25,
           clock=lambda: 0.0).scan()


def session(store: Store, session_id: str) -> SessionRow:
    rows = [s for s in store.active_sessions(0) if s.session_id == session_id]
    assert rows, f"{session_id} not in the store"
    return rows[0]


def window(kind: str, percent: float | None, resets: datetime | None = RESETS) -> WindowState:
    return WindowState(
        kind=kind,  # type: ignore[arg-type]
        start=None, resets_at=resets, used_tokens=0, used_cost=None, requests=0,
        percent=percent, provenance="official" if percent is not None else "unknown",
    )


def snapshot(root: Root, five_hour: float | None, weekly: float | None = 10.0,
             resets: datetime | None = RESETS, now: datetime = NOW) -> Snapshot:
    """A snapshot with one account: the root the fixture's session counts against."""
    return Snapshot(
        generated_at=now,
        agents=(AgentState(root.agent, "test", str(root.path), (
            window("5h", five_hour, resets), window("weekly", weekly, None),
        )),),
    )


def golden_text(text: str, project: Path) -> str:
    return text.replace(str(project), PROJECT)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)

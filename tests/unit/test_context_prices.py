"""The price fingerprint cache of :class:`Context`: a report whose store is up to date
never loads the price table, and any change of the price inputs still reprices."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokend.context
import tokend.paths
import tokend.pricing
from tokend.cli import main
from tokend.context import Context
from tokend.errors import ConfigError
from tokend.models import UsageEvent
from tokend.pricing import PriceTable
from tokend.store import Store

BUNDLED = PriceTable.bundled()


def _env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {"TOKEND_HOME": str(tmp / "t"), "HOME": str(home), "TZ": "UTC"}


def _seed(ctx: Context) -> None:
    """One event of a model the bundled table does not price, stored as a scan would."""
    event = UsageEvent(
        agent="claude", dedup_key="k1", timestamp=datetime(2026, 1, 9, 10, tzinfo=timezone.utc),
        session_id="s1", project="/p", model="mystery-model", input_tokens=1_000_000,
        output_tokens=0,
    )
    with Store(ctx.paths.store) as store:
        store.commit_batch(
            path="/logs/a.jsonl", agent="claude", root="claude:/logs", dev=1, ino=1, offset=1,
            size=1, mtime_ns=0, state=None, malformed=0, events=[event], observations=[],
            cost_fn=BUNDLED.cost, now_ms=0,
        )
        store.set_kv("prices", BUNDLED.fingerprint)


def _refresh(env: dict[str, str]) -> Context:
    ctx = Context(env=env, home=Path(env["HOME"]))
    with ctx.open_store() as store:
        ctx.refresh(store)
    return ctx


def _cost(env: dict[str, str]) -> float | None:
    with Store(Context(env=env).paths.store) as store:
        row = store.db.execute("SELECT cost FROM events").fetchone()
    return None if row[0] is None else float(row[0])


def _no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> PriceTable:
        raise AssertionError("the price table was loaded")

    monkeypatch.setattr(PriceTable, "bundled", classmethod(refuse))


def test_an_up_to_date_store_does_not_load_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(tmp_path)
    ctx = Context(env=env, home=tmp_path)
    _seed(ctx)
    _refresh(env)  # first run: loads the table, caches its fingerprint
    assert (ctx.paths.state_dir / "prices-fingerprint.json").exists()
    _no_loading(monkeypatch)
    warm = _refresh(env)
    assert "prices" not in vars(warm)
    assert warm.price_fingerprint == BUNDLED.fingerprint


def test_editing_the_user_prices_reprices_the_next_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _env(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    ctx = Context(env=env)
    _seed(ctx)

    def total_cost() -> float | None:
        assert main(["daily", "--json"]) == 0
        cost: float | None = json.loads(capsys.readouterr().out)["totals"]["totalCost"]
        return cost

    assert total_cost() is None  # unpriced
    user = ctx.paths.prices_file
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[models."mystery-model"]\ninput = 2.0\noutput = 4.0\n', encoding="utf-8")
    assert total_cost() == pytest.approx(2.0)
    # Same size, written within the same clock tick: the text is the key, not the mtime.
    user.write_text('[models."mystery-model"]\ninput = 3.0\noutput = 4.0\n', encoding="utf-8")
    assert total_cost() == pytest.approx(3.0)
    user.unlink()
    assert total_cost() is None


def test_a_new_bundled_table_reprices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path)
    _seed(Context(env=env))
    _refresh(env)
    assert _cost(env) is None
    # An upgrade ships a table that prices the model: the file's size and mtime change.
    bundled = tmp_path / "prices.json"
    shutil.copyfile(tokend.paths.BUNDLED_PRICES, bundled)
    data = json.loads(bundled.read_text(encoding="utf-8"))
    data["models"]["mystery-model"] = {"provider": "anthropic", "input": 5.0, "output": 5.0}
    bundled.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(tokend.pricing, "BUNDLED_PRICES", bundled)
    monkeypatch.setattr(tokend.context, "BUNDLED_PRICES", bundled)
    _refresh(env)
    assert _cost(env) == pytest.approx(5.0)


def test_a_damaged_cache_or_another_store_is_only_a_miss(tmp_path: Path) -> None:
    env = _env(tmp_path)
    ctx = Context(env=env)
    user = ctx.paths.prices_file
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[models."mystery-model"]\ninput = 2.0\noutput = 4.0\n', encoding="utf-8")
    _seed(ctx)
    _refresh(env)
    assert _cost(env) == pytest.approx(2.0)
    (ctx.paths.state_dir / "prices-fingerprint.json").write_text("{not json", encoding="utf-8")
    assert _refresh(env).price_fingerprint == PriceTable.load(user).fingerprint
    # A fresh store (its costs from the bundled table) is repriced although the cache hits.
    ctx.paths.store.unlink()
    _seed(ctx)
    _refresh(env)
    assert _cost(env) == pytest.approx(2.0)


def test_a_broken_user_file_still_fails_before_the_scan(tmp_path: Path) -> None:
    env = _env(tmp_path)
    ctx = Context(env=env)
    _seed(ctx)
    _refresh(env)
    ctx.paths.prices_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.prices_file.write_text('[models."x"]\ninput = "cheap"\n', encoding="utf-8")
    for _ in range(2):  # never cached
        with pytest.raises(ConfigError, match="input"):
            _refresh(env)
        fresh = Context(env=env)
        with fresh.open_store() as store, pytest.raises(ConfigError):
            fresh.tailer(store)


def test_the_lazy_cost_function_loads_the_table_at_the_first_event(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    _seed(Context(env=env))
    _refresh(env)
    ctx = Context(env=env)
    with ctx.open_store() as store:
        tailer = ctx.tailer(store)
        assert "prices" not in vars(ctx)
        event = UsageEvent(
            agent="claude", dedup_key="k2", timestamp=datetime(2026, 1, 9, tzinfo=timezone.utc),
            session_id="s1", project="/p", model="claude-sonnet-4-5", input_tokens=1_000_000,
            output_tokens=0,
        )
        assert tailer.cost_fn(event) == BUNDLED.cost(event)
        assert "prices" in vars(ctx)

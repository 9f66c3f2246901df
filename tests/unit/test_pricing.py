"""The price table: name matching, unknown models, long context, cache TTLs, fast mode,
user overrides and the fingerprint that triggers repricing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from tokend.errors import ConfigError
from tokend.models import UsageEvent
from tokend.pricing import PriceTable, normalize_model

T0 = datetime(2026, 1, 9, 10, 0, tzinfo=timezone.utc)


def ev(model: str, **tokens: int | str | None) -> UsageEvent:
    speed = tokens.pop("speed", None)
    assert speed is None or isinstance(speed, str)
    counts = {k: int(v) for k, v in tokens.items() if isinstance(v, int)}
    return UsageEvent(
        agent="claude", dedup_key="k", timestamp=T0, session_id="s", project="p",
        model=model, speed=speed, **counts,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.bundled()


def test_bundled_table_is_dated_and_sourced(table: PriceTable) -> None:
    assert table.date[:4] >= "2026"
    assert "LiteLLM" in table.source
    for name in ("claude-opus-4-6", "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4",
                 "claude-sonnet-4-5", "claude-sonnet-4", "claude-3-7-sonnet", "claude-haiku-4-5",
                 "claude-3-5-haiku", "gpt-5", "gpt-5-codex", "gpt-5.1-codex", "gpt-5-mini",
                 "o3", "o4-mini", "gpt-4.1", "gemini-2.5-pro", "gemini-2.5-flash",
                 "gemini-2.5-flash-lite"):
        assert table.lookup(name) is not None, name


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("vertex_ai/claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("Claude-Haiku-4-5@20251001", "claude-haiku-4-5"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("openai/gpt-5-2025-08-07", "gpt-5"),
        ("gpt-5.1-codex", "gpt-5.1-codex"),
    ],
)
def test_names_match_through_variants(table: PriceTable, name: str, key: str) -> None:
    found = table.lookup(name)
    assert found is not None and found.name == key


def test_a_date_suffix_never_jumps_to_a_different_version(table: PriceTable) -> None:
    # claude-opus-4 must not price claude-opus-4-1 (15/75 both, so check the name).
    found = table.lookup("claude-opus-4-1-20250805")
    assert found is not None and found.name == "claude-opus-4-1"
    found = table.lookup("claude-opus-4-5-20251101")
    assert found is not None and found.name == "claude-opus-4-5"


def test_unknown_model_is_none_never_zero(table: PriceTable) -> None:
    assert table.lookup("claude-nonesuch-9") is None
    assert table.cost(ev("claude-nonesuch-9", input_tokens=1000)) is None
    # a bigger sibling's price must not be borrowed by a new variant
    assert table.lookup("gpt-5.1-codex-ultra") is None
    assert table.cost(ev("", input_tokens=5)) is None


def test_synthetic_messages_cost_nothing(table: PriceTable) -> None:
    assert table.cost(ev("<synthetic>", input_tokens=10)) == 0.0


def test_formula_sonnet(table: PriceTable) -> None:
    cost = table.cost(ev("claude-sonnet-4-5", input_tokens=100_000, output_tokens=100_000,
                         cache_read_tokens=100_000))
    assert cost == pytest.approx((3.0 + 15.0 + 0.3) / 10)


def test_five_minute_and_one_hour_writes_differ(table: PriceTable) -> None:
    five = table.cost(ev("claude-sonnet-4-5", cache_write_5m_tokens=100_000))
    hour = table.cost(ev("claude-sonnet-4-5", cache_write_1h_tokens=100_000))
    assert five == pytest.approx(0.375)  # 1.25x input
    assert hour == pytest.approx(0.6)  # 2x input


def test_long_context_applies_per_request_on_the_whole_prompt(table: PriceTable) -> None:
    # 1k fresh input + 199k cache read = 200k: not above the threshold.
    at = table.cost(ev("claude-sonnet-4", input_tokens=1_000, cache_read_tokens=199_000,
                       output_tokens=1_000))
    assert at == pytest.approx((1_000 * 3 + 199_000 * 0.3 + 1_000 * 15) / 1e6)
    # One more cached token: the whole request moves to the long-context rates,
    # although no single field is above 200k (ccusage would not switch here).
    above = table.cost(ev("claude-sonnet-4", input_tokens=1_000, cache_read_tokens=199_001,
                          output_tokens=1_000))
    assert above == pytest.approx((1_000 * 6 + 199_001 * 0.6 + 1_000 * 22.5) / 1e6)
    # Gemini 2.5 Pro has its own long-context rates.
    gem = table.cost(ev("gemini-2.5-pro", input_tokens=250_000, output_tokens=1_000))
    assert gem == pytest.approx((250_000 * 2.5 + 1_000 * 15) / 1e6)
    # A model without long-context rates keeps its base rates.
    opus = table.cost(ev("claude-opus-4-5", input_tokens=300_000))
    assert opus == pytest.approx(300_000 * 5 / 1e6)


def test_fast_multiplier(table: PriceTable) -> None:
    base = table.cost(ev("claude-opus-4-6", input_tokens=1000, output_tokens=1000))
    fast = table.cost(ev("claude-opus-4-6", input_tokens=1000, output_tokens=1000, speed="fast"))
    assert base is not None and fast == pytest.approx(base * 6)
    # Codex priority tier: the model's own factor, else OpenAI's default of 2x.
    gpt = table.cost(ev("gpt-5.5", input_tokens=1000))
    gpt_fast = table.cost(ev("gpt-5.5", input_tokens=1000, speed="priority"))
    assert gpt is not None and gpt_fast == pytest.approx(gpt * 2.5)
    codex = table.cost(ev("gpt-5-codex", input_tokens=1000))
    codex_fast = table.cost(ev("gpt-5-codex", input_tokens=1000, speed="fast"))
    assert codex is not None and codex_fast == pytest.approx(codex * 2)
    std = table.cost(ev("claude-opus-4-6", input_tokens=1000, speed="standard"))
    assert std == pytest.approx(1000 * 5 / 1e6)


def test_codex_fixture_cost_matches_ccusage(table: PriceTable) -> None:
    # ccusage codex daily: 750 non-cached + 250 cached + 125 output = $0.00310625
    cost = table.cost(ev("gpt-5.2-codex", input_tokens=750, cache_read_tokens=250,
                         output_tokens=125))
    assert cost == pytest.approx(0.00310625)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_user_file_is_the_bundled_table(tmp_path: Path) -> None:
    assert PriceTable.load(tmp_path / "none.toml").fingerprint == PriceTable.bundled().fingerprint
    assert PriceTable.load(None).fingerprint == PriceTable.bundled().fingerprint


def test_user_file_overrides_fields_and_adds_models(tmp_path: Path) -> None:
    path = write(tmp_path, """
[models."claude-sonnet-4-5"]
input = 4.0

[models."my-gateway-model"]
input = 1.0
output = 2.0

[models."long-one"]
input = 1.0
output = 1.0
long_context = { threshold = 1000, input = 10.0, output = 10.0 }

[aliases]
"kimi-k2" = "my-gateway-model"
""")
    table = PriceTable.load(path)
    sonnet = table.lookup("claude-sonnet-4-5-20250929")
    assert sonnet is not None
    assert sonnet.base.input == 4.0 and sonnet.base.output == 15.0  # other fields kept
    assert sonnet.long_context is not None  # and the long-context rates too
    added = table.cost(ev("my-gateway-model", input_tokens=1_000_000, cache_read_tokens=1_000_000,
                          cache_write_1h_tokens=1_000_000))
    assert added == pytest.approx(1.0 + 0.1 + 2.0)  # cache rates derived from input
    assert table.cost(ev("kimi-k2", output_tokens=1_000_000)) == pytest.approx(2.0)
    assert table.cost(ev("long-one", input_tokens=1001)) == pytest.approx(1001 * 10 / 1e6)
    assert "prices.toml" in table.source


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[models."x"]\ninput = "cheap"\noutput = 1\n', 'models."x".input'),
        ('[models."x"]\ninput = 1\n', 'models."x" has no output'),
        ('[models."claude-sonnet-4-5"]\ninptu = 1\n', 'models."claude-sonnet-4-5".inptu'),
        ('[models."x"]\ninput = -1\noutput = 1\n', "must be 0 or more"),
        ('[aliases]\n"a" = "nonesuch"\n', 'aliases."a"'),
        ("[model]\n", "unknown key 'model'"),
        ('[models."x"\n', "not valid TOML"),
        ('[models."x"]\ninput = 1\noutput = 1\nlong_context = { input = 2, output = 2 }\n',
         "long_context has no threshold"),
    ],
)
def test_bad_user_file_names_key_and_fix(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path)
    assert needle in info.value.message
    assert str(path) in str(info.value)
    assert info.value.hint


def test_fingerprint_changes_with_any_price(tmp_path: Path) -> None:
    bundled = PriceTable.bundled()
    assert PriceTable.bundled().fingerprint == bundled.fingerprint  # stable
    a = PriceTable.load(write(tmp_path, '[models."gpt-5"]\ncache_read = 0.13\n'))
    b = PriceTable.load(write(tmp_path, '[models."gpt-5"]\ncache_read = 0.14\n'))
    c = PriceTable.load(write(tmp_path, '[models."gpt-5"]\nfast = 3\n'))
    assert len({bundled.fingerprint, a.fingerprint, b.fingerprint, c.fingerprint}) == 4


def test_bundled_names_are_distinct_and_aliases_resolve(table: PriceTable) -> None:
    names = [normalize_model(k) for k in table.models]
    assert len(names) == len(set(names))
    for alias, target in table.aliases.items():
        found = table.lookup(alias)
        assert found is not None and found.name == target, alias


def test_normalize_model() -> None:
    assert normalize_model(" Anthropic/Claude-3.5-Sonnet ") == "claude-3-5-sonnet"
    assert normalize_model("eu.anthropic.claude-sonnet-4-5-20250929-v1:0") == (
        "claude-sonnet-4-5-20250929"
    )


def test_fingerprint_covers_every_price_field(tmp_path: Path) -> None:
    # _price_dict spells out dataclasses.asdict (faster); a new field must reach it too.
    from dataclasses import asdict

    from tokend.pricing import _price_dict

    table = PriceTable.load(write(tmp_path, '[models."x"]\ninput = 1\noutput = 1\n'
                                  'long_context = { threshold = 5, input = 2, output = 2 }\n'))
    for price in table.models.values():
        assert _price_dict(price) == asdict(price)

"""Settings read the TOKEND_* variables of the Context's env, never os.environ."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokend.config import Settings, env_settings, load_settings
from tokend.context import Context
from tokend.errors import ConfigError


def _ctx(tmp: Path, **env: str) -> Context:
    return Context(env={"TOKEND_HOME": str(tmp / "t"), "HOME": str(tmp), **env}, home=tmp)


def test_context_settings_come_from_its_env_not_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEND_ALERTS__THRESHOLDS", "[10]")
    monkeypatch.setenv("TOKEND_TRAY__ENABLED", "false")
    ctx = _ctx(tmp_path, TOKEND_ALERTS__THRESHOLDS="[50, 90]", TOKEND_DAEMON__DEBOUNCE_MS="7")
    settings = ctx.settings
    assert settings.alerts.thresholds == (50, 90)
    assert settings.daemon.debounce_ms == 7
    assert settings.tray.enabled is True  # the process's TOKEND_TRAY__ENABLED is not ours
    assert _ctx(tmp_path / "other").settings == Settings()
    assert Settings().alerts.thresholds == (60, 80, 95)


def test_env_wins_over_the_file_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[alerts]\nthresholds = [70]\nquiet_hours = "22:00-07:00"\n'
                      '[claude]\nplan = "pro"\n', encoding="utf-8")
    settings = load_settings(config, {
        "TOKEND_ALERTS__THRESHOLDS": "[40, 99]",
        "tokend_claude__five_hour_tokens": "1000",  # names are case-insensitive
        "TOKEND_ACCOUNTS__~/Work/Projects": "work",  # table keys keep their case
        "TOKEND_HOME": "/elsewhere", "TOKEND_LOG_LEVEL": "debug",  # not settings
        "OTHER": "x",
    })
    assert settings.alerts.thresholds == (40, 99)
    assert settings.alerts.quiet_hours == "22:00-07:00"  # kept from the file
    assert settings.claude.plan == "pro" and settings.claude.five_hour_tokens == 1000
    assert settings.accounts == {"~/Work/Projects": "work"}


def test_whole_sections_and_scalars_as_json_or_text() -> None:
    env = {"TOKEND_TRAY": '{"pin": "codex"}', "TOKEND_TRAY__ENABLED": "false",
           "TOKEND_CHECKPOINT__PATH": "[x]/{session}.md", "TOKEND_WEEKLY__ANCHOR": "mon 09:00"}
    assert env_settings(env) == {
        "tray": {"pin": "codex", "enabled": False},
        "checkpoint": {"path": "[x]/{session}.md"},  # a string field is never JSON-decoded
        "weekly": {"anchor": "mon 09:00"},
    }
    settings = load_settings(None, env)
    assert settings.tray.pin == "codex" and settings.tray.enabled is False
    assert settings.checkpoint.path == "[x]/{session}.md"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TOKEND_ALERTS__THRESHOLDS": "[500]"},
         "alerts.thresholds = [500] (from TOKEND_ALERTS__THRESHOLDS)"),
        ({"TOKEND_ALERTS__THRESHOLDS": "fifty"},
         "alerts.thresholds = 'fifty' (from TOKEND_ALERTS__THRESHOLDS)"),
        ({"TOKEND_ALERTS__BOGUS": "1"},
         "alerts.bogus = 1 (from TOKEND_ALERTS__BOGUS): unknown key"),
        ({"TOKEND_TRAY": '{"pin": 5}'}, "tray.pin = 5 (from TOKEND_TRAY)"),
        ({"TOKEND_DAEMON__RECOMPUTE_SECONDS": "0"}, "daemon.recompute_seconds = 0"),
    ],
)
def test_bad_env_values_name_the_key(env: dict[str, str], named: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _ctx(tmp_path, **env).settings  # noqa: B018
    assert named in str(info.value)
    assert "invalid setting in the TOKEND_* environment variables" in str(info.value)

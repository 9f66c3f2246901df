"""User settings: a TOML file plus ``TOKEND_*`` environment variables.

Precedence: environment > file > defaults (command-line flags are applied by the
caller on top). Nested keys use ``__`` in the environment, e.g.
``TOKEND_ALERTS__THRESHOLDS='[50, 90]'``. A bad value raises a ``ConfigError``
that names the key, the value and what is accepted; the daemon never rewrites
the file (its state lives in the store).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tokend.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "AgentSettings",
    "AlertSettings",
    "CheckpointSettings",
    "DaemonSettings",
    "Settings",
    "TraySettings",
    "WeeklySettings",
    "load_settings",
]

Plan = Literal["none", "pro", "max5", "max20", "plus", "team", "custom", "free"]
"""``free`` is Gemini CLI's free tier (a daily request quota); the Claude ones are
community estimates, see :mod:`tokend.limits`."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSettings(_Section):
    """What 100 % means for one agent when no official figure is known."""

    enabled: bool = True
    plan: Plan = "none"
    five_hour_tokens: int | None = Field(default=None, gt=0)
    weekly_tokens: int | None = Field(default=None, gt=0)
    daily_requests: int | None = Field(default=None, gt=0)


class WeeklySettings(_Section):
    """Where the weekly window starts: ``rolling`` (last 7 days) or ``"mon 09:00"``."""

    anchor: str = "rolling"
    timezone: str = "local"

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str) -> str:
        if value == "rolling" or re.fullmatch(
            r"(mon|tue|wed|thu|fri|sat|sun)\s+([01]\d|2[0-3]):[0-5]\d", value.strip().lower()
        ):
            return value.strip().lower()
        raise ValueError("use 'rolling' or a weekday and time such as 'mon 09:00'")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value == "local":
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("use 'local' or an IANA zone such as 'Europe/Berlin'") from exc
        return value


class AlertSettings(_Section):
    """Threshold notifications: each fires once per window instance."""

    thresholds: tuple[int, ...] = (60, 80, 95)
    five_hour_thresholds: tuple[int, ...] | None = None
    weekly_thresholds: tuple[int, ...] | None = None
    reset: Literal["off", "after-warning", "always"] = "after-warning"
    predictive: bool = False
    quiet_hours: str = ""
    min_interval_minutes: int = Field(default=5, ge=0)

    @field_validator("thresholds", "five_hour_thresholds", "weekly_thresholds")
    @classmethod
    def _percents(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        if not all(0 < v <= 100 for v in value):
            raise ValueError("thresholds are percents between 1 and 100")
        return tuple(sorted(set(value)))

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("use '' (off) or a range such as '22:00-07:00'")
        return value


class TraySettings(_Section):
    enabled: bool = True
    pin: str = ""
    """Gauge this window instead of the most constrained: ``"claude"`` or ``"claude:5h"``."""


class CheckpointSettings(_Section):
    """When and where session checkpoints are written."""

    enabled: bool = True
    thresholds: tuple[int, ...] = (80, 95)
    max_turns: int = Field(default=200, gt=0)
    max_cost: float = Field(default=20.0, gt=0)
    context_fraction: float = Field(default=0.85, gt=0, le=1)
    path: str = "{cwd}/.tokend/checkpoints/{session}.md"
    min_interval_minutes: int = Field(default=3, ge=0)


class DaemonSettings(_Section):
    recompute_seconds: int = Field(default=30, ge=1)
    rescan_seconds: int = Field(default=300, ge=10)
    debounce_ms: int = Field(default=50, ge=0)


class Settings(BaseSettings):
    """Every setting tokend reads. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="TOKEND_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    accounts: dict[str, str] = Field(default_factory=dict)
    """Display names for roots: ``{"~/.claude-work/projects": "work"}``."""
    claude: AgentSettings = AgentSettings()
    codex: AgentSettings = AgentSettings()
    gemini: AgentSettings = AgentSettings()
    weekly: WeeklySettings = WeeklySettings()
    alerts: AlertSettings = AlertSettings()
    tray: TraySettings = TraySettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    daemon: DaemonSettings = DaemonSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    def agent(self, name: str) -> AgentSettings:
        value = getattr(self, name)
        assert isinstance(value, AgentSettings)
        return value


def load_settings(path: Path | None) -> Settings:
    """Read the config file (if any) and the environment.

    :raises ConfigError: naming the file, the key, the bad value and what is accepted.
    """
    data: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML: {exc}",
                hint="fix the line it names, or move the file away and run 'tokend config init'",
            ) from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path), hint=_hint(path)) from exc


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = str(path) if path is not None else "the environment"
    lines = [f"invalid setting in {where} (or a TOKEND_* variable):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {key} = {value!r}: {message}")
    return "\n".join(lines)


def _hint(path: Path | None) -> str:
    if path is None:
        return "check the TOKEND_* environment variables"
    return f"edit {path}; 'tokend config init --force' writes a commented default file"

"""User settings: a TOML file plus ``TOKEND_*`` environment variables.

Precedence: environment > file > defaults (command-line flags are applied by the
caller on top). Nested keys use ``__`` in the environment, e.g.
``TOKEND_ALERTS__THRESHOLDS='[50, 90]'``. A bad value raises a ``ConfigError``
that names the key, the value and what is accepted; the daemon never rewrites
the file (its state lives in the store).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import types
import typing
from collections.abc import Mapping
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
        # Only what load_settings() passes: it merges the file and the TOKEND_*
        # variables of the mapping it is given (never os.environ behind its back).
        return (init_settings,)

    def agent(self, name: str) -> AgentSettings:
        value = getattr(self, name)
        assert isinstance(value, AgentSettings)
        return value


ENV_PREFIX = "TOKEND_"
NESTED = "__"


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any) and the ``TOKEND_*`` variables of ``env``.

    ``env`` defaults to the process environment; a :class:`~tokend.context.Context`
    passes its own mapping, so tests and the daemon see exactly that.

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
    names: dict[tuple[str, ...], str] = {}
    data = _merge(data, env_settings(os.environ if env is None else env, names))
    try:
        return Settings(**data)
    except ValidationError as exc:
        file = path if path is not None and path.exists() else None
        raise ConfigError(_describe(exc, file, names), hint=_hint(file)) from exc


def env_settings(
    env: Mapping[str, str], names: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """The settings named by ``TOKEND_*`` variables, as nested init kwargs.

    The rules of pydantic-settings' environment source: names are case-insensitive,
    ``__`` separates nested keys (``TOKEND_ALERTS__THRESHOLDS``), and a field that
    is not a plain string (a list, a table, a section) takes JSON
    (``'[50, 90]'``). A variable that names no top-level setting is not ours
    (``TOKEND_HOME``, ``TOKEND_LOG_LEVEL``) and is left out; an unknown key inside a
    section is kept, so validation reports it by name. ``names`` collects which
    variable set which key (for error messages).
    """
    out: dict[str, Any] = {}
    fields = Settings.model_fields
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        keys = _keys(name[len(ENV_PREFIX):].split(NESTED))
        if not keys[0] or keys[0] not in fields or any(not k for k in keys):
            continue
        value: Any = env[name]
        if names is not None:
            names[tuple(keys)] = name
        annotation = _annotation(keys)
        if annotation is None or not _is_text(annotation):
            with contextlib.suppress(ValueError):  # else validation names key and value
                value = json.loads(value)
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = (
            _merge(node[keys[-1]], value)
            if isinstance(node.get(keys[-1]), dict) and isinstance(value, dict) else value
        )
    return out


def _keys(raw: list[str]) -> list[str]:
    """Setting names are case-insensitive; the keys of a table such as ``accounts``
    (paths) are kept as written."""
    keys: list[str] = []
    model: Any = Settings
    for key in raw:
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys.append(key.lower())
            field = model.model_fields.get(key.lower())
            model = field.annotation if field is not None else None
        else:
            keys.append(key)
    return keys


def _annotation(keys: list[str]) -> Any:
    """The type of the field ``keys`` names, or ``None`` when it names none."""
    model: Any = Settings
    annotation: Any = None
    for key in keys:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return annotation if _origin(annotation) is dict else None  # a dict's entry
        field = model.model_fields.get(key)
        if field is None:
            return None
        annotation = field.annotation
        model = annotation
    return annotation


def _origin(annotation: Any) -> Any:
    return typing.get_origin(annotation)


def _is_text(annotation: Any) -> bool:
    """A field given as plain text: ``str``, a ``Literal`` of strings, or ``dict[str, str]``
    when the key reaches one of its entries."""
    if annotation is str:
        return True
    origin = _origin(annotation)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    if origin is dict:
        return typing.get_args(annotation)[1:] == (str,)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_text(args[0])
    return False


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, merging tables (an env variable overrides one key only)."""
    out = dict(base)
    for key, value in top.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            value = _merge(old, value)
        out[key] = value
    return out


def _describe(
    exc: ValidationError, path: Path | None, names: dict[tuple[str, ...], str] | None = None
) -> str:
    names = names or {}
    where = f"{path} (or a TOKEND_* variable)" if path is not None else (
        "the TOKEND_* environment variables")
    lines = [f"invalid setting in {where}:"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        # the variable that set this key (or the section holding it), if one did
        source = next((names[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in names), "")
        origin = f" (from {source})" if source else ""
        lines.append(f"  {key} = {value!r}{origin}: {message}")
    return "\n".join(lines)


def _hint(path: Path | None) -> str:
    if path is None:
        return "check the TOKEND_* environment variables"
    return f"edit {path}; 'tokend config init --force' writes a commented default file"

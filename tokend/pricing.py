"""The offline price table: what one usage event cost, in USD.

Prices ship with the package (``tokend/data/prices.json``, dated, with its source
inside) so costs work with no network; a user file (``prices.toml`` in the config
folder) overrides fields of bundled models or adds models. Costs are computed once
per event when it is stored; :attr:`PriceTable.fingerprint` changes whenever any
price does, and the store then recomputes every stored cost.

The rules, and where they differ from ccusage:

- **Unknown model → ``None``, never 0.** Reports show it as unpriced and name the
  model, so a missing price is visible instead of an invisible $0.
- **Cache writes by TTL.** 5-minute writes at ``cache_write_5m`` (1.25x input for
  Claude), 1-hour writes at ``cache_write_1h`` (2x input for Claude).
- **Long context per request.** When a request's whole prompt
  (``event.prompt_tokens`` = input + cache read + cache writes) exceeds the model's
  threshold, *every* token of that request is priced at the long-context rates.
  That is how Anthropic (Sonnet 4/4.5 above 200k) and Google (Gemini 2.5 Pro above
  200k) bill. ccusage instead compares each token field of a line to 200k on its
  own, which almost never triggers because Claude's prompt sits in ``cache_read``.
- **Fast / priority.** An event whose ``speed`` is ``"fast"`` or ``"priority"`` has
  its whole cost multiplied by the model's ``fast`` factor, else the provider's
  default (OpenAI 2x, as ccusage assumes for Codex; Claude and Gemini 1x).
- **Names.** A model name matches through provider prefixes (``anthropic/``,
  ``openai/``, ``models/``, ``vertex_ai/``, Bedrock ``us.anthropic.``), date
  suffixes (``-20250929``, ``@20250514``, ``-2025-08-07``), Bedrock version suffixes
  (``-v1:0``), ``-latest``/``-preview``/``-exp`` tails, and ``.`` vs ``-``
  (``claude-3.5-sonnet`` = ``claude-3-5-sonnet``). There is no loose substring
  match: a new ``-mini`` or ``-pro`` variant must not silently take its bigger
  sibling's price.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokend.errors import ConfigError
from tokend.models import UsageEvent
from tokend.paths import BUNDLED_PRICES

# tomllib, hashlib and importlib.resources are imported where used: most loads have
# no user file, and a report whose store is up to date does not load the table at all.

__all__ = ["FAST_SPEEDS", "ModelPrice", "PriceTable", "Rates", "normalize_model"]

FAST_SPEEDS = frozenset({"fast", "priority"})
"""``UsageEvent.speed`` values billed at the fast/priority multiplier."""

SYNTHETIC_MODEL = "<synthetic>"
"""Claude Code's placeholder for messages it made up itself (errors): no API call, $0."""

_RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
_MODEL_FIELDS = frozenset({*_RATE_FIELDS, "provider", "fast", "long_context", "note"})
_LONG_FIELDS = frozenset({*_RATE_FIELDS, "threshold"})

# Ratios LiteLLM and ccusage assume when a cache rate is not given (Anthropic's rules).
_DERIVED = {"cache_read": 0.1, "cache_write_5m": 1.25, "cache_write_1h": 2.0}

_SUFFIXES = tuple(
    re.compile(p)
    for p in (
        r"-\d{8}$",  # -20250929 (and @20250929 after '@' became '-')
        r"-\d{4}-\d{2}-\d{2}$",  # OpenAI's -2025-08-07
        r"-latest$",
        r"-preview(-\d{2}-\d{2,4})?$",  # Gemini -preview-09-2025
        r"-exp(-\d{2}-\d{2,4})?$",
        r"-\d{3}$",  # Gemini -001
    )
)
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")
_BEDROCK_VERSION = re.compile(r"(?:-v\d+)?(?::\d+)?$")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for each kind of token."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices.

    ``long_context`` replaces ``base`` for a request whose prompt exceeds
    ``long_context_threshold`` tokens. ``fast`` is the multiplier for fast mode
    or the priority tier (``None``: the provider's default).
    """

    name: str
    provider: str
    base: Rates
    long_context: Rates | None = None
    long_context_threshold: int | None = None
    fast: float | None = None
    note: str | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates of a request whose whole prompt has ``prompt_tokens`` tokens."""
        if (
            self.long_context is not None
            and self.long_context_threshold is not None
            and prompt_tokens > self.long_context_threshold
        ):
            return self.long_context
        return self.base


def normalize_model(name: str) -> str:
    """A model name reduced to the form table keys are compared in.

    Lower case, no provider path (``anthropic/``, ``openrouter/openai/``), no Bedrock
    region prefix or version suffix, and ``@``/``.`` turned into ``-`` so that
    ``claude-sonnet-4@20250514`` and ``claude-3.5-sonnet`` meet their keys.
    """
    s = name.strip().lower()
    s = s.rsplit("/", 1)[-1]
    if _BEDROCK_PREFIX.match(s):
        s = _BEDROCK_VERSION.sub("", _BEDROCK_PREFIX.sub("", s), count=1)
    return s.replace("@", "-").replace(".", "-")


class PriceTable:
    """Model prices plus the rules that turn an event into a cost.

    Build it with :meth:`load` (bundled table + user file) or :meth:`bundled`.
    """

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        *,
        aliases: Mapping[str, str] | None = None,
        fast_defaults: Mapping[str, float] | None = None,
        date: str = "",
        source: str = "",
    ) -> None:
        self.models: dict[str, ModelPrice] = dict(models)
        self.aliases: dict[str, str] = dict(aliases or {})
        self.fast_defaults: dict[str, float] = dict(fast_defaults or {})
        self.date = date
        self.source = source
        self._index: dict[str, str] = {normalize_model(k): k for k in self.models}
        self._alias_index: dict[str, str] = {
            normalize_model(k): v for k, v in self.aliases.items()
        }
        self._cache: dict[str, ModelPrice | None] = {}
        self.fingerprint = self._fingerprint()

    # -- building ----------------------------------------------------------------

    @classmethod
    def bundled(cls) -> PriceTable:
        """The table shipped in the package, without user overrides."""
        data = json.loads(_bundled_text())
        models = {
            name: _model_from_dict(name, entry, base=None, where="the bundled prices.json")
            for name, entry in data["models"].items()
        }
        return cls(
            models,
            aliases=data.get("aliases", {}),
            fast_defaults=data.get("fast_defaults", {}),
            date=str(data.get("date", "")),
            source=str(data.get("source", "")),
        )

    @classmethod
    def load(cls, user_file: Path | None) -> PriceTable:
        """The bundled table with ``user_file`` (TOML) merged over it, if it exists.

        The user file has ``[models."name"]`` tables (fields in USD per million
        tokens: ``input``, ``output``, ``cache_read``, ``cache_write_5m``,
        ``cache_write_1h``, ``fast``, and a ``long_context`` table with ``threshold``)
        and an ``[aliases]`` table mapping a name to a priced model. Fields of a model
        that already has a price replace just those fields; a new model needs
        ``input`` and ``output`` and derives missing cache rates from ``input``.

        :raises ConfigError: naming the file, the key and how to fix it.
        """
        if user_file is None or not user_file.exists():
            return cls.bundled()
        try:
            text = user_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {user_file}: {exc.strerror}") from exc
        return cls.from_text(text, user_file)

    @classmethod
    def from_text(cls, text: str | None, user_file: Path) -> PriceTable:
        """The bundled table with ``text``, the user file's TOML, merged over it.

        :meth:`load` once the file is read: a caller that keys a cache on the file's
        text (:class:`tokend.context.Context`) builds the table from that same text,
        so the cache can never describe another version of the file. ``None``: no
        user file.

        :raises ConfigError: as :meth:`load`.
        """
        table = cls.bundled()
        if text is None:
            return table
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised on 3.10 only
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{user_file} is not valid TOML: {exc}",
                hint=f"fix the line it names in {user_file}, or move the file away to use "
                "the bundled prices",
            ) from exc
        return table._merged(data, user_file)

    def _merged(self, data: dict[str, Any], path: Path) -> PriceTable:
        where = str(path)
        hint = (
            f'edit {path}: prices are USD per million tokens, e.g. [models."my-model"] '
            "input = 3.0  output = 15.0"
        )
        unknown = sorted(set(data) - {"models", "aliases"})
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r} (allowed: models, aliases)", hint=hint
            )
        models = dict(self.models)
        user_models = data.get("models", {})
        if not isinstance(user_models, dict):
            raise ConfigError(f"{where}: models must be a table of models", hint=hint)
        for name, entry in user_models.items():
            if not isinstance(entry, dict):
                raise ConfigError(
                    f'{where}: models."{name}" must be a table of prices, not {entry!r}',
                    hint=hint,
                )
            key = self._index.get(normalize_model(name))
            base = self.models[key] if key is not None else self.lookup(name)
            model = _model_from_dict(name, entry, base=base, where=where, hint=hint)
            if key is not None and key != name:
                del models[key]
            models[name] = model
        aliases = dict(self.aliases)
        user_aliases = data.get("aliases", {})
        if not isinstance(user_aliases, dict):
            raise ConfigError(f"{where}: aliases must be a table of name = model", hint=hint)
        aliases.update(user_aliases)
        merged = PriceTable(
            models,
            aliases=aliases,
            fast_defaults=self.fast_defaults,
            date=self.date,
            source=f"{self.source}; overrides from {path}",
        )
        for alias, target in user_aliases.items():
            if not isinstance(target, str) or merged.lookup(target) is None:
                raise ConfigError(
                    f"{where}: aliases.\"{alias}\" = {target!r} names no priced model",
                    hint=f"point it at a model of the table (e.g. \"claude-sonnet-4-5\") or "
                    f"add [models.\"{target}\"] prices in {path}",
                )
        return merged

    def _fingerprint(self) -> str:
        import hashlib

        payload = {
            "models": {k: _price_dict(v) for k, v in sorted(self.models.items())},
            "aliases": dict(sorted(self.aliases.items())),
            "fast_defaults": dict(sorted(self.fast_defaults.items())),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- using -------------------------------------------------------------------

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of ``model`` under any of its spellings, or ``None``."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self._find(model)
        self._cache[model] = found
        return found

    def _find(self, model: str) -> ModelPrice | None:
        name = normalize_model(model)
        if not name:
            return None
        seen: set[str] = set()
        while name not in seen:
            seen.add(name)
            key = self._index.get(name)
            if key is not None:
                return self.models[key]
            target = self._alias_index.get(name)
            if target is not None:
                key = self._index.get(normalize_model(target))
                if key is not None:
                    return self.models[key]
            for pattern in _SUFFIXES:
                stripped = pattern.sub("", name, count=1)
                if stripped != name and stripped:
                    name = stripped
                    break
        return None

    def fast_multiplier(self, price: ModelPrice) -> float:
        if price.fast is not None:
            return price.fast
        return self.fast_defaults.get(price.provider, 1.0)

    def cost(self, event: UsageEvent) -> float | None:
        """USD cost of one event; ``None`` when its model has no price.

        Long-context rates apply when this request's own prompt
        (``event.prompt_tokens``) exceeds the model's threshold, to all its tokens.
        """
        if event.model == SYNTHETIC_MODEL:
            return 0.0
        price = self.lookup(event.model)
        if price is None:
            return None
        # event.prompt_tokens and price.rates_for, spelled out: this runs once per
        # event of a scan, and the two calls (three with the property inside) were a
        # third of it.
        inp, read = event.input_tokens, event.cache_read_tokens
        write_5m, write_1h = event.cache_write_5m_tokens, event.cache_write_1h_tokens
        threshold = price.long_context_threshold
        r = (
            price.long_context
            if price.long_context is not None
            and threshold is not None
            and inp + read + write_5m + write_1h > threshold
            else price.base
        )
        usd = (
            inp * r.input
            + event.output_tokens * r.output
            + read * r.cache_read
            + write_5m * r.cache_write_5m
            + write_1h * r.cache_write_1h
        ) / 1_000_000
        if event.speed in FAST_SPEEDS:
            usd *= self.fast_multiplier(price)
        return usd


def _bundled_text() -> str:
    """The bundled prices.json: a plain read of the file beside the package, else
    (a zipped install) through ``importlib.resources``."""
    try:
        return BUNDLED_PRICES.read_text(encoding="utf-8")
    except OSError:
        from importlib import resources

        return resources.files("tokend").joinpath("data/prices.json").read_text("utf-8")


def _rates_dict(r: Rates) -> dict[str, float]:
    return {
        "input": r.input,
        "output": r.output,
        "cache_read": r.cache_read,
        "cache_write_5m": r.cache_write_5m,
        "cache_write_1h": r.cache_write_1h,
    }


def _price_dict(p: ModelPrice) -> dict[str, Any]:
    """``dataclasses.asdict(p)``, spelt out: the same fingerprint (so no store is
    repriced for nothing after an upgrade) at a tenth of the cost of asdict's deep
    copies, which took several milliseconds per load."""
    return {
        "name": p.name,
        "provider": p.provider,
        "base": _rates_dict(p.base),
        "long_context": None if p.long_context is None else _rates_dict(p.long_context),
        "long_context_threshold": p.long_context_threshold,
        "fast": p.fast,
        "note": p.note,
    }


def _model_from_dict(
    name: str,
    entry: Mapping[str, Any],
    *,
    base: ModelPrice | None,
    where: str,
    hint: str = "",
) -> ModelPrice:
    """One model's prices from a JSON/TOML table, merged over ``base`` if any."""
    prefix = f'models."{name}"'
    unknown = sorted(set(entry) - _MODEL_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: {prefix}.{unknown[0]} is not a price field "
            f"(allowed: {', '.join(sorted(_MODEL_FIELDS))})",
            hint=hint,
        )
    values = {
        f: _number(entry[f], f"{prefix}.{f}", where, hint) for f in _RATE_FIELDS if f in entry
    }
    if base is not None:
        rates = Rates(**{f: values.get(f, getattr(base.base, f)) for f in _RATE_FIELDS})
    else:
        for required in ("input", "output"):
            if required not in values:
                raise ConfigError(
                    f"{where}: {prefix} has no {required} price (model not in the bundled "
                    "table, so input and output are both needed)",
                    hint=hint,
                )
        rates = _rates(values)
    provider = entry.get("provider", base.provider if base else "custom")
    if not isinstance(provider, str):
        raise ConfigError(f"{where}: {prefix}.provider must be a string", hint=hint)
    fast = base.fast if base else None
    if "fast" in entry:
        fast = _number(entry["fast"], f"{prefix}.fast", where, hint, unit="a multiplier")
    long_rates = base.long_context if base else None
    threshold = base.long_context_threshold if base else None
    if "long_context" in entry:
        long_rates, threshold = _long_context(entry["long_context"], prefix, where, hint)
    note = entry.get("note", base.note if base else None)
    return ModelPrice(
        name=name,
        provider=provider,
        base=rates,
        long_context=long_rates,
        long_context_threshold=threshold,
        fast=fast,
        note=str(note) if note is not None else None,
    )


def _long_context(
    value: Any, prefix: str, where: str, hint: str
) -> tuple[Rates | None, int | None]:
    key = f"{prefix}.long_context"
    if value is False:
        return None, None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: {key} must be a table with threshold, input and output "
            "(or false to turn long-context pricing off)",
            hint=hint,
        )
    unknown = sorted(set(value) - _LONG_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: {key}.{unknown[0]} is not a long-context field "
            f"(allowed: {', '.join(sorted(_LONG_FIELDS))})",
            hint=hint,
        )
    for required in ("threshold", "input", "output"):
        if required not in value:
            raise ConfigError(f"{where}: {key} has no {required}", hint=hint)
    threshold = value["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
        raise ConfigError(
            f"{where}: {key}.threshold = {threshold!r}: must be a whole number of prompt "
            "tokens above 0, e.g. 200000",
            hint=hint,
        )
    values = {f: _number(value[f], f"{key}.{f}", where, hint) for f in _RATE_FIELDS if f in value}
    return _rates(values), threshold


def _rates(values: Mapping[str, float]) -> Rates:
    """Rates with missing cache prices derived from ``input`` (LiteLLM's defaults)."""
    full = dict(values)
    for f, ratio in _DERIVED.items():
        full.setdefault(f, full["input"] * ratio)
    return Rates(**{f: full[f] for f in _RATE_FIELDS})


def _number(
    value: Any, key: str, where: str, hint: str, unit: str = "USD per million tokens"
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} = {value!r}: must be a number ({unit})", hint=hint)
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{where}: {key} = {value!r}: must be 0 or more", hint=hint)
    return number



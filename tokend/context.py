"""What a command or the daemon needs, built once from the environment.

The CLI and the daemon both start here: paths, settings, agent roots, the store,
the price table. Everything is injected (``env``, ``home``, ``clock``) so a test
builds a :class:`Context` over a fake home and a fixed clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tokend.paths import Paths

if TYPE_CHECKING:
    from tokend.config import Settings
    from tokend.pricing import PriceTable
    from tokend.sources.base import Root, Source
    from tokend.store import Store
    from tokend.tail import ScanReport, Tailer

__all__ = ["Context"]

_NOT_SETTINGS = frozenset({"TOKEND_HOME", "TOKEND_LOG_LEVEL"})
"""TOKEND_* variables that are not settings fields."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Context:
    """Paths, settings and factories for one run of tokend."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    home: Path = field(default_factory=Path.home)
    clock: Callable[[], datetime] = _utcnow

    @cached_property
    def paths(self) -> Paths:
        return Paths.from_env(self.env)

    @cached_property
    def settings(self) -> Settings:
        from tokend.config import load_settings

        return load_settings(self.paths.config_file, self.env)

    @cached_property
    def prices(self) -> PriceTable:
        from tokend.pricing import PriceTable

        return PriceTable.load(self.paths.prices_file)

    def roots(self) -> list[tuple[Source, Root]]:
        """Every enabled agent's roots, named as the user configured."""
        from dataclasses import replace

        from tokend.sources import all_sources

        accounts, enabled = self._root_settings()
        names = {str(Path(k).expanduser()): v for k, v in accounts.items()}
        out: list[tuple[Source, Root]] = []
        for source in all_sources():
            if not enabled.get(source.agent, True):
                continue
            for root in source.roots(self.env, self.home):
                name = names.get(str(root.path)) or names.get(str(root.path.parent))
                out.append((source, replace(root, account=name) if name else root))
        return out

    def _root_settings(self) -> tuple[dict[str, str], dict[str, bool]]:
        """The two settings discovery needs (account names, enabled agents).

        Validating the config imports pydantic, about a tenth of a second: more than a
        warm report takes otherwise. So the validated values are cached beside the
        store, keyed by the config file's identity and the TOKEND_* variables; with
        no config at all the defaults need no validation.
        """
        env_keys = sorted(
            (k, v) for k, v in self.env.items()
            if k.startswith("TOKEND_") and k not in _NOT_SETTINGS
        )
        try:
            st = self.paths.config_file.stat()
            file_key: list[int] | None = [st.st_mtime_ns, st.st_size, st.st_ino]
        except OSError:
            file_key = None
        if file_key is None and not env_keys:
            return {}, {}
        cache = self.paths.state_dir / "root-settings.json"
        key = json.dumps([file_key, env_keys])
        try:
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data["key"] == key:
                return dict(data["accounts"]), dict(data["enabled"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        settings = self.settings  # full validation; a bad value raises ConfigError here
        accounts = dict(settings.accounts)
        enabled = {a: settings.agent(a).enabled for a in ("claude", "codex", "gemini")}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(
                json.dumps({"key": key, "accounts": accounts, "enabled": enabled}),
                encoding="utf-8",
            )
        except OSError:
            pass  # only a cache
        return accounts, enabled

    def open_store(self, *, readonly: bool = False) -> Store:
        from tokend.store import Store

        return Store(self.paths.store, readonly=readonly)

    def tailer(self, store: Store) -> Tailer:
        from tokend.tail import Tailer

        return Tailer(store, self.roots(), self.prices.cost, clock=lambda: self.clock().timestamp())

    def refresh(
        self, store: Store, progress: Callable[[int, int], None] | None = None
    ) -> ScanReport:
        """Bring the store up to date: reprice if the table changed, read new bytes."""
        store.reprice(self.prices.cost, self.prices.fingerprint)
        return self.tailer(store).scan(progress)

"""What a command or the daemon needs, built once from the environment.

The CLI and the daemon both start here: paths, settings, agent roots, the store,
the price table. Everything is injected (``env``, ``home``, ``clock``) so a test
builds a :class:`Context` over a fake home and a fixed clock.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend import __version__
from tokend.paths import BUNDLED_PRICES, Paths

if TYPE_CHECKING:
    from tokend.config import Settings
    from tokend.models import UsageEvent
    from tokend.pricing import PriceTable
    from tokend.sources.base import Root, Source
    from tokend.store import Store
    from tokend.tail import ScanReport, Tailer

__all__ = ["Context"]

_NOT_SETTINGS = frozenset({"TOKEND_HOME", "TOKEND_LOG_LEVEL"})
"""TOKEND_* variables that are not settings fields."""

_PRICING_CODE = Path(__file__).with_name("pricing.py")
"""The code that turns the price files into a table: its changes change the table too."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _read_user_prices(path: Path) -> str | None:
    """The user price file's text, ``None`` when there is none.

    Read as :meth:`PriceTable.load` reads it (UTF-8, universal newlines); any other
    failure raises, and the caller leaves the error to ``load``.
    """
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _price_inputs_key(user_file: Path, user_text: str | None) -> str:
    """Everything the price table is built from, cheap to get.

    The bundled file and the code that reads it by size and mtime (an install or an
    edit rewrites them) plus the package version; the user file by its whole text
    (a few lines, and an mtime can miss two saves in one clock tick).
    """
    return json.dumps([
        __version__, _stat_key(BUNDLED_PRICES), _stat_key(_PRICING_CODE), str(user_file),
        user_text,
    ])


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    """A cache file's data if it was written for ``key``; ``None`` when missing or stale."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("key") == key:
            return data
    except (OSError, ValueError):
        pass
    return None


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """Replace a cache file whole (a concurrent reader sees the old or the new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):  # only a cache
            tmp.unlink(missing_ok=True)


class Context:
    """Paths, settings and factories for one run of tokend.

    :param env: the environment (default: a copy of the process's).
    :param home: the user's home folder (default: ``Path.home()``).
    :param clock: the current time, aware.

    A plain class, not a dataclass: generating one costs every command half a
    millisecond at start, and nothing compares or prints contexts.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        home: Path | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.env: Mapping[str, str] = dict(os.environ) if env is None else env
        self.home: Path = Path.home() if home is None else home
        self.clock = clock

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

        inputs = self._price_inputs
        if inputs is None:
            return PriceTable.load(self.paths.prices_file)
        return PriceTable.from_text(inputs[1], self.paths.prices_file)

    @cached_property
    def _price_inputs(self) -> tuple[str, str | None] | None:
        """The cache key of the price inputs and the user file's text, read once.

        :attr:`prices` is built from this very text, so :attr:`price_fingerprint`
        always describes the table this context prices with. ``None`` when the user
        file cannot be read: :meth:`PriceTable.load` then raises the right error.
        """
        user_file = self.paths.prices_file
        try:
            text = _read_user_prices(user_file)
        except (OSError, ValueError):
            return None
        return _price_inputs_key(user_file, text), text

    @cached_property
    def price_fingerprint(self) -> str:
        """:attr:`prices`' fingerprint, usually without loading the table.

        Loading it (the bundled JSON, the user TOML, hashing every price) costs
        more than all the rest of a report whose store is already up to date, and
        that report needs only the fingerprint, to see that no cost must be redone.
        So the fingerprint is cached beside the store, keyed by the table's inputs
        (:func:`_price_inputs_key`); a new key loads the table once and caches its
        fingerprint, and a bad user file raises :class:`ConfigError` here as before.
        """
        inputs = self._price_inputs
        if inputs is None or "prices" in self.__dict__:
            return self.prices.fingerprint
        cache = self.paths.state_dir / "prices-fingerprint.json"
        data = _read_cache(cache, inputs[0])
        if data is not None and isinstance(data.get("fingerprint"), str):
            return str(data["fingerprint"])
        fingerprint = self.prices.fingerprint
        _write_cache(cache, {"key": inputs[0], "fingerprint": fingerprint})
        return fingerprint

    def _cost(self, event: UsageEvent) -> float | None:
        """The cost function of a tailer built before the table was needed: the table
        is loaded at the first event, so a scan that finds nothing new never loads it."""
        return self.prices.cost(event)

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
        data = _read_cache(cache, key)
        if data is not None:
            try:
                return dict(data["accounts"]), dict(data["enabled"])
            except (KeyError, TypeError, ValueError):
                pass
        settings = self.settings  # full validation; a bad value raises ConfigError here
        accounts = dict(settings.accounts)
        enabled = {a: settings.agent(a).enabled for a in ("claude", "codex", "gemini")}
        _write_cache(cache, {"key": key, "accounts": accounts, "enabled": enabled})
        return accounts, enabled

    def open_store(self, *, readonly: bool = False) -> Store:
        from tokend.store import Store

        return Store(self.paths.store, readonly=readonly)

    def tailer(self, store: Store) -> Tailer:
        """A tailer over :meth:`roots` that prices with :attr:`prices`.

        A broken price file fails here, before any scan, as it always has; the
        table itself is loaded only once an event needs a price.
        """
        from tokend.tail import Tailer

        self.price_fingerprint  # noqa: B018 - validates the price inputs (cheap when cached)
        cost = self.prices.cost if "prices" in self.__dict__ else self._cost
        return Tailer(store, self.roots(), cost, clock=lambda: self.clock().timestamp())

    def catch_up(self, store: Store) -> None:
        """Bring the store up to date before a report: by the daemon when one runs.

        A running daemon has read every change its watcher reported, so asking it
        (:meth:`_daemon_current`) replaces walking and stat-ing every log file, which
        is most of a warm report's time on a long history. Without a daemon, or
        when it cannot vouch for this caller's roots, the report scans itself. The
        daemon follows the price file on a sync; if it could not load it, the
        reprice happens here (and fails here, naming the broken file).
        """
        if not self._daemon_current():
            self.refresh(store)  # reprices first when the table changed
        elif store.get_kv("prices") != self.price_fingerprint:
            store.reprice(self.prices.cost, self.prices.fingerprint)

    def _daemon_current(self, wait: float = 10.0) -> bool:
        """Whether a daemon on this ``TOKEND_HOME`` says the store is current.

        ``wait`` is generous: a daemon busy with its first scan of a long history
        finishes it sooner than this process could scan beside it. Any failure
        (no daemon, an old one without ``sync``, a timeout) means no.
        """
        sock = self.paths.socket
        if not sock.exists():
            return False
        from tokend import ipc
        from tokend.errors import TokendError

        try:
            reply = ipc.request(sock, "sync", timeout=wait + 1.0, alive_within=2.0,
                                wait=wait, env=dict(self.env), home=str(self.home))
        except TokendError:
            return False
        return isinstance(reply, dict) and reply.get("current") is True

    def refresh(
        self, store: Store, progress: Callable[[int, int], None] | None = None
    ) -> ScanReport:
        """Bring the store up to date: reprice if the table changed, read new bytes.

        The store's mark of the table its costs come from is compared with the
        cached :attr:`price_fingerprint`, so the table is loaded only to reprice.
        """
        if store.get_kv("prices") != self.price_fingerprint:
            store.reprice(self.prices.cost, self.prices.fingerprint)
        # Commands run no threads, so a big scan may fork parse workers (the daemon,
        # which does run threads, scans with its own tailer, sequentially).
        return self.tailer(store).scan(progress, workers=None)

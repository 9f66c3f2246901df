"""Every path tokend writes, in one place (and the bundled price table it reads).

``TOKEND_HOME`` moves all of them under one folder (tests, dev runs, several
accounts); otherwise the platform's usual places come from platformdirs. Agent log
locations are not here: each source module owns the discovery of its own roots.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUNDLED_PRICES", "Paths"]

APP = "tokend"

BUNDLED_PRICES = Path(__file__).parent / "data" / "prices.json"
"""The price table shipped in the package (read, never written).

A plain path beside this module, not ``importlib.resources``: that import alone
(zipfile, tempfile...) costs several milliseconds, a good part of a warm report. A
wheel install unpacks the file here; only a zipped install lacks it, and
:meth:`tokend.pricing.PriceTable.bundled` falls back to ``importlib.resources`` then.
"""


@dataclass(frozen=True)
class Paths:
    """The folders and files tokend uses.

    Build it with :meth:`from_env`; pass it around instead of reading the
    environment deep inside a module.
    """

    data_dir: Path
    config_dir: Path
    runtime_dir: Path
    log_dir: Path
    state_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = env.get("TOKEND_HOME")
        if home:
            root = Path(home).expanduser().resolve()
            return cls(
                data_dir=root / "data",
                config_dir=root / "config",
                runtime_dir=root / "run",
                log_dir=root / "log",
                state_dir=root / "state",
            )
        import platformdirs

        runtime = env.get("XDG_RUNTIME_DIR")
        runtime_dir = (
            Path(runtime) / APP
            if runtime
            else Path(platformdirs.user_cache_dir(APP)) / "run"
        )
        return cls(
            data_dir=Path(platformdirs.user_data_dir(APP)),
            config_dir=Path(platformdirs.user_config_dir(APP)),
            runtime_dir=runtime_dir,
            log_dir=Path(platformdirs.user_log_dir(APP)),
            state_dir=Path(platformdirs.user_state_dir(APP)),
        )

    @property
    def store(self) -> Path:
        return self.data_dir / "usage.sqlite3"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def prices_file(self) -> Path:
        """User price overrides, merged over the bundled table."""
        return self.config_dir / "prices.toml"

    @property
    def status_json(self) -> Path:
        return self.runtime_dir / "status.json"

    @property
    def statusline_txt(self) -> Path:
        return self.runtime_dir / "statusline.txt"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "tokend.sock"

    @property
    def lock_file(self) -> Path:
        return self.runtime_dir / "tokend.lock"

    @property
    def spool_dir(self) -> Path:
        """Observations from ``tokend statusline`` wait here when the daemon is busy."""
        return self.runtime_dir / "spool"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "tokend.log"

    def ensure_runtime_dir(self) -> Path:
        """Create the runtime dir private to the user (0700): it holds the socket."""
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.chmod(0o700)
        return self.runtime_dir

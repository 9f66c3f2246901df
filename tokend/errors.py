"""The one error family of tokend.

Library code raises these with a message *and* a hint that says how to fix it; only
``cli.py`` turns them into exit codes, so every module stays usable from the daemon.
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunning",
    "ConfigError",
    "DaemonNotRunning",
    "MalformedLine",
    "StoreError",
    "TokendError",
]


class TokendError(Exception):
    """Base of every error tokend reports to a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(TokendError):
    """A config file or environment value is wrong; the message names the key."""

    exit_code = 2


class StoreError(TokendError):
    """The SQLite store cannot be opened, written or migrated."""


class DaemonNotRunning(TokendError):
    """A command needed the daemon and none runs for this TOKEND_HOME."""

    exit_code = 3


class DaemonNotResponding(TokendError):
    """The daemon's socket accepts, but nothing answers: it is stopped or hung."""

    exit_code = 3


class AlreadyRunning(TokendError):
    """Another daemon holds the lock of this TOKEND_HOME."""


class MalformedLine(ValueError):
    """A log line that is not valid JSON or not the expected shape.

    Parsers raise it; the tailer counts it and goes on. It is not a ``TokendError``
    because it never reaches the user as such: only the count does.
    """

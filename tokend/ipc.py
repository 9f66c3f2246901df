"""The control socket: versioned newline-delimited JSON over a unix socket.

One request per line, one response per line, each carrying ``"version"``:

- request ``{"version": 1, "cmd": "status"}`` plus the command's own fields;
- response ``{"version": 1, "ok": true, "result": ...}`` or
  ``{"version": 1, "ok": false, "error": "..."}``.

Commands (the daemon implements them, see :class:`tokend.ipc_server.Handler`): ``ping``,
``status``, ``refresh``, ``pause`` (``minutes`` or ``until``; none: until resumed),
``resume``, ``reload``, ``stop``, ``observe`` (``kind`` and ``payload``, e.g. Claude's statusLine
JSON), ``sync`` (``env``, ``home`` and ``wait``: answers ``{"current": true}`` once the
store holds every change reported so far under the roots that environment names).
The socket lives in the 0700 runtime dir, so only the user can connect; there
is no TCP port and nothing is ever unpickled. Reports never need the daemon: they
read the store, and ask ``sync`` only to skip their own scan; ``report`` (``argv``,
``env``, ``home``, ``tty``) returns the text of a report the daemon rendered, so a
report run beside a daemon need not import the reporting code at all.

This module is the client and the protocol, kept to the standard library's lightest
parts (a report's fast path imports it); the server is :mod:`tokend.ipc_server`.
"""

from __future__ import annotations

import json
import os
import socket

from tokend.errors import DaemonNotResponding, DaemonNotRunning, TokendError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import: more than a served report's client
    from typing import Any

__all__ = ["COMMANDS", "PROTOCOL_VERSION", "request"]

PROTOCOL_VERSION = 1
COMMANDS = (
    "ping", "status", "refresh", "pause", "resume", "reload", "stop", "observe", "sync",
    "report",
)
MAX_LINE = 1 << 20
"""The longest request line the server reads."""


def request(
    path: str | os.PathLike[str],
    cmd: str,
    timeout: float = 5.0,
    *,
    alive_within: float | None = None,
    **fields: Any,
) -> Any:
    """Send one command and return its ``result``.

    ``alive_within``: for a command the daemon may rightly take long over (a report
    waiting for it to catch up), a ``ping`` goes first on the same connection and must
    be answered within these seconds. A daemon that is stopped or hung (its socket
    still accepts, the kernel queues the request) is then told apart from a busy one
    at once, not after ``timeout``, and this process does not ask it again.

    :raises DaemonNotRunning: nobody listens on ``path`` (or the file is left over).
    :raises DaemonNotResponding: the ``ping`` went unanswered.
    :raises TokendError: the daemon answered with an error, or the reply was garbled.
    """
    key = os.fspath(path)
    if key in _unresponsive:
        raise _unresponsive[key]
    line = _line({"version": PROTOCOL_VERSION, "cmd": cmd, **fields})
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout if alive_within is None else alive_within)
    pending = b""
    try:
        try:
            sock.connect(key)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonNotRunning(
                "the tokend daemon is not running", hint="start it with 'tokend start'"
            ) from exc
        if alive_within is not None:
            sock.sendall(_line({"version": PROTOCOL_VERSION, "cmd": "ping"}) + line)
            try:
                _, pending = _read_line(sock, b"")
            except TimeoutError:
                _unresponsive[key] = DaemonNotResponding(
                    f"the daemon did not answer within {alive_within:g} s",
                    hint="it may be stopped or hung: 'tokend restart'",
                )
                raise _unresponsive[key] from None
            sock.settimeout(timeout)
        else:
            sock.sendall(line)
        buf, _ = _read_line(sock, pending)
    except TimeoutError as exc:
        raise TokendError(
            f"the daemon did not answer '{cmd}' within {timeout:g} s",
            hint="see the log with 'tokend status'; 'tokend restart' if it hangs",
        ) from exc
    except OSError as exc:
        raise TokendError(f"cannot talk to the daemon at {path}: {exc}") from exc
    finally:
        sock.close()
    try:
        reply = json.loads(buf)
    except ValueError as exc:
        raise TokendError(f"the daemon sent a garbled reply to '{cmd}'") from exc
    if not isinstance(reply, dict) or reply.get("version") != PROTOCOL_VERSION:
        raise TokendError(
            "the daemon speaks another protocol version",
            hint="restart it so that it runs this version: 'tokend restart'",
        )
    if not reply.get("ok"):
        raise TokendError(f"the daemon refused '{cmd}': {reply.get('error')}")
    return reply.get("result")


_unresponsive: dict[str, DaemonNotResponding] = {}
"""Sockets whose daemon failed a liveness ``ping`` in this process (a report that
falls back to its own run must not wait for the same daemon again)."""


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _read_line(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    """One reply line, and whatever was read after it (``buf``: read before)."""
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf, b""
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest

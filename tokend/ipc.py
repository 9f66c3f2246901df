"""The control socket: versioned newline-delimited JSON over a unix socket.

One request per line, one response per line, each carrying ``"version"``:

- request ``{"version": 1, "cmd": "status"}`` plus the command's own fields;
- response ``{"version": 1, "ok": true, "result": ...}`` or
  ``{"version": 1, "ok": false, "error": "..."}``.

Commands (the daemon implements them, see :class:`Handler`): ``ping``, ``status``,
``refresh``, ``pause`` (``minutes`` or ``until``; none: until resumed), ``resume``,
``reload``, ``stop``, ``observe`` (``kind`` and ``payload``, e.g. Claude's statusLine
JSON). The socket lives in the 0700 runtime dir, so only the user can connect; there
is no TCP port and nothing is ever unpickled. Reports never need the daemon: they
read the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any, Protocol

from tokend.errors import DaemonNotRunning, TokendError

__all__ = [
    "COMMANDS",
    "PROTOCOL_VERSION",
    "ControlServer",
    "Handler",
    "request",
]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
COMMANDS = ("ping", "status", "refresh", "pause", "resume", "reload", "stop", "observe")
_MAX_LINE = 1 << 20


class Handler(Protocol):
    """What the server calls; the daemon implements it.

    ``handle`` returns the ``result`` value or raises ``ValueError`` / ``TokendError``
    for a bad request, which becomes ``ok: false`` with the message.
    """

    def handle(self, cmd: str, message: dict[str, Any]) -> Any: ...


class _Conn(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.connection.settimeout(5.0)
        while True:
            try:
                line = self.rfile.readline(_MAX_LINE)
            except OSError:
                return
            if not line:
                return
            reply = self.server.answer(line)
            try:
                self.wfile.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
                self.wfile.flush()
            except OSError:
                return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str, handler: Handler) -> None:
        self.handler = handler
        super().__init__(path, _Conn)

    def answer(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except ValueError:
            return _error("request is not JSON")
        if not isinstance(message, dict):
            return _error("request is not a JSON object")
        version = message.get("version")
        if version != PROTOCOL_VERSION:
            return _error(f"protocol version {version!r} is not {PROTOCOL_VERSION}")
        cmd = message.get("cmd")
        if cmd not in COMMANDS:
            return _error(f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
        try:
            result = self.handler.handle(str(cmd), message)
        except (ValueError, TokendError) as exc:
            return _error(str(exc))
        except Exception as exc:  # one bad request must not take the server down
            log.exception("control command %s failed", cmd)
            return _error(f"internal error: {exc}")
        return {"version": PROTOCOL_VERSION, "ok": True, "result": result}


def _error(text: str) -> dict[str, Any]:
    return {"version": PROTOCOL_VERSION, "ok": False, "error": text}


class ControlServer:
    """Serves :class:`Handler` on a unix socket in a background thread.

    The caller must hold the instance lock: a socket file left by a dead daemon is
    removed before binding, which is only safe when no other daemon can own it.
    """

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)  # the socket itself is 0600, inside a 0700 dir
        try:
            self._server = _Server(str(self.path), self.handler)
        finally:
            os.umask(old)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
            name="tokend-ipc", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(path: Path, cmd: str, timeout: float = 5.0, **fields: Any) -> Any:
    """Send one command and return its ``result``.

    :raises DaemonNotRunning: nobody listens on ``path`` (or the file is left over).
    :raises TokendError: the daemon answered with an error, or the reply was garbled.
    """
    message = {"version": PROTOCOL_VERSION, "cmd": cmd, **fields}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonNotRunning(
                "the tokend daemon is not running", hint="start it with 'tokend start'"
            ) from exc
        sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
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

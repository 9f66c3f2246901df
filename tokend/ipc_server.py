"""The control socket's server side: see :mod:`tokend.ipc` for the protocol.

Kept apart from the client so that a command talking to the daemon does not import
``socketserver``, ``threading`` and ``logging``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socketserver
import threading
from pathlib import Path
from typing import Any, Protocol

from tokend.errors import TokendError
from tokend.ipc import COMMANDS, MAX_LINE, PROTOCOL_VERSION

__all__ = ["ControlServer", "Handler"]

log = logging.getLogger("tokend.ipc")


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
                line = self.rfile.readline(MAX_LINE)
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

"""The control protocol: versioned newline JSON over a unix socket, client and server."""

from __future__ import annotations

import json
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tokend.errors import DaemonNotRunning, TokendError
from tokend.ipc import PROTOCOL_VERSION, request
from tokend.ipc_server import ControlServer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def handle(self, cmd: str, message: dict[str, Any]) -> Any:
        self.calls.append((cmd, message))
        if cmd == "pause" and "minutes" not in message:
            raise ValueError("pause needs minutes")
        if cmd == "reload":
            raise RuntimeError("boom")
        return {"echo": cmd}


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tki", dir="/tmp") as name:
        yield Path(name)


def test_round_trip_errors_and_cleanup(sock_dir: Path) -> None:
    path = sock_dir / "tokend.sock"
    path.write_text("left over by a dead daemon")  # replaced, not an obstacle
    handler = Recorder()
    server = ControlServer(path, handler)
    server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert request(path, "status") == {"echo": "status"}
        assert request(path, "pause", minutes=5) == {"echo": "pause"}
        assert handler.calls[-1] == ("pause", {"version": 1, "cmd": "pause", "minutes": 5})
        with pytest.raises(TokendError, match="pause needs minutes"):
            request(path, "pause")
        with pytest.raises(TokendError, match="internal error: boom"):
            request(path, "reload")
        with pytest.raises(TokendError, match="unknown command"):
            request(path, "format-disk")
        # raw protocol: one reply per line, version checked, garbage answered
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(path))
            raw.sendall(b'{"version": 2, "cmd": "status"}\n[1]\n{"version": 1, "cmd": "ping"}\n')
            data = b""
            while data.count(b"\n") < 3:
                data += raw.recv(4096)
        replies = [json.loads(line) for line in data.splitlines()]
        assert all(r["version"] == PROTOCOL_VERSION for r in replies)
        assert [r["ok"] for r in replies] == [False, False, True]
        assert "version 2" in replies[0]["error"]
    finally:
        server.stop()
    assert not path.exists()
    with pytest.raises(DaemonNotRunning):
        request(path, "status")


def test_a_socket_file_nobody_listens_on_means_not_running(sock_dir: Path) -> None:
    path = sock_dir / "tokend.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))
    left.close()
    with pytest.raises(DaemonNotRunning):
        request(path, "status", timeout=0.5)


def test_a_silent_server_times_out(sock_dir: Path) -> None:
    path = sock_dir / "tokend.sock"
    with socket.socket(socket.AF_UNIX) as mute:
        mute.bind(str(path))
        mute.listen(1)
        with pytest.raises(TokendError, match="did not answer"):
            request(path, "status", timeout=0.3)

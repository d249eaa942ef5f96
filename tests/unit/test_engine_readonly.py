"""The Engine client cannot write: every non-GET/HEAD request is refused before it is sent."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from forensics.errors import ReadOnlyViolation
from forensics.host.engine_client import ReadOnlyAPIClient


def test_writes_are_refused_before_sending(tmp_path: Path) -> None:
    # A real unix socket that records whether anything ever connects.
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(0.5)
    connected: list[bool] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            connected.append(True)
            conn.close()
        except OSError:
            pass

    waiter = threading.Thread(target=accept)
    waiter.start()
    client = ReadOnlyAPIClient(base_url=f"unix://{path}", version="1.41", timeout=2)
    for call in (
        lambda: client.start("x"),
        lambda: client.exec_create("x", "id"),
        lambda: client.pause("x"),
        lambda: client.remove_container("x"),
        lambda: client.kill("x"),
    ):
        with pytest.raises(ReadOnlyViolation):
            call()
    waiter.join()
    server.close()
    assert connected == []
    assert client.calls == []

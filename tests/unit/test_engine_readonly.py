"""The Engine client cannot write: every non-GET/HEAD request is refused before it is sent."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest

from forensics.errors import ReadOnlyViolation
from forensics.host.engine import ASKING_AT_ONCE, Engine
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


class _SlowDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A stand-in daemon on a real unix socket: answers /version and container inspects,
    each inspect after 0.2 s, and counts how many it is answering at once."""

    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.lock = threading.Lock()
        self.busy = self.most = 0
        super().__init__(path, _SlowHandler)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    server: _SlowDaemon
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:
        return "unix"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/version"):
            self._answer(200, {"ApiVersion": "1.41", "Version": "stand-in"})
            return
        name = self.path.split("/containers/")[-1].split("/")[0]
        with self.server.lock:
            self.server.busy += 1
            self.server.most = max(self.server.most, self.server.busy)
        time.sleep(0.2)
        with self.server.lock:
            self.server.busy -= 1
        if name.startswith("gone"):
            self._answer(404, {"message": f"No such container: {name}"})
        else:
            self._answer(200, {"Id": name})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_each_asks_a_few_at_once_and_keeps_order_and_failures(tmp_path: Path) -> None:
    path = str(tmp_path / "docker.sock")
    server = _SlowDaemon(path)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        engine = Engine(f"unix://{path}", timeout=10)
        keys = [f"c{i}" for i in range(8)] + ["gone1"]
        started = time.monotonic()
        answers = engine.each(engine.inspect_container, keys)
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert [a["Id"] for a in answers[:8]] == keys[:8]  # type: ignore[index]
    assert isinstance(answers[8], Exception) and "No such container" in str(answers[8])
    assert server.most == ASKING_AT_ONCE, "requests were not kept in flight side by side"
    assert took < 9 * 0.2, "one after another would take 1.8 s"
    assert sum(call.url.endswith("/json") for call in engine.calls) == 9  # every call recorded

"""A live hostile container (busybox) and the native triage over it, audited: the Engine API
sees only reads (a logging proxy on a unix socket), no suspect binary is executed (the
netlink process connector watches every exec of the triage's process tree), the trojaned
/bin/ls never runs, and the archive verifies."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.process.monitor import exec_pids, open_connector
from tests.hostile.corpus import CANARY

pytestmark = [pytest.mark.docker, pytest.mark.root]

FORENSICS = str(Path(sys.executable).with_name("forensics"))
MARKER = f"/tmp/{CANARY}-ls-ran"
REQUEST = re.compile(rb"(?m)^([A-Z]+) (/\S*) HTTP/1\.[01]\r$")


class LoggingProxy:
    """A unix-socket relay to the real docker.sock recording each request's method and path."""

    def __init__(self, path: Path, upstream: str = "/var/run/docker.sock") -> None:
        self.path, self.upstream = path, upstream
        self.requests: list[tuple[str, str]] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, log: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if log:
                    self.requests += [(m.decode(), p.decode()) for m, p in REQUEST.findall(data)]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


class ExecWatch:
    """Every exec on the machine while running: (pid, exe, root), read at the event."""

    def __init__(self) -> None:
        sock = open_connector()
        if isinstance(sock, str):
            pytest.skip(sock)
        self.sock = sock
        self.sock.settimeout(0.2)
        self.events: list[tuple[int, int, str, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                continue
            for pid in exec_pids(data):
                self.events.append((pid, _ppid(pid), _link(f"/proc/{pid}/exe"), _link(f"/proc/{pid}/root")))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


@pytest.fixture
def hostile_container(busybox_image: str) -> Iterator[str]:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    script = (
        "mkdir -p /app && ln -sf /etc/shadow /etc/motd && ln -s /../../../../etc/shadow /app/x && "
        "ln -s ../../../../../.. /app/up && mkfifo /app/fifo && "
        f"rm -f /bin/ls && printf '#!/bin/sh\\ntouch {MARKER}\\n' > /bin/ls && chmod 4755 /bin/ls && "
        "echo AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY > /app/.env && exec sleep 3600"
    )
    subprocess.run(["docker", "run", "-d", "--name", name, busybox_image, "sh", "-c", script], check=True,
                   capture_output=True)  # fmt: skip
    try:
        for _ in range(100):
            probe = subprocess.run(["docker", "diff", name], capture_output=True, text=True)
            if "/app/.env" in probe.stdout:
                break
            threading.Event().wait(0.1)
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_native_triage_over_a_hostile_container_reads_only_and_runs_nothing(
    tmp_path: Path, hostile_container: str
) -> None:
    proxy = LoggingProxy(tmp_path / "docker.sock")
    watch = ExecWatch()
    out = tmp_path / "out"
    try:
        argv = [FORENSICS, "triage", "--root", "/", "--docker-host", f"unix://{tmp_path / 'docker.sock'}",
                "--containers", hostile_container, "-o", str(out), "--json"]  # fmt: skip
        # The whole triage, every step (the monitor shortened): processes, memory dumps, images,
        # binaries, scans and timelines are audited too, not only the inventory.
        env = {**os.environ, "FORENSICS_MONITOR_SECONDS": "1"}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        watch.close()
        proxy.close()
    assert proc.returncode == 0, stderr.decode(errors="replace")[-3000:]
    summary = json.loads(stdout)
    assert summary["complete"] is True
    assert main(["evidence", "verify", summary["archive"]]) == 0
    # (1) the Engine API saw only reads, and it saw some
    assert proxy.requests, "the proxy saw no request: the triage did not use the engine"
    assert {m for m, _ in proxy.requests} <= {"GET", "HEAD"}, sorted(set(proxy.requests))
    assert not any("/exec" in p or "/start" in p or "/archive" in p for _, p in proxy.requests)
    # (2) the trojan never ran: not on the host, not in the container
    assert not Path(MARKER).exists()
    changed = subprocess.run(["docker", "diff", hostile_container], capture_output=True, text=True).stdout
    assert MARKER not in changed
    # (3) no exec from the triage's process tree of anything under the docker root or a container root
    ours = {proc.pid}
    for pid, ppid, _exe, _root in watch.events:
        if ppid in ours:
            ours.add(pid)
    mine = [e for e in watch.events if e[0] in ours]
    for pid, _ppid, exe, root in mine:
        assert not exe.startswith("/var/lib/docker") and "/proc/" not in exe, (pid, exe)
        assert root in ("/", "?"), (pid, exe, root)

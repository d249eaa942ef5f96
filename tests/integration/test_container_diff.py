"""`container diff` against the engine's own answer, on real containers.

Each victim runs a script of changes (add, change, delete, an opaque directory, renames,
links, special files, odd names), prints READY, and waits. The set of (kind, path) read
from the writable layer on disk must equal GET /containers/{id}/changes, with the engine
and with --no-engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from testcontainers.core.container import DockerContainer

from forensics import tools
from forensics.cli import main
from forensics.records import NotAvailable

pytestmark = [pytest.mark.docker, pytest.mark.root]

DEBIAN = "debian:bookworm-slim"

COMMON = r"""
set -e
echo new > /newfile
echo evil:x:0:0::/:/bin/sh >> /etc/passwd
rm /etc/group
mkdir -p /opt/app/lib && echo hi > /opt/app/lib/c
ln /newfile /hardlink
ln -s /etc/shadow /symlink
ln -s ../../.. /opt/app/up
mkfifo /fifo
mknod /chardev c 1 3
mknod /blockdev b 7 0
chmod 4755 /opt/app/lib/c
mkdir -p /tmp/.hidden/a/b/c/d/e/f && touch /tmp/.hidden/a/b/c/d/e/f/g
touch "/tmp/new
line" "/tmp/$(printf 'latin1-\351')" "/tmp/ spaced " /tmp/...
echo '<?php eval($_POST["x"]); ?>' > /tmp/s.php
mkdir -p /var/www/html && cp /tmp/s.php /var/www/html/s.php
"""

SCRIPTS = {
    "busybox": COMMON
    + r"""
rm -rf /usr/sbin && mkdir /usr/sbin && touch /usr/sbin/x
mv /root /root2
mv /etc/shadow /etc/shadow.moved 2>/dev/null || true
rm /bin/ls && echo '#!/bin/sh' > /bin/ls
chown 1:1 /linuxrc
touch -d 2001-01-01 /etc/hostname.new
chmod 700 /tmp
echo READY
exec sleep 600
""",
    "debian": COMMON
    + r"""
rm -rf /usr/share/doc && mkdir /usr/share/doc && touch /usr/share/doc/x
mv /etc/apt /etc/apt.moved
mv /etc/shadow /etc/shadow.moved
rm -rf /var/lib/apt
: > /var/log/dpkg.log
cp /bin/true /tmp/dropped && chmod 755 /tmp/dropped
echo '* * * * * root /tmp/dropped' > /etc/cron.d/evil
echo READY
exec sleep 600
""",
}


def _start(image: str, script: str) -> Iterator[str]:
    container = DockerContainer(image).with_command(["sh", "-c", script])
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        deadline = time.monotonic() + 60
        while b"READY" not in wrapped.logs():
            wrapped.reload()
            if wrapped.status != "running" or time.monotonic() > deadline:
                pytest.fail(f"victim did not get ready: {wrapped.logs()[-2000:]!r}")
            time.sleep(0.2)
        yield wrapped.id
    finally:
        container.stop()


@pytest.fixture(params=sorted(SCRIPTS))
def victim(request: pytest.FixtureRequest, busybox_image: str) -> Iterator[str]:
    image = busybox_image if request.param == "busybox" else DEBIAN
    yield from _start(image, SCRIPTS[request.param])


def _engine_changes(cid: str) -> set[tuple[str, str]]:
    kinds = {0: "C", 1: "A", 2: "D"}
    api = docker.APIClient()
    try:
        return {(kinds[c["Kind"]], c["Path"]) for c in api.diff(cid) or []}
    finally:
        api.close()


def _diff(capsys: pytest.CaptureFixture[str], cid: str, *extra: str) -> dict[str, Any]:
    assert main(["container", "diff", cid, "--json", "--root", "/", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _raw(change: dict[str, Any]) -> bytes:
    if "path_b64" in change:
        return base64.b64decode(change["path_b64"])
    return change["path"].encode()


def _as_engine(data: dict[str, Any]) -> set[tuple[str, str]]:
    # The engine's JSON turns bytes that are not UTF-8 into U+FFFD.
    return {(c["kind"], _raw(c).decode("utf-8", "replace")) for c in data["changes"]}


def test_diff_equals_the_engine(victim: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = _engine_changes(victim)
    data = _diff(capsys, victim)
    assert _as_engine(data) == engine
    assert data["engine"]["only_engine"] == [] and data["engine"]["only_disk"] == []
    assert data["problems"] == []
    from_disk = _diff(capsys, victim, "--no-engine")
    assert _as_engine(from_disk) == engine
    assert "not_available" in from_disk["engine"]


def test_diff_entries_say_what_each_change_is(victim: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = _diff(capsys, victim, "--no-engine")
    by_path = {_raw(c): c for c in data["changes"]}
    new = by_path[b"/newfile"]
    assert new["kind"] == "A" and new["type"] == "file"
    assert new["sha256"] == hashlib.sha256(b"new\n").hexdigest()
    assert new["current"]["size"] == 4 and new["current"]["uid"] == 0
    assert new["layer"] is None and new["original"] is None
    passwd = by_path[b"/etc/passwd"]
    assert passwd["kind"] == "C"
    assert passwd["layer"]["role"] == "image" and passwd["layer"]["diff_id"].startswith("sha256:")
    assert passwd["original"]["size"] < passwd["current"]["size"]
    assert "accounts.files" in passwd["flags"]
    group = by_path[b"/etc/group"]
    assert group["kind"] == "D" and group["cause"] == "whiteout" and group["current"] is None
    assert group["layer"]["role"] == "image"
    assert by_path[b"/symlink"]["link_target"] == "/etc/shadow"
    assert by_path[b"/opt/app/up"]["link_target"] == "../../.."
    assert by_path[b"/fifo"]["type"] == "fifo" and "not_available" in by_path[b"/fifo"]["sha256"]
    assert by_path[b"/chardev"]["current"]["rdev"] == "1:3"
    assert by_path[b"/blockdev"]["type"] == "block device"
    setuid = by_path[b"/opt/app/lib/c"]
    assert setuid["current"]["permissions"] == "-rwsr-xr-x" and setuid["executable"]
    assert "exec.setuid" in setuid["flags"]
    assert "names.odd" in by_path[b"/tmp/new\nline"]["flags"]
    assert "names.odd" in by_path[b"/tmp/latin1-\xe9"]["flags"]
    assert "names.odd" in by_path[b"/tmp/..."]["flags"]
    assert "names.hidden" in by_path[b"/tmp/.hidden"]["flags"]
    assert "webshell.pattern" in by_path[b"/var/www/html/s.php"]["flags"]
    assert "webshell.pattern" not in by_path[b"/tmp/s.php"]["flags"]  # not under a web root
    rules = {f["rule"] for f in data["findings"]}
    assert {"container.accounts.files", "container.exec.setuid", "container.webshell.pattern"} <= rules
    if isinstance(tools.which("yara"), NotAvailable):
        assert data["yara"]["status"] == "skipped" and "not on PATH" in data["yara"]["reason"]
    else:
        assert data["yara"]["status"] == "ran"
        assert {"path": "/var/www/html/s.php", "rule": "webshell_php_request_eval"} in data["yara"]["matches"]


@pytest.fixture()
def stopped(busybox_image: str) -> Iterator[str]:
    container = DockerContainer(busybox_image).with_command(["sh", "-c", "rm -rf /usr && echo gone > /gone"])
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        wrapped.wait(timeout=30)
        yield wrapped.id
    finally:
        container.stop()


def test_stopped_container_by_name_and_prefix(stopped: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = docker.APIClient().inspect_container(stopped)["Name"].lstrip("/")
    by_name = _diff(capsys, name, "--no-engine")
    by_prefix = _diff(capsys, stopped[:12], "--no-engine")
    assert _as_engine(by_name) == _as_engine(by_prefix) == _engine_changes(stopped)
    assert {("D", "/usr"), ("A", "/gone")} <= _as_engine(by_name)
    assert by_name["container"]["state"] == "exited"


def test_unknown_container_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["container", "diff", "no-such-container-xyz", "--root", "/", "--no-engine"]) == 2
    assert "no container" in capsys.readouterr().err

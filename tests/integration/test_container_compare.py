"""`container compare` on a real container: the same bytes `docker cp` gives, and account findings."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from testcontainers.core.container import DockerContainer

from forensics.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.root]

DEBIAN = "debian:bookworm-slim"
SCRIPT = r"""
echo 'toor:x:0:0::/root:/bin/bash' >> /etc/passwd
sed -i 's/^root:[^:]*:/root::/' /etc/shadow
sed -i 's/^sudo:x:27:$/sudo:x:27:www-data/' /etc/group
cp /bin/true /usr/bin/ls
echo READY
exec sleep 600
"""


@pytest.fixture()
def victim() -> Iterator[str]:
    container = DockerContainer(DEBIAN).with_command(["sh", "-c", SCRIPT])
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        deadline = time.monotonic() + 60
        while b"READY" not in wrapped.logs():
            if time.monotonic() > deadline:
                pytest.fail("victim did not get ready")
            time.sleep(0.2)
        yield wrapped.id
    finally:
        container.stop()


def _docker_cp(container_id: str, path: str) -> bytes:
    """The file as `docker cp` hands it over (test oracle only; the product never does this)."""
    client = docker.from_env()
    try:
        stream, _ = client.api.get_archive(container_id, path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            assert member is not None
            extracted = tar.extractfile(member)
            assert extracted is not None
            return extracted.read()
    finally:
        client.close()


def _image_file(path: str) -> bytes:
    client = docker.from_env()
    fresh = client.containers.create(DEBIAN, command=["true"])
    try:
        return _docker_cp(fresh.id, path)
    finally:
        fresh.remove()
        client.close()


def _compare(capsys: pytest.CaptureFixture[str], cid: str, path: str) -> dict[str, Any]:
    assert main(["container", "compare", cid, path, "--json", "--root", "/", "--no-engine"]) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_reads_what_docker_cp_and_a_fresh_container_show(
    victim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in ("/etc/passwd", "/etc/shadow", "/usr/bin/ls"):
        data = _compare(capsys, victim, path)
        assert data["status"] == "changed" and data["content"] == "differs"
        assert data["current"]["sha256"] == hashlib.sha256(_docker_cp(victim, path)).hexdigest()
        assert data["original"]["sha256"] == hashlib.sha256(_image_file(path)).hexdigest()
        assert data["original"]["layer"] == "image"
    binary = _compare(capsys, victim, "/usr/bin/ls")
    assert "not_available" in binary["text_diff"]


def test_account_findings(victim: str, capsys: pytest.CaptureFixture[str]) -> None:
    rules = set()
    for path in ("/etc/passwd", "/etc/shadow", "/etc/group"):
        rules |= {f["rule"] for f in _compare(capsys, victim, path)["findings"]}
    assert {
        "container.accounts.uid-0",
        "container.accounts.added",
        "container.accounts.empty-password",
        "container.accounts.group-member",
    } <= rules
    unchanged = _compare(capsys, victim, "/etc/debian_version")
    assert unchanged["status"] == "unchanged" and unchanged["findings"] == []

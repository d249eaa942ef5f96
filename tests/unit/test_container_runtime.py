"""The per-container runtime view: creation time, volume changes, mounts and networks."""

from __future__ import annotations

import json
import os
from pathlib import Path

from forensics.containers.runtime import created_ns, runtime_of, volume_changes
from forensics.host.disk import DockerDisk
from forensics.records import NotAvailable
from tests.unit.fakehost import add_container, fake_host

CREATED = "2026-01-01T00:00:00.5Z"
T0 = 1767225600 * 1_000_000_000


def test_creation_time_parsing() -> None:
    assert created_ns(CREATED) == T0 + 500_000_000
    assert created_ns("2026-01-01T01:00:00+01:00") == T0
    assert created_ns("yesterday") is None


def _host(tmp_path: Path, source: str | None = None, name: str = "data") -> tuple[DockerDisk, Path]:
    root = fake_host(tmp_path)
    volume = root / "var/lib/docker/volumes" / name / "_data"
    volume.mkdir(parents=True)
    for rel, when in (("old.txt", T0 - 10**9), ("new.txt", T0 + 10**9), ("sub/dropped", T0 + 10**9)):
        (volume / rel).parent.mkdir(exist_ok=True)
        (volume / rel).write_text(rel)
        os.utime(volume / rel, ns=(when, when))
    mounts = {"/data": {"Destination": "/data", "Source": source or f"/var/lib/docker/volumes/{name}/_data",
                        "Type": "volume", "Name": name, "RW": True},
              "/etc/app": {"Destination": "/etc/app", "Source": "/srv/app", "Type": "bind", "RW": False}}  # fmt: skip
    nets = {
        "Networks": {"bridge": {"IPAddress": "172.17.0.5", "MacAddress": "02:42", "Gateway": "172.17.0.1"}}
    }
    add_container(root, "rt", "rt", Created=CREATED, MountPoints=mounts, NetworkSettings=nets)
    return DockerDisk(str(root)), volume


def test_volume_files_changed_since_creation(tmp_path: Path) -> None:
    disk, _ = _host(tmp_path)
    container = disk.inventory().containers[0]
    (changes,) = volume_changes(disk, container)
    assert changes.volume == "data" and changes.destination == "/data"
    assert not isinstance(changes.files, NotAvailable)
    # Every file was written by the test after "creation" (ctime); only the old mtime tells
    # old.txt apart, and the record says which time put it on the list.
    why = {f.path: f.why for f in changes.files}
    assert why == {
        b"/old.txt": "ctime",
        b"/new.txt": "mtime",
        b"/sub": why[b"/sub"],
        b"/sub/dropped": "mtime",
    }


def test_a_volume_source_elsewhere_is_not_walked(tmp_path: Path) -> None:
    disk, _ = _host(tmp_path, source="/etc")
    (changes,) = volume_changes(disk, disk.inventory().containers[0])
    assert isinstance(changes.files, NotAvailable) and "not walked" in changes.files.reason


def test_runtime_without_a_process_listing(tmp_path: Path) -> None:
    disk, _ = _host(tmp_path)
    container = disk.inventory().containers[0]
    view = runtime_of(container, NotAvailable("not the live host"), NotAvailable("no engine"), disk)
    assert isinstance(view.processes, NotAvailable) and isinstance(view.listening, NotAvailable)
    assert [(m.destination, m.type) for m in view.mounts] == [("/data", "volume"), ("/etc/app", "bind")]
    assert [(n.name, n.ip) for n in view.networks] == [("bridge", "172.17.0.5")]
    json.dumps(view, default=str)  # serialisable

"""The disk reader on a fabricated var/lib/docker, hostile parts included."""

from __future__ import annotations

import json
from pathlib import Path

from forensics.host.disk import DockerDisk, chain_ids
from forensics.records import NotAvailable
from tests.unit.fakehost import add_container, fake_host, hexid


def test_reads_containers_and_images(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    cid = add_container(root, "web", "web")
    stopped = add_container(root, "old", "old", running=False)
    inventory = DockerDisk(str(root)).inventory()
    assert inventory.driver == "overlay2"
    by_id = {c.id: c for c in inventory.containers}
    assert by_id[cid].name == "web" and by_id[cid].state.status == "running"
    assert by_id[stopped].state.status == "exited"
    assert by_id[cid].mount_id == hexid("mountweb")
    assert inventory.images[0].repo_tags == ["victim:latest"]
    assert inventory.problems == []


def test_hostile_entries_become_problems(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    good = add_container(root, "good", "good")
    containers = root / "var/lib/docker/containers"
    (containers / "..evil").mkdir()
    corrupt = containers / hexid("corrupt")
    corrupt.mkdir()
    (corrupt / "config.v2.json").write_text("{not json")
    huge = containers / hexid("huge")
    huge.mkdir()
    with open(huge / "config.v2.json", "wb") as out:
        out.truncate(17 * 1024 * 1024)
    escaping = add_container(root, "escape", "escape")
    mount_id = root / "var/lib/docker/image/overlay2/layerdb/mounts" / escaping / "mount-id"
    mount_id.write_text("../../../../etc")
    linked = containers / hexid("linked")
    linked.mkdir()
    secret = tmp_path / "outside.json"
    secret.write_text(json.dumps({"ID": hexid("linked"), "Name": "/stolen"}))
    (linked / "config.v2.json").symlink_to(secret)
    bad_image = add_container(root, "badimage", "badimage", Image="sha256:../../x")

    inventory = DockerDisk(str(root)).inventory()
    ids = {c.id for c in inventory.containers}
    assert good in ids and escaping in ids and bad_image in ids
    assert hexid("corrupt") not in ids and hexid("huge") not in ids
    # The absolute link resolved inside the root, where outside.json does not exist.
    assert hexid("linked") not in ids
    escaped = next(c for c in inventory.containers if c.id == escaping)
    assert isinstance(escaped.mount_id, NotAvailable)
    assert next(c for c in inventory.containers if c.id == bad_image).image_id == ""
    messages = " | ".join(f"{p.path}: {p.message}" for p in inventory.problems)
    for expected in ("..evil", "not valid JSON", "limit", "mount-id", "sha256 digest", hexid("linked")):
        assert expected in messages, expected


def test_missing_docker_data(tmp_path: Path) -> None:
    disk = DockerDisk(str(tmp_path))
    assert not disk.exists()
    assert isinstance(disk.storage_driver(), NotAvailable)


def test_data_root_from_daemon_json(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "etc/docker").mkdir(parents=True)
    (root / "etc/docker/daemon.json").write_text(json.dumps({"data-root": "/srv/docker"}))
    (root / "srv/docker/containers").mkdir(parents=True)
    disk = DockerDisk(str(root))
    assert disk.data_root == "/srv/docker" and disk.exists()


def test_chain_ids_match_the_engine() -> None:
    # Values from a real engine: busybox-like single layer, then a second layer.
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    chains = chain_ids([a, b])
    assert chains[0] == a
    import hashlib

    assert chains[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()

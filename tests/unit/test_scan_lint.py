"""dockle's checkpoints on a fake overlay2 image (two layers) and canned configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forensics.host.disk import DockerDisk, chain_ids
from forensics.records import NotAvailable
from forensics.scan import lint
from forensics.scan.checks import DOCKLE
from forensics.scan.imagefiles import merged_entries
from forensics.scan.model import Status
from tests.unit.fakehost import fake_host, hexid


def layered_host(tmp_path: Path, layers: list[dict[str, Any]]) -> tuple[DockerDisk, list[str]]:
    """Each layer: {path: bytes | ('mode', bytes)}; returns the disk and the diff ids."""
    root = fake_host(tmp_path)
    diff_ids = ["sha256:" + hexid(f"layer{i}") for i in range(len(layers))]
    for i, (chain, files) in enumerate(zip(chain_ids(diff_ids), layers, strict=True)):
        cache = hexid(f"cache{i}")
        meta = root / "var/lib/docker/image/overlay2/layerdb/sha256" / chain[7:]
        meta.mkdir(parents=True)
        (meta / "cache-id").write_text(cache)
        diff = root / "var/lib/docker/overlay2" / cache / "diff"
        diff.mkdir(parents=True)
        for rel, content in files.items():
            path = diff / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            mode, data = content if isinstance(content, tuple) else (0o644, content)
            path.write_bytes(data)
            os.chmod(path, mode)
    return DockerDisk(str(root)), diff_ids


def meta(**config: Any) -> lint.ImageMeta:
    history = config.pop("history", [])
    tags = config.pop("tags", ["victim:1.0"])
    return lint.ImageMeta(
        "sha256:" + "e" * 64, tags[0] if tags else "e" * 12, tags, config, history, [], "engine"
    )


def statuses(results: list[Any]) -> dict[str, Status]:
    return {r.id: r.status for r in results}


BAD_LOWER = {
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nadmin::0:0::/:/bin/sh\n",
    "/etc/group": b"root:x:0:\nwheel:x:0:\n",
    "/etc/shadow": b"root:!:19000::::::\n",
    "/usr/bin/sudo": (0o4755, b"\x7fELF"),
    "/root/.ssh/id_rsa": b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
    "/var/lib/apt/lists/deb.debian.org_dists": b"x",
    "/app/.git/HEAD": b"ref",
    "/app/old": b"gone",
}
BAD_UPPER = {"/usr/bin/passwd": (0o2755, b"\x7fELF"), "/app/.wh.old": b""}


def test_bad_image_every_checkpoint(tmp_path: Path) -> None:
    disk, diff_ids = layered_host(tmp_path, [BAD_LOWER, BAD_UPPER])
    problems: list[str] = []
    facts = lint.file_facts(merged_entries(disk, diff_ids, problems), problems)
    assert problems == []
    image = meta(
        User="", Env=["PATH=/bin", "DB_PASSWORD=x", "GPG_KEY=abc"], Volumes={"/proc": {}},
        history=["/bin/sh -c #(nop) ADD file:0123abcd in / ", "/bin/sh -c apt-get update",
                 "/bin/sh -c apt-get install -y curl", "/bin/sh -c #(nop) ADD https://x/y.tgz /opt/",
                 "/bin/sh -c apk add curl", "/bin/sh -c apt-get dist-upgrade -y", "/bin/sh -c sudo ls"],
        tags=["victim:latest"],
    )  # fmt: skip
    got = statuses(lint.run_lint(image, facts))
    for check in DOCKLE.values():
        if check.supported:
            assert got[check.id] is check.level, check.id
        else:
            assert got[check.id] is Status.SKIP
    results = {r.id: r.details for r in lint.run_lint(image, facts)}
    assert "DB_PASSWORD" in results["CIS-DI-0010"] and "GPG_KEY" not in results["CIS-DI-0010"]
    assert "/root/.ssh/id_rsa" in results["CIS-DI-0010"]
    assert "/usr/bin/sudo" in results["CIS-DI-0008"] and "/usr/bin/passwd" in results["CIS-DI-0008"]
    assert "admin" in results["DKL-LI-0001"]
    assert "uid 0: root, admin" in results["DKL-LI-0002"] and "gid 0" in results["DKL-LI-0002"]
    assert "file:0123abcd" not in results["CIS-DI-0009"] and "https://x/y.tgz" in results["CIS-DI-0009"]
    assert "/app/.git" in results["DKL-LI-0003"]
    assert "/app/old" not in str(facts)  # the upper layer's whiteout hides it


def test_clean_image_raises_nothing(tmp_path: Path) -> None:
    disk, diff_ids = layered_host(tmp_path, [{"/etc/passwd": b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
                                              "/etc/shadow": b"root:*:1::::::\napp:!:1::::::\n",
                                              "/bin/sh": (0o755, b"\x7fELF")}])  # fmt: skip
    problems: list[str] = []
    facts = lint.file_facts(merged_entries(disk, diff_ids, problems), problems)
    image = meta(User="app", Healthcheck={"Test": ["CMD", "true"]},
                 history=["/bin/sh -c #(nop) COPY file:1 in /app", "/bin/sh -c apt-get update && apt-get install -y x"
                          " && rm -rf /var/lib/apt/lists/*"])  # fmt: skip
    results = lint.run_lint(image, facts)
    failing = {r.id for r in results if r.status in (Status.FATAL, Status.WARN)}
    assert failing == set()
    assert {r.id for r in results if r.status is Status.INFO} <= {"CIS-DI-0005"}


def test_files_unreadable_means_skip_not_pass() -> None:
    results = lint.run_lint(meta(User="app"), NotAvailable("no docker data"))
    got = statuses(results)
    assert got["DKL-LI-0001"] is Status.SKIP and got["CIS-DI-0008"] is Status.SKIP


def test_dockle_absent_is_said(monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    outcome = lint.run_dockle("x:1", None)
    assert outcome.status == "skipped" and "not on PATH" in outcome.reason and outcome.output is None

"""A container's merged root built from overlay2-shaped dirs (whiteouts, opaque dirs, links,
devices, setuid, size bound), trivy's rootfs items placed in their layers, the triage step's
container filter and its engine-less image route (trivy itself is not run here)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from forensics.containers import merged
from forensics.containers.layers import ContainerLayers, Layer
from forensics.host.disk import DockerDisk
from forensics.records import NotAvailable
from forensics.scan import steps, trivy
from forensics.steps import REGISTRY
from forensics.triage import load_steps

L0 = "sha256:" + "a" * 64


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: 0/0 character devices and trusted.* xattrs")


def write(path: Path, data: bytes = b"x", mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


@pytest.fixture
def stack(tmp_path: Path) -> tuple[DockerDisk, ContainerLayers]:
    _need_root()
    host = tmp_path / "host"
    lower = host / "var/lib/docker/overlay2" / ("1" * 64) / "diff"
    init = host / "var/lib/docker/overlay2" / ("2" * 64 + "-init") / "diff"
    upper = host / "var/lib/docker/overlay2" / ("3" * 64) / "diff"
    write(lower / "etc/secret.pem", b"-----BEGIN RSA PRIVATE KEY-----\n")
    write(lower / "etc/keep", b"image")
    write(lower / "app/cache/old", b"old")
    write(lower / "app/config", b"v1")
    write(lower / "usr/lib/libc.so", b"elf")
    write(lower / "bin/su", b"su", mode=0o4755)
    os.symlink("/usr/lib", lower / "lib64")
    os.symlink("../../../../../../outside", lower / "escape")
    os.mkfifo(lower / "fifo")
    write(init / "etc/hosts", b"127.0.0.1 localhost\n")
    upper.mkdir(parents=True)
    (upper / "etc").mkdir()
    os.mknod(upper / "etc/secret.pem", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    (upper / "app/cache").mkdir(parents=True)
    os.setxattr(upper / "app/cache", "trusted.overlay.opaque", b"y")
    write(upper / "app/cache/new", b"new")
    write(upper / "app/config", b"v2")
    write(upper / "root/.aws/credentials", b"aws_access_key_id = AKIA...\n")
    write(upper / "big", b"z" * 4096)
    base = "/var/lib/docker/overlay2/"
    layers = ContainerLayers(
        "c" * 64, base + "3" * 64 + "/diff",
        [Layer(0, "init", NotAvailable("init"), None, base + "2" * 64 + "-init/diff"),
         Layer(1, "image", L0, 0, base + "1" * 64 + "/diff")],
        NotAvailable("no image config in this test"), "lower-file", [],
    )  # fmt: skip
    return DockerDisk(str(host)), layers


def _build(disk: DockerDisk, layers: ContainerLayers, max_bytes: int, tmp: Path) -> Any:
    probe = merged.ContainerSource(disk, layers, "c" * 64)
    return merged._build("container:" + "c" * 64, lambda: merged.ContainerSource(disk, layers, "c" * 64),
                         probe.roles, "lower-file", max_bytes, str(tmp), [])  # fmt: skip


def test_merged_root_applies_the_writable_layer_on_the_image(stack: Any, tmp_path: Path) -> None:
    disk, layers = stack
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with _build(disk, layers, 1 << 20, scratch) as built:
        root = Path(built.path)
        assert oct(os.stat(root.parent).st_mode & 0o777) == "0o700"
        assert not (root / "etc/secret.pem").exists(), "a whiteout deletes the image's file"
        assert (root / "etc/keep").read_bytes() == b"image"
        assert sorted(os.listdir(root / "app/cache")) == ["new"], "an opaque dir hides lower children"
        assert (root / "app/config").read_bytes() == b"v2"
        assert (root / "etc/hosts").read_bytes().startswith(b"127.0.0.1"), "docker's init layer is there"
        assert (root / "root/.aws/credentials").exists()
        assert os.readlink(root / "lib64") == "usr/lib", "absolute link written relative, inside"
        assert not os.path.lexists(root / "escape") and not os.path.lexists(root / "fifo")
        assert not os.stat(root / "bin/su").st_mode & stat.S_ISUID
        summary = built.summary
        assert summary.layers == (L0, "init", "writable")
        assert built.layer_of[b"/root/.aws/credentials"] == 2 and built.layer_of[b"/etc/keep"] == 0
        assert merged.describe_layer(summary, built.layer_of[b"/app/config"]) == "container:writable"
        assert merged.describe_layer(summary, built.layer_of[b"/etc/keep"]) == L0
        reasons = {s.path: s.reason for s in summary.skipped}
        assert "FIFO" in reasons["/fifo"] and "climbs out" in reasons["/escape"]
        assert summary.cleared_setid == 1 and summary.rewritten_links == 1 and summary.whiteouts_applied == 2
        assert summary.disk_bytes > 0
    assert not os.listdir(scratch), "the temp root is deleted after the scan"


def test_size_bound_skips_and_says_so(stack: Any, tmp_path: Path) -> None:
    disk, layers = stack
    with _build(disk, layers, 100, tmp_path) as built:
        assert built.summary.limit_bytes == 100 and built.summary.bytes_written <= 100
        assert any("size limit" in s.reason for s in built.summary.skipped)
        assert not (Path(built.path) / "big").exists()


def test_scan_merged_places_files_in_their_layers(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, layers = stack

    def fake_run(kind: str, target: str, label: str, cache: Any, forbidden: Any) -> trivy.TrivyReport:
        assert kind == "rootfs" and os.path.isdir(target + "/root/.aws")
        items = [trivy.TrivyItem("secret", "aws-access-key-id", "CRITICAL", "AWS", "root/.aws/credentials", "x"),
                 trivy.TrivyItem("secret", "k", "HIGH", "k", target + "/etc/keep", "x"),
                 trivy.TrivyItem("vuln", "CVE-1", "HIGH", "t", "os", "p 1", "p", "1")]  # fmt: skip
        return trivy.TrivyReport(label, kind, "0", {"vuln": "ran"}, items, [kind], 0, "", {})

    monkeypatch.setattr(trivy, "run_trivy", fake_run)
    with _build(disk, layers, 1 << 20, tmp_path) as built:
        report = trivy.scan_merged(built, "c", None, None)
    layer = {i.target.rsplit("/", 1)[-1]: i.layer for i in report.items}
    assert layer == {"credentials": "container:writable", "keep": L0, "os": ""}
    assert report.merged is not None and "vulnerabilities have none" in report.attribution
    own = steps.container_only(report, dataclasses.replace(report, items=[]))
    assert {i.id for i in own.items} == {"aws-access-key-id", "CVE-1"}
    assert {i.id for i in steps.container_only(report, report).items} == {"aws-access-key-id"}
    assert {i.id for i in steps.container_only(report, None).items} == {"aws-access-key-id"}


def test_image_without_engine_takes_the_disk_route(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class Host:
        root = Path("/")

        def engine(self) -> NotAvailable:
            return NotAvailable("--no-engine")

        def disk(self) -> Any:
            return type("D", (), {"exists": lambda self: True})()

    monkeypatch.setattr(trivy, "scan_image_offline", lambda *a: calls.append(a) or "offline")
    assert trivy.scan_image(Host(), "debian:bookworm-slim", None, 123) == "offline"
    assert calls[0][1:] == ("debian:bookworm-slim", None, 123)


def test_step_needs_no_engine_and_bound_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    load_steps()
    assert not REGISTRY["scan.trivy"].needs
    monkeypatch.setenv("FORENSICS_MERGED_MAX_MB", "10")
    assert steps.max_merged() == 10 << 20
    monkeypatch.setenv("FORENSICS_MERGED_MAX_MB", "x")
    assert steps.max_merged() == merged.MAX_BYTES

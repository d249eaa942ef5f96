"""container extract on a fake overlay2 host: merged view, caps, links, odd names, the archive."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.containers.diff import DiffOptions, analyse
from forensics.containers.extract import Extraction, archive_name, extract_changed, extract_paths
from forensics.containers.layers import container_layers, resolve_container
from forensics.evidence.verify import verify
from forensics.evidence.writer import EvidenceWriter
from forensics.host.disk import DockerDisk
from tests.unit.test_container_diff import Overlay, build, same_meta, whiteout

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: whiteouts are 0/0 character devices")


@pytest.fixture()
def victim(tmp_path: Path) -> Overlay:
    o = build(tmp_path)
    (o.image_layer / "etc/kept").write_bytes(b"from the image\n")
    (o.upper / "etc").mkdir()
    same_meta(o.init / "etc", o.upper / "etc")
    whiteout(o.upper / "etc/group")
    (o.upper / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    (o.upper / "data").mkdir()
    (o.upper / "data/big").write_bytes(b"B" * 5000)
    os.symlink("/etc/shadow", o.upper / "data/link")
    os.mkfifo(o.upper / "data/fifo")
    (o.upper / "data/new\nline").write_bytes(b"nl")
    (o.upper / os.fsdecode(b"data/\xff")).write_bytes(b"latin")
    (o.upper / "data/...").write_bytes(b"dots")
    return o


def _run(
    o: Overlay, tmp_path: Path, paths: list[bytes], cap: int = 1000
) -> tuple[EvidenceWriter, Extraction]:
    disk = DockerDisk(str(o.root))
    inventory = disk.inventory()
    container = resolve_container(inventory, o.cid)
    layers = container_layers(disk, inventory, container)
    writer = EvidenceWriter(tmp_path / "evidence")
    return writer, extract_paths(writer, "files", container, layers, str(o.root), paths, cap)


def test_directory_in_the_merged_view(victim: Overlay, tmp_path: Path) -> None:
    writer, result = _run(victim, tmp_path, [b"/etc"])
    by_path = {f.path: f for f in result.files}
    # The writable layer's passwd, the image's kept file, the init layer's hosts; group is deleted.
    assert by_path[b"/etc/passwd"].layer == "writable" and by_path[b"/etc/passwd"].status == "copied"
    assert by_path[b"/etc/kept"].layer == "image"
    assert by_path[b"/etc/hosts"].layer == "init"
    assert b"/etc/group" not in by_path
    copy = writer.top / "files/etc/passwd"
    assert copy.read_bytes().startswith(b"root:x:0:0")
    assert by_path[b"/etc/passwd"].sha256 == hashlib.sha256(copy.read_bytes()).hexdigest()
    meta = by_path[b"/etc/kept"].meta
    assert meta is not None and meta.size == len(b"from the image\n")


def test_caps_links_specials_and_odd_names(victim: Overlay, tmp_path: Path) -> None:
    writer, result = _run(victim, tmp_path, [b"/data", b"/nope", b"../../etc/passwd"])
    by_path = {f.path: f for f in result.files}
    big = by_path[b"/data/big"]
    assert big.status == "capped" and big.copied_bytes == 1000 and "cap" in big.reason
    assert (writer.top / "files/data/big").stat().st_size == 1000
    link = by_path[b"/data/link"]
    assert link.status == "link" and link.link_target == b"/etc/shadow" and link.archive_name is None
    assert by_path[b"/data/fifo"].status == "special"
    assert by_path[b"/nope"].status == "skipped"
    assert by_path[b"/data/new\nline"].archive_name == "files/data/new%0Aline"
    assert by_path[b"/data/\xff"].archive_name == "files/data/%FF"
    assert by_path[b"/data/..."].archive_name == "files/data/..."
    # ".." in a requested path is refused, never resolved.
    assert by_path[b"/../../etc/passwd"].status == "skipped"
    for f in result.files:
        if f.archive_name:
            assert (writer.top / f.archive_name).is_file()


def test_archive_names_are_safe() -> None:
    assert archive_name("files", b"/a/../b") == "files/a/%2E%2E/b"
    assert archive_name("x", b"/" + b"n" * 400).startswith("x/" + "n" * 100)


def test_changed_files_of_a_diff(victim: Overlay, tmp_path: Path) -> None:
    disk = DockerDisk(str(victim.root))
    inventory = disk.inventory()
    container = resolve_container(inventory, victim.cid)
    diff = analyse(container, container_layers(disk, inventory, container), str(victim.root),
                   DiffOptions(yara=False))  # fmt: skip
    writer = EvidenceWriter(tmp_path / "evidence")
    result = extract_changed(writer, "c/files", diff, str(victim.root), max_file=100)
    statuses = {f.path: (f.kind, f.status) for f in result.files}
    assert statuses[b"/etc/passwd"] == ("C", "copied")
    assert statuses[b"/data/big"] == ("A", "capped")
    assert statuses[b"/data/link"] == ("A", "link")
    assert b"/etc/group" not in statuses  # deleted: nothing to copy
    assert b"/data" not in statuses  # directories are not listed
    small = extract_changed(EvidenceWriter(tmp_path / "e2"), "c", diff, str(victim.root), max_total=60)
    budget = [f for f in small.files if f.status in ("copied", "capped", "skipped")]
    assert sum(f.copied_bytes for f in budget) <= 60
    assert any("budget" in f.reason for f in budget)


def test_cli_extract_writes_a_sealed_verifiable_archive(victim: Overlay, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "out"
    argv = ["container", "extract", "web", "/etc/passwd", "/data", "--output", str(out), "--root",
            str(victim.root), "--no-engine", "--max-file-size", "2000", "--json"]  # fmt: skip
    assert main(argv) == 0
    answer = json.loads(capsys.readouterr().out)
    archive = Path(answer["archive"])
    assert archive.is_file() and archive.name.startswith("extract-web-")
    assert verify(archive).intact
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        index_file = tar.extractfile(f"{top}/index.json")
        assert index_file is not None
        index = json.load(index_file)
    assert f"{top}/files/etc/passwd" in names
    assert index["counts"]["capped"] == 1
    assert {f["path"] for f in index["files"] if f["status"] == "link"} == {"/data/link"}
    assert main(["container", "extract", "ghost", "/etc", "--output", str(out), "--root", str(victim.root),
                 "--no-engine"]) == 2  # fmt: skip

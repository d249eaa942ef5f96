"""The image reader on archives built in code: docker save and OCI layouts, hostile members."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from forensics.images import analysis
from forensics.images.source import BadArchive, BadMember, LayerReading, dir_entries, member_path, open_path

Files = list[tuple[str, bytes | None]]


def layer_tar(files: Files, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A layer tar: (name, content) pairs; content None makes a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(layers: list[bytes], history: list[dict[str, object]] | None = None) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]},
                       "history": history or [{"created_by": f"step {i}"} for i in range(len(layers))]}).encode()  # fmt: skip


def save_tar(path: Path, layers: list[bytes], manifest: object = None, config: bytes | None = None) -> Path:
    config = config or config_for(layers)
    members: dict[str, bytes] = {}
    names = []
    for data in layers:
        name = f"{hashlib.sha256(data).hexdigest()}/layer.tar"
        members[name] = data
        names.append(name)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members[config_name] = config
    if manifest is None:
        manifest = [{"Config": config_name, "RepoTags": ["x:1"], "Layers": names}]
    members["manifest.json"] = json.dumps(manifest).encode()
    write_tar(path, members)
    return path


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


BASE = layer_tar([("etc", None), ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), ("data", None),
                  ("data/big", b"A" * 1000), ("data/dir", None), ("data/dir/a", b"a"), ("data/key", b"k")])  # fmt: skip
TOP = layer_tar([("data", None), ("data/big", b"B" * 400), ("data/.wh.key", b""), ("data/dir/.wh..wh..opq", b""),
                 ("data/dir/new", b"n")])  # fmt: skip


def test_docker_save_reads_every_layer_and_verifies_digests(tmp_path: Path) -> None:
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "img.tar", [BASE, TOP])))
    assert scan.kind == "docker-archive"
    assert scan.repo_tags == ("x:1",)
    assert [c.ok for c in scan.checks] == [True, True, True]
    assert [len(layer.files) for layer in scan.layers] == [7, 5]
    passwd = next(f for f in scan.layers[0].files if f.path == b"/etc/passwd")
    assert passwd.sha256 == hashlib.sha256(b"root:x:0:0::/root:/bin/sh\n").hexdigest()


def test_whiteouts_and_opaque_dirs_follow_the_oci_layer_spec(tmp_path: Path) -> None:
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "img.tar", [BASE, TOP])))
    top = analysis.layer_changes(scan)[1]
    assert top.added == (b"/data/dir/new",)
    assert top.changed == (b"/data", b"/data/big")
    assert set(top.deleted) == {b"/data/key", b"/data/dir/a"}
    assert top.opaque_dirs == (b"/data/dir",)
    final = analysis.final_files(scan)
    assert b"/data/key" not in final and b"/data/dir/a" not in final
    assert final[b"/data/big"].layer == 1 and final[b"/etc/passwd"].layer == 0


def test_efficiency_follows_dive(tmp_path: Path) -> None:
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "img.tar", [BASE, TOP])))
    eff = analysis.efficiency(scan)
    # /data/big: 1000 + 400 in two layers; /data/key: 1 + its whiteout (0): both repeated.
    assert [(r.path, r.count, r.size) for r in eff.repeated] == [("/data/big", 2, 1400), ("/data/key", 2, 1)]
    assert eff.wasted == 1401
    leaves = {"/etc/passwd": (26, 26), "/data/big": (400, 1400), "/data/dir/a": (1, 1), "/data/key": (0, 1),
              "/data/dir/new": (1, 1)}  # fmt: skip
    assert eff.efficiency == pytest.approx(
        sum(m for m, _ in leaves.values()) / sum(t for _, t in leaves.values())
    )
    assert eff.size == 26 + 1000 + 1 + 1 + 400 + 1
    assert eff.user_wasted_percent == pytest.approx(1401 / 401 * 100)


def test_a_changed_layer_is_a_digest_mismatch(tmp_path: Path) -> None:
    tampered = layer_tar([("etc", None), ("etc/passwd", b"evil::0:0::/:/bin/sh\n")])
    config = config_for([BASE])
    members = {"aa" * 32 + "/layer.tar": tampered, hashlib.sha256(config).hexdigest() + ".json": config,
               "manifest.json": json.dumps([{"Config": hashlib.sha256(config).hexdigest() + ".json",
                                             "Layers": ["aa" * 32 + "/layer.tar"]}]).encode()}  # fmt: skip
    write_tar(tmp_path / "t.tar", members)
    scan = analysis.scan_image(open_path(tmp_path / "t.tar"))
    findings = analysis.integrity_findings(scan, "test")
    assert [f.rule for f in findings] == ["image.digest-mismatch"]
    assert "layer 0 diff_id" in findings[0].title


@pytest.mark.parametrize("bad", ["../../x.json", "/etc/passwd", "sha256:../..", "blobs/sha256/../../x"])
def test_manifest_naming_a_non_digest_path_is_an_error(tmp_path: Path, bad: str) -> None:
    manifest = [{"Config": bad, "Layers": []}]
    with pytest.raises(BadArchive):
        open_path(save_tar(tmp_path / "m.tar", [BASE], manifest=manifest))
    manifest = [{"Config": hashlib.sha256(config_for([BASE])).hexdigest() + ".json", "Layers": [bad]}]
    with pytest.raises(BadArchive):
        open_path(save_tar(tmp_path / "l.tar", [BASE], manifest=manifest))


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/abs", "a\0b"])
def test_member_path_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(BadMember):
        member_path(name)


def test_hostile_layer_members_are_recorded_and_skipped(tmp_path: Path) -> None:
    evil = []
    for name in ("../../etc/cron.d/x", "/abs/file"):
        info = tarfile.TarInfo(name)
        evil.append(info)
    link = tarfile.TarInfo("hl")
    link.type = tarfile.LNKTYPE
    link.linkname = "../../../etc/shadow"
    evil.append(link)
    layer = layer_tar([("ok", b"fine")], evil)
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "e.tar", [layer])))
    assert [f.path for f in scan.layers[0].files] == [b"/ok"]
    assert len(scan.layers[0].problems) == 3


def test_huge_pax_header_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("x")
    info.pax_headers = {"comment": "A" * (2 << 20)}
    layer = layer_tar([("first", b"1")], [info])
    scan = analysis.scan_image(open_path(save_tar(tmp_path / "p.tar", [layer])))
    assert [f.path for f in scan.layers[0].files] == [b"/first"]
    assert any("PAX header" in p for p in scan.layers[0].problems)


def oci_layout(top: Path, layers: list[bytes], compress: bool) -> Path:
    blobs = top / "blobs/sha256"
    blobs.mkdir(parents=True)
    descriptors = []
    for data in layers:
        stored = gzip.compress(data) if compress else data
        (blobs / hashlib.sha256(stored).hexdigest()).write_bytes(stored)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(stored),
                            "size": len(stored)})  # fmt: skip
    config = config_for(layers)
    (blobs / hashlib.sha256(config).hexdigest()).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": sha(config), "size": len(config)},
                           "layers": descriptors}).encode()  # fmt: skip
    (blobs / hashlib.sha256(manifest).hexdigest()).write_bytes(manifest)
    (top / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (top / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"digest": sha(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))  # fmt: skip
    return top


def test_oci_layout_dir_and_tar_with_gzip_layers(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "oci", [BASE, TOP], compress=True)
    as_dir = analysis.scan_image(open_path(layout))
    assert as_dir.kind == "oci-layout"
    assert all(c.ok for c in as_dir.checks) and len(as_dir.checks) == 6
    archive = tmp_path / "oci.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    as_tar = analysis.scan_image(open_path(archive))
    assert analysis.efficiency(as_tar) == analysis.efficiency(as_dir)
    assert analysis.final_files(as_tar).keys() == analysis.final_files(as_dir).keys()


def test_oci_index_with_a_path_instead_of_a_digest_is_an_error(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "oci", [BASE], compress=False)
    (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": "sha256:../../etc/passwd"}]}))
    with pytest.raises(BadArchive):
        open_path(layout)


def test_layer_dir_entries_in_tar_order_with_overlay_marks(tmp_path: Path) -> None:
    """An overlay2 diff dir read as a layer: each directory's names sorted, then its
    subdirectories; 0/0 char devices as whiteouts, the opaque xattr as a marker after its
    dir, a second name of an inode as a hard link, link targets as stored."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mknod and trusted.* xattrs")
    top = tmp_path / "diff"
    (top / "b/inner").mkdir(parents=True)
    (top / "a").mkdir()
    (top / "a/file").write_bytes(b"12345")
    os.link(top / "a/file", top / "b/again")
    os.symlink("../a/file", top / "b/link")
    os.symlink("/etc/shadow", top / "b/inner/out")  # a target as data: never followed
    os.mknod(top / "gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(top / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(top / "b", "trusted.overlay.opaque", b"y")
    layer = LayerReading("diff", lambda _layer: iter(()))
    entries = list(dir_entries(str(top), layer))
    assert [(e.path, e.type, e.link, e.size) for e in entries] == [
        (b"/a", "dir", b"", 0),
        (b"/b", "dir", b"", 0),
        (b"/b", "opaque", b"", 0),
        (b"/gone", "whiteout", b"", 0),
        (b"/null", "char", b"", 0),
        (b"/a/file", "file", b"", 5),
        (b"/b/again", "hardlink", b"/a/file", 0),
        (b"/b/inner", "dir", b"", 0),
        (b"/b/link", "symlink", b"../a/file", 0),
        (b"/b/inner/out", "symlink", b"/etc/shadow", 0),
    ]
    assert entries[5].read(3) == b"123"
    assert layer.problems == []


def test_layer_dir_files_are_read_to_their_end_and_no_further_than_asked(tmp_path: Path) -> None:
    """A layer dir's file is read from its first read of fstat's size (and a byte more) to its
    real end: a file that grew after the listing is read whole, a limit cuts it short (image
    extract asks for one byte past its own limit to see an overrun)."""
    top = tmp_path / "diff"
    top.mkdir()
    big = os.urandom((2 << 20) + 3)
    (top / "big").write_bytes(big)
    (top / "empty").write_bytes(b"")
    (top / "grows").write_bytes(b"before")
    layer = LayerReading("diff", lambda _layer: iter(()))
    entries = {e.path: e for e in dir_entries(str(top), layer)}
    with open(top / "grows", "ab") as f:
        f.write(b" and after" * 1000)
    assert entries[b"/big"].read(len(big) + 1) == big
    assert entries[b"/big"].read((1 << 20) + 7) == big[: (1 << 20) + 7]
    assert entries[b"/empty"].read(10) == b""
    grown = (top / "grows").read_bytes()
    assert entries[b"/grows"].size == 6 and entries[b"/grows"].read(1 << 30) == grown
    assert entries[b"/grows"].read(7) == grown[:7]

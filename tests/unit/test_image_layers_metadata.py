"""`image layers` reads metadata only: on a disk source no file of a layer is opened.

The kernel says what was opened: inotify watches on every directory of the layer dirs
report each open (and read) of a file in them, whatever the opener's flags (O_NOATIME
hides a read from the atime, not from inotify). The same scan with content is the
control: it must be seen opening the files, or the watch proves nothing.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.context import HostContext
from forensics.host.disk import DockerDisk
from forensics.images import analysis
from forensics.images.source import open_image
from tests.unit.fakehost import Layer, add_layered_image, fake_host

IN_ACCESS = 0x1
IN_OPEN = 0x20
IN_ISDIR = 0x40000000
_EVENT = struct.Struct("iIII")

LAYERS: list[Layer] = [
    {"bin": None, "bin/sh": b"\x7fELF not really", "etc": None, "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"},
    {"etc": None, "etc/passwd": b"root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n",
     "app": None, "app/run.sh": b"#!/bin/sh\nexec httpd\n", "app/data": None, "app/data/big": b"x" * 70_000},
]  # fmt: skip


class Opens:
    """inotify watches on directories; which names in them were opened or read."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip(f"inotify unavailable: {os.strerror(ctypes.get_errno())}")
        self.dirs: dict[int, bytes] = {}

    def watch_tree(self, top: str) -> None:
        for here, _dirs, _files in os.walk(top):
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(here), IN_OPEN | IN_ACCESS)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.dirs[wd] = os.fsencode(here)

    def files(self) -> set[bytes]:
        """Files (not directories) opened or read since the last call."""
        out: set[bytes] = set()
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + size].rstrip(b"\0")
                offset += _EVENT.size + size
                if name and not mask & IN_ISDIR:
                    out.add(self.dirs[wd] + b"/" + name)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def image(tmp_path: Path) -> Iterator[tuple[Path, str, Opens]]:
    root = fake_host(tmp_path)
    image_id = add_layered_image(root, "meta", "meta:1", LAYERS, ["ADD rootfs /", "COPY app /app"])
    disk = DockerDisk(str(root))
    found = next(i for i in disk.inventory().images if i.id == image_id)
    top = [str(root) + str(d) for d in disk.layer_dirs(found.diff_ids)]
    assert all(os.path.isdir(d) for d in top)
    # A second name of one inode becomes a hard link entry; a symlink's target is read, not followed.
    os.link(top[1] + "/app/run.sh", top[1] + "/app/start.sh")
    os.symlink("/app/run.sh", top[1] + "/app/current")
    opens = Opens()
    for layer in top:
        opens.watch_tree(layer)
    yield root, image_id, opens
    opens.close()


def _scan(root: Path, content: bool) -> analysis.ImageScan:
    ctx = HostContext.build(root, None, True)
    return analysis.scan_image(open_image(ctx, "meta:1"), analysis.ScanOptions(search=False, content=content))


def test_metadata_scan_opens_no_file(image: tuple[Path, str, Opens]) -> None:
    root, _image_id, opens = image
    meta = _scan(root, content=False)
    assert opens.files() == set()
    full = _scan(root, content=True)
    opened = opens.files()
    # The control: reading content is seen, every regular file of both layers.
    assert {os.path.basename(p) for p in opened} >= {b"sh", b"passwd", b"run.sh", b"big"}

    records = [f for layer in meta.layers for f in layer.files]
    assert {f.type for f in records} >= {"file", "dir", "hardlink", "symlink"}
    for f in records:
        if f.type in ("file", "hardlink"):
            assert f.sha256 == analysis.NOT_READ
            assert f.secrets == () and f.parsed == ()
        else:
            assert f.sha256 is None
    assert next(f.link for f in records if f.type == "symlink") == b"/app/run.sh"
    # Everything but the hashes is the same as with content: what image layers shows.
    assert [[(f.path, f.type, f.size, f.mode, f.link) for f in layer.files] for layer in meta.layers] == [
        [(f.path, f.type, f.size, f.mode, f.link) for f in layer.files] for layer in full.layers
    ]
    assert analysis.layer_changes(meta) == analysis.layer_changes(full)
    assert analysis.efficiency(meta) == analysis.efficiency(full)
    assert meta.checks == full.checks and all(c.ok for c in meta.checks)


def test_image_layers_command_opens_no_file(
    image: tuple[Path, str, Opens], capsys: pytest.CaptureFixture[str]
) -> None:
    root, image_id, opens = image
    assert main(["image", "layers", "meta:1", "--json", "--root", str(root), "--no-engine"]) == 0
    assert opens.files() == set()
    out = json.loads(capsys.readouterr().out)
    assert out["image"] == image_id and out["source"] == "disk"
    assert [c["path"] for c in out["layers"][1]["changed"]] == ["/etc", "/etc/passwd"]
    assert {c["path"] for c in out["layers"][1]["added"]} >= {"/app/run.sh", "/app/start.sh", "/app/current"}
    # A hard link carries no bytes of its own (as in a layer tar): dive's sizes count files only.
    assert out["efficiency"]["size"] == sum(len(c) for layer in LAYERS for c in layer.values() if c)

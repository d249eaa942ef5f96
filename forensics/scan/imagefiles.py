"""The merged file view of an image, read from its overlay2 layer dirs on disk.

A small stand-in for the image reader (:mod:`forensics.images`), kept behind one function
(:func:`merged_entries`) so it can be swapped for it. Layers are read top first; a path
seen in an upper layer hides the same path below; overlay2 whiteouts (0/0 character
devices) and opaque directories (``trusted.overlay.opaque=y``) hide lower entries. Every
read goes through :class:`RootFS`; links are never followed.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator

from forensics.errors import UnsafePath
from forensics.host.disk import DockerDisk
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable

MAX_ENTRIES = 2_000_000


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    """One path as the image's final file system shows it."""

    path: bytes
    st: os.stat_result
    layer: int
    """Index of the layer it comes from, lowest = 0."""
    fs: RootFS
    """That layer's diff dir, to read the file through."""


def _parents(path: bytes) -> Iterator[bytes]:
    while True:
        path = path.rpartition(b"/")[0]
        if not path:
            return
        yield path


def _opaque(fs: RootFS, path: bytes) -> bool:
    try:
        return os.getxattr(fs.root + path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def merged_entries(disk: DockerDisk, diff_ids: list[str], problems: list[str]) -> Iterator[ImageEntry]:
    """Every path of the image's final view (root excluded), with the layer it comes from."""
    dirs = disk.layer_dirs(diff_ids)
    seen: set[bytes] = set()
    hidden: set[bytes] = set()
    """Paths deleted by an upper layer: they and everything below them are gone."""
    opaque: set[bytes] = set()
    """Directories an upper layer made opaque: lower layers' children do not show."""
    for index in range(len(dirs) - 1, -1, -1):
        where = dirs[index]
        if isinstance(where, NotAvailable):
            problems.append(f"layer {index}: {where.reason}")
            continue
        try:
            fs = RootFS(disk.fs.host_path(where))
        except (UnsafePath, OSError) as exc:
            problems.append(f"layer {index} ({where}): {exc}")
            continue
        new_hidden: set[bytes] = set()
        new_opaque: set[bytes] = set()
        try:
            for path, st in fs.walk(b"/", max_entries=MAX_ENTRIES):
                if path in (b"/", b"") or path in seen or path in hidden:
                    continue
                parents = list(_parents(path))
                if any(p in hidden or p in opaque for p in parents):
                    continue
                dirname, _, name = path.rpartition(b"/")
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    new_hidden.add(path)
                    continue
                if name == b".wh..wh..opq":
                    new_opaque.add(dirname)
                    continue
                if name.startswith(b".wh."):
                    new_hidden.add(dirname + b"/" + name[4:])
                    continue
                seen.add(path)
                if stat.S_ISDIR(st.st_mode) and _opaque(fs, path):
                    new_opaque.add(path)
                yield ImageEntry(path, st, index, fs)
        except (UnsafePath, OSError) as exc:
            problems.append(f"layer {index}: walk stopped: {exc}")
        hidden |= new_hidden
        opaque |= new_opaque

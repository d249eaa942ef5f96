"""Find a file as a container sees it, from disk: its writable layer first, then its
image's layers from the top, the way overlayfs merges them.

Each layer is its own :class:`RootFS`, so a link is resolved inside the layer that holds
it. What this does not do: follow a link that lives in one layer to a target in another
(e.g. ``/bin -> usr/bin`` from the base image, with the file in the writable layer);
name the path without such links (``/usr/bin/x``). A whiteout (0/0 character device) or
an opaque directory (``trusted.overlay.opaque=y``) in a higher layer hides what lies
below, as it does for the container.
"""

from __future__ import annotations

import dataclasses
import os
import stat

from forensics.errors import NotFound, UnsafePath, UsageProblem
from forensics.host.disk import DiskContainer, DockerDisk
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable, display_path


@dataclasses.dataclass(frozen=True)
class Located:
    """Where the file the container sees lives."""

    fs: RootFS
    """The layer that holds it."""
    path: bytes
    layer: str
    """``upper`` (the container's writable layer) or ``image layer N`` (0 = lowest)."""
    container: DiskContainer


def find_container(disk: DockerDisk, ref: str) -> DiskContainer:
    """A container by name or id prefix, read from disk."""
    containers = disk.inventory().containers
    exact = [c for c in containers if ref in (c.id, c.name)]
    if exact:
        return exact[0]
    matches = [c for c in containers if len(ref) >= 4 and c.id.startswith(ref)]
    if len(matches) > 1:
        raise UsageProblem(f"container {ref!r} is ambiguous: {', '.join(c.id[:12] for c in matches)}")
    if not matches:
        raise NotFound(f"no container {ref!r} on disk")
    return matches[0]


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(fs: RootFS, path: bytes) -> bool:
    try:
        value = os.getxattr(fs.host_path(path), "trusted.overlay.opaque", follow_symlinks=False)
    except OSError:
        return False
    return value == b"y"


def layers(disk: DockerDisk, container: DiskContainer) -> list[tuple[str, str | NotAvailable]]:
    """(label, directory inside the host root) from the top: upper, then image layers."""
    out: list[tuple[str, str | NotAvailable]] = [("upper", disk.upper_dir(container))]
    image = next((i for i in disk.inventory().images if i.id == container.image_id), None)
    if image is not None:
        lowers = disk.layer_dirs(image.diff_ids, container.driver or "overlay2")
        out.extend((f"image layer {n}", d) for n, d in reversed(list(enumerate(lowers))))
    return out


def locate(disk: DockerDisk, container: DiskContainer, path: str | bytes) -> Located:
    """The topmost layer holding ``path``, unless a higher layer deletes or hides it."""
    raw = os.fsencode(path)
    parts = [p for p in raw.split(b"/") if p and p != b"."]
    if not parts or b".." in parts:
        raise UsageProblem(f"give an absolute path inside the container, without '..': {display_path(raw)!r}")
    host = disk.fs
    for label, directory in layers(disk, container):
        if isinstance(directory, NotAvailable):
            continue
        try:
            fs = RootFS(host.host_path(directory))
        except (UnsafePath, OSError):
            continue
        hidden_below = False
        for depth in range(1, len(parts) + 1):
            prefix = b"/" + b"/".join(parts[:depth])
            try:
                resolved = fs.resolve(prefix, follow_final=depth < len(parts))
            except (UnsafePath, OSError):
                break
            if resolved.stat is None:
                break
            if _whiteout(resolved.stat):
                raise NotFound(f"{display_path(raw)} is deleted in the container ({label} has a whiteout)")
            if depth == len(parts):
                return Located(fs, b"/" + b"/".join(parts), label, container)
            if stat.S_ISDIR(resolved.stat.st_mode) and _opaque(fs, resolved.path):
                hidden_below = True
        if hidden_below:
            break
    raise NotFound(
        f"{display_path(raw)} is not in container {container.id[:12]} (upper layer or image layers)"
    )

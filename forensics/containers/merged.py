"""A container's (or an image's) merged root, built from disk into a private temp directory.

Nothing is mounted and nothing of the suspect's runs. The layers a container's overlay
mount stacks (its image layers and docker's init layer, from
:func:`forensics.containers.layers.container_layers`, then its writable layer) are read as
directories on disk (:func:`forensics.images.source.dir_entries`: lstat only, files opened
through :class:`~forensics.host.rootfs.RootFS` with ``O_NOATIME``, 0/0 character devices
as whiteouts, ``trusted.overlay.opaque`` as opaque markers) and handed to
:func:`forensics.images.extract.extract` as one image whose top layer is the writable one.
So the rules of image extraction hold for the container too: whiteouts delete, opaque
directories hide lower children, a later file replaces an earlier one, symlinks are kept
only when they resolve inside the temp root (absolute targets rewritten relative first),
no devices, FIFOs or sockets, setuid and setgid cleared, a total size bound, and every
refusal recorded with why.

Not handled: overlayfs ``redirect_dir`` and ``metacopy`` (docker's overlay2 does not turn
them on) and the xattr form of whiteouts; a running container's writable layer may change
while it is read (what was read is what the temp root holds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from forensics.containers.layers import container_layers, resolve_container
from forensics.host.disk import DiskImage, DockerDisk
from forensics.images import extract
from forensics.images.source import (
    DiskSource,
    Entry,
    ImageSource,
    LayerInfo,
    LayerReading,
    dir_entries,
    find_disk_image,
)
from forensics.records import display_path

MAX_BYTES = 4 << 30
"""Default bound on file content written into the temp root."""
SPARE_BYTES = 256 << 20
"""Free space left on the temp file system when the bound is lowered to fit it."""
MAX_REFUSALS_KEPT = 200
"""Refusals listed in the summary (all are counted)."""
WRITABLE = "writable"
INIT = "init"


@dataclasses.dataclass(frozen=True)
class Skipped:
    path: str
    """Display form of the path inside the merged root (empty: a whole layer member)."""
    layer: str
    reason: str


@dataclasses.dataclass(frozen=True)
class MergedRoot:
    """What went into a merged root (the directory itself is gone once the scan is over)."""

    subject: str
    """``container:<id>`` or ``image:<id>``."""
    layers: tuple[str, ...]
    """What each layer index is, lowest first: an image layer's diff id, ``init`` or ``writable``."""
    stack_source: str
    """Where the layer list came from: ``lower-file``, ``image-config`` or ``image``."""
    entries: int
    """Entries written (files, directories, links)."""
    bytes_written: int
    disk_bytes: int
    """Space the temp root took (allocated blocks)."""
    limit_bytes: int
    whiteouts_applied: int
    skipped_count: int
    skipped: tuple[Skipped, ...]
    """The first :data:`MAX_REFUSALS_KEPT` refusals (size limit, devices, escaping links...)."""
    cleared_setid: int
    rewritten_links: int
    """Absolute symlinks written relative to the temp root."""
    seconds: float
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Built:
    """A merged root on disk (valid inside the ``with`` only)."""

    path: str
    summary: MergedRoot
    layer_of: dict[bytes, int]
    """Path inside the root -> index of the layer that supplied it."""


class ContainerSource(ImageSource):
    """A container's overlay stack read from disk as one image: its lowers, then its writable layer."""

    kind = "container-disk"

    def __init__(self, disk: DockerDisk, stack: Any, ref: str) -> None:
        super().__init__(ref)
        self.disk = disk
        if isinstance(stack.image, DiskImage):
            try:
                image = DiskSource(disk, stack.image, ref)
            except Exception as exc:  # a broken config loses only the metadata, not the files
                self.problem(f"image config unreadable: {exc}")
            else:
                self.config, self.config_digest = image.config, image.config_digest
                self.repo_tags = list(image.repo_tags)
                self.checks = list(image.checks)
        self.roles: list[str] = []
        self._dirs: dict[str, str] = {}
        lowest_first = [*reversed(stack.lowers)]
        for index, lower in enumerate(lowest_first):
            role = lower.diff_id if isinstance(lower.diff_id, str) else lower.role
            self._add(index, role, lower.path)
        self._add(len(lowest_first), WRITABLE, stack.upper)

    def _add(self, index: int, role: str, path: str) -> None:
        key = f"{index}:{role}"
        self.roles.append(role)
        self.layers.append(LayerInfo(index, role if role.startswith("sha256:") else "", role))
        self.layer_keys.append(key)
        self._dirs[key] = path

    def walk(self) -> Iterator[LayerReading]:
        for key in self.layer_keys:
            yield LayerReading(key, self._entries)

    def _entries(self, layer: LayerReading) -> Iterator[Entry]:
        where = self._dirs[layer.key]
        top = os.fsdecode(self.disk.fs.root.rstrip(b"/") + os.fsencode(where))
        try:
            yield from dir_entries(top, layer)
        except OSError as exc:
            layer.problem(f"{where}: {exc}")


def _limit(parent: str, wanted: int) -> tuple[int, list[str]]:
    """The size bound, lowered to what the temp file system can hold."""
    try:
        st = os.statvfs(parent)
    except OSError as exc:
        return wanted, [f"free space of {parent} unknown: {exc}"]
    free = st.f_bavail * st.f_frsize
    if free - SPARE_BYTES < wanted:
        fit = max(0, free - SPARE_BYTES)
        return fit, [f"size bound lowered from {wanted} to {fit} bytes: {parent} has {free} bytes free"]
    return wanted, []


def _disk_usage(path: str) -> int:
    total = 0
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


@contextlib.contextmanager
def _build(
    subject: str, open_source: Any, roles: list[str], stack_source: str, max_bytes: int, tmp: str | None,
    problems: list[str],
) -> Iterator[Built]:  # fmt: skip
    scratch = tempfile.mkdtemp(prefix="forensics-merged-", dir=tmp)  # mode 0700
    try:
        limit, notes = _limit(scratch, max_bytes)
        problems.extend(notes)
        root = os.path.join(scratch, "root")
        started = time.monotonic()
        result = extract.extract(
            open_source, root, limits=extract.Limits(max_bytes=limit), rewrite_absolute=True
        )
        seconds = time.monotonic() - started
        skipped = [
            Skipped(display_path(r.path), roles[r.layer] if r.layer is not None and r.layer < len(roles) else "",
                    r.reason)
            for r in result.refused
        ]  # fmt: skip
        summary = MergedRoot(
            subject, tuple(roles), stack_source, len(result.written), result.bytes_written, _disk_usage(root),
            limit, result.whiteouts_applied, len(skipped), tuple(skipped[:MAX_REFUSALS_KEPT]),
            len(result.cleared_setid), len(result.rewritten_links), round(seconds, 3),
            tuple([*problems, *result.problems]),
        )  # fmt: skip
        yield Built(root, summary, {w.path: w.layer for w in result.written})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def container_root(
    host: Any, ref: str, max_bytes: int = MAX_BYTES, tmp: str | None = None
) -> Iterator[Built]:
    """The merged root of container ``ref`` (name or id prefix), read from the host root's disk."""
    disk = host.disk()
    disk.require()
    inventory = disk.inventory()
    container = resolve_container(inventory, ref)
    stack = container_layers(disk, inventory, container)
    probe = ContainerSource(disk, stack, container.id)
    problems = [*stack.problems, *probe.problems]
    if not stack.lowers:
        problems.append("no lower layer found: the merged root holds the writable layer only")
    with _build(f"container:{container.id}", lambda: ContainerSource(disk, stack, container.id), probe.roles,
                stack.source, max_bytes, tmp, problems) as built:  # fmt: skip
        yield built


@contextlib.contextmanager
def image_root(host: Any, ref: str, max_bytes: int = MAX_BYTES, tmp: str | None = None) -> Iterator[Built]:
    """The merged root of a local image, read from its layer dirs on disk (no engine)."""
    disk = host.disk()
    disk.require()
    image = find_disk_image(disk, ref)
    roles = list(image.diff_ids)
    with _build(f"image:{image.id}", lambda: DiskSource(disk, image, ref), roles, "image", max_bytes, tmp,
                []) as built:  # fmt: skip
        yield built


def describe_layer(summary: MergedRoot, index: int | None) -> str:
    """An image layer's diff id, or ``container:init`` / ``container:writable``."""
    if index is None or not 0 <= index < len(summary.layers):
        return ""
    role = summary.layers[index]
    return role if role.startswith("sha256:") else f"container:{role}"


__all__ = ["MAX_BYTES", "Built", "ContainerSource", "MergedRoot", "Skipped", "container_root", "describe_layer",
           "image_root"]  # fmt: skip

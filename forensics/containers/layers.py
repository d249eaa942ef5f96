"""Which container is meant, and which directories on disk make up its file system.

A container is named by a name or an id prefix and found in the disk inventory, so the
answer does not depend on the daemon. Its layers are read from the overlay2 metadata:
the writable layer from ``layerdb/mounts/<id>/mount-id``, the lower layers from
``overlay2/<mount-id>/lower`` (what the kernel mounts, top first, the init layer first),
each ``l/<short>`` link resolved inside the host root and checked to be
``overlay2/<64 hex>[-init]/diff``. Each lower directory is then matched with the image's
layers (``rootfs.diff_ids`` through ``layerdb/sha256/<chain-id>/cache-id``), so a change
can say which image layer held the original. When ``lower`` is unreadable the image's
layers (and the init layer from ``init-id``) are used instead, and that is recorded.
"""

from __future__ import annotations

import dataclasses
import os
import re

from forensics.errors import EnvironmentProblem, NotFound, UnsafePath
from forensics.host.disk import DiskContainer, DiskImage, DiskInventory, DockerDisk
from forensics.records import NotAvailable

_SHORT_LINK = re.compile(r"l/[A-Za-z0-9]{1,64}")
_LAYER_DIR = re.compile(r"([0-9a-f]{64}(?:-init)?)")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One read-only layer below a container's writable layer."""

    position: int
    """Place in the lower stack, 0 = topmost (the init layer, normally)."""
    role: str
    """``image`` (a layer of the container's image), ``init`` (docker's per-container
    layer: /etc/hosts, /.dockerenv, ...) or ``unknown`` (in ``lower`` but in neither)."""
    diff_id: str | NotAvailable
    """The image layer's diff_id (``sha256:...``)."""
    image_index: int | None
    """Index in the image's ``rootfs.diff_ids`` (0 = base layer)."""
    path: str
    """The layer's ``diff`` directory inside the host root."""


@dataclasses.dataclass(frozen=True)
class ContainerLayers:
    """Where a container's file system lies on disk."""

    container_id: str
    upper: str
    """The writable layer's ``diff`` directory inside the host root."""
    lowers: list[Layer]
    """Read-only layers, top first."""
    image: DiskImage | NotAvailable
    source: str
    """``lower-file`` or ``image-config``: where the stack came from."""
    problems: list[str]


def resolve_container(inventory: DiskInventory, ref: str) -> DiskContainer:
    """A container by full id, name (with or without ``/``) or unique id prefix."""
    ref = ref.strip()
    if not ref:
        raise NotFound("no container named")
    by_name = [c for c in inventory.containers if c.name == ref.lstrip("/")]
    exact = [c for c in inventory.containers if c.id == ref]
    if exact:
        return exact[0]
    if len(by_name) == 1:
        return by_name[0]
    if re.fullmatch(r"[0-9a-f]{1,64}", ref):
        matches = [c for c in inventory.containers if c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(f"{c.id[:12]} ({c.name})" for c in matches[:10])
            raise NotFound(f"container id prefix {ref!r} is ambiguous: {names}")
    raise NotFound(f"no container {ref[:80]!r} on disk (under {inventory.data_root})")


def select_containers(inventory: DiskInventory, refs: list[str]) -> list[DiskContainer]:
    """Containers named by ``refs`` (all when empty); an unknown name raises NotFound."""
    if not refs:
        return list(inventory.containers)
    chosen: dict[str, DiskContainer] = {}
    for ref in refs:
        found = resolve_container(inventory, ref)
        chosen[found.id] = found
    return list(chosen.values())


def host_path(root: str | os.PathLike[str], inside: str) -> str:
    """A canonical path inside the host root as a path on this machine."""
    return os.path.join(os.fspath(root), inside.lstrip("/")) if inside != "/" else os.fspath(root)


def container_layers(disk: DockerDisk, inventory: DiskInventory, container: DiskContainer) -> ContainerLayers:
    """The writable and read-only layer directories of ``container``.

    Raises EnvironmentProblem when there is no writable layer to read.
    """
    if container.driver != "overlay2":
        raise EnvironmentProblem(
            f"container {container.id[:12]} uses the {container.driver or 'unknown'} storage driver; "
            "only overlay2 is read from disk"
        )
    upper = disk.upper_dir(container)
    if isinstance(upper, NotAvailable):
        raise EnvironmentProblem(f"container {container.id[:12]} has no writable layer: {upper.reason}")
    problems: list[str] = []
    upper = _layer_dir(disk, container.driver, upper)
    image: DiskImage | NotAvailable = NotAvailable(f"image {container.image_id or '?'} is not on disk")
    for candidate in inventory.images:
        if candidate.id == container.image_id:
            image = candidate
    image_dirs: dict[str, tuple[int, str]] = {}
    if isinstance(image, DiskImage):
        for index, (diff_id, layer_dir) in enumerate(
            zip(image.diff_ids, disk.layer_dirs(image.diff_ids), strict=True)
        ):
            if isinstance(layer_dir, NotAvailable):
                problems.append(f"image layer {index} ({diff_id}): {layer_dir.reason}")
                continue
            try:
                image_dirs[_layer_dir(disk, container.driver, layer_dir)] = (index, diff_id)
            except EnvironmentProblem as exc:
                problems.append(f"image layer {index} ({diff_id}): {exc}")
    else:
        problems.append(image.reason)
    init_dir = _init_dir(disk, container, problems)
    from_lower = _lower_file(disk, container, problems)
    source = "lower-file"
    if from_lower is None:
        source = "image-config"
        ordered = sorted(image_dirs.items(), key=lambda item: -item[1][0])
        from_lower = ([init_dir] if init_dir else []) + [path for path, _ in ordered]
        problems.append("the lower file is unreadable: layers taken from the image config")
    lowers = []
    for position, path in enumerate(from_lower):
        if path in image_dirs:
            index, diff_id = image_dirs[path]
            lowers.append(Layer(position, "image", diff_id, index, path))
        elif path == init_dir:
            lowers.append(Layer(position, "init", NotAvailable("docker's init layer"), None, path))
        else:
            problems.append(f"lower layer {path} is neither a layer of the image nor the init layer")
            lowers.append(Layer(position, "unknown", NotAvailable("not a layer of the image"), None, path))
    if isinstance(image, DiskImage) and source == "lower-file":
        missing = set(image_dirs) - set(from_lower)
        if missing:
            problems.append(f"{len(missing)} layer(s) of the image are not in the container's lower file")
    return ContainerLayers(container.id, upper, lowers, image, source, problems)


def _canonical_dir(disk: DockerDisk, path: str) -> str:
    """Resolve ``path`` inside the host root (links taken inside it) and require a directory."""
    try:
        resolved = disk.fs.resolve(path)
    except (UnsafePath, OSError) as exc:
        raise EnvironmentProblem(f"{path}: {exc}") from exc
    if resolved.stat is None:
        raise EnvironmentProblem(f"{path} is missing")
    if not (resolved.stat.st_mode & 0o170000 == 0o040000):
        raise EnvironmentProblem(f"{path} is not a directory")
    return resolved.path.decode("utf-8", "surrogateescape")


def _layer_dir(disk: DockerDisk, driver: str, path: str) -> str:
    """A layer's ``diff`` directory, which must be exactly ``<driver dir>/<id>/diff``.

    The docker root itself may be a link (a data disk mounted elsewhere); a ``diff`` that is
    a link to somewhere else in the host root is refused rather than walked.
    """
    resolved = _canonical_dir(disk, path)
    base = _canonical_or_same(disk, disk.path(driver))
    name = path.rstrip("/").split("/")[-2]
    if resolved != f"{base}/{name}/diff":
        raise EnvironmentProblem(f"{path} leads to {resolved!r}, not to a layer directory: refused")
    return resolved


def _init_dir(disk: DockerDisk, container: DiskContainer, problems: list[str]) -> str | None:
    raw = disk.read_small(disk.path("image", container.driver, "layerdb", "mounts", container.id, "init-id"))
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}-init", raw):
        problems.append("init-id is not '<64 hex>-init': ignored")
        return None
    try:
        return _layer_dir(disk, container.driver, disk.path(container.driver, raw, "diff"))
    except EnvironmentProblem as exc:
        problems.append(f"init layer: {exc}")
        return None


def _lower_file(disk: DockerDisk, container: DiskContainer, problems: list[str]) -> list[str] | None:
    if isinstance(container.mount_id, NotAvailable):
        return None
    raw = disk.read_small(disk.path(container.driver, container.mount_id, "lower"))
    if raw is None:
        return None
    dirs = []
    base = disk.path(container.driver)
    for entry in raw.split(":"):
        if not _SHORT_LINK.fullmatch(entry):
            problems.append(f"lower file entry {entry[:80]!r} is not l/<name>")
            return None
        try:
            resolved = _canonical_dir(disk, f"{base}/{entry}")
        except EnvironmentProblem as exc:
            problems.append(f"lower file entry {entry}: {exc}")
            return None
        head, _, tail = resolved.rpartition("/")
        parent, _, layer = head.rpartition("/")
        if tail != "diff" or not _LAYER_DIR.fullmatch(layer) or parent != _canonical_or_same(disk, base):
            problems.append(f"lower file entry {entry} leads to {resolved!r}, not a layer directory")
            return None
        dirs.append(resolved)
    return dirs


def _canonical_or_same(disk: DockerDisk, path: str) -> str:
    try:
        return _canonical_dir(disk, path)
    except EnvironmentProblem:
        return path

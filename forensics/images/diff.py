"""Two images compared the way container-diff's analyzers do: files (added, deleted,
modified with both sizes and hashes), history, metadata, size and per-layer size, and the
packages of dpkg, apk, rpm (sqlite rpmdb), pip and npm.

A is usually the known-good baseline and B the suspect. Both come from any source the
reader supports (a local image on disk or from the engine, a ``docker save`` tar, an OCI
layout); each is read once (:func:`forensics.images.analysis.scan_image` with the package
parsers), then everything here works on the two scans.

A file is modified when its type, content (SHA-256, or size when a hash could not be had),
link target, permission bits or owner differ; times are not compared (every rebuild
changes them). container-diff's JSON is ``{Image1, Image2, DiffType, Diff}`` per analyzer;
here one :class:`ImageDiff` holds them all.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from forensics.images import analysis, packages
from forensics.images.analysis import ImageScan, Placed
from forensics.images.packages import Package
from forensics.records import NotAvailable, display_path

METADATA_FIELDS = ("User", "ExposedPorts", "Env", "Cmd", "Volumes", "WorkingDir", "Entrypoint", "Labels")
"""container-diff's metadata analyzer fields (its ``Workdir`` is the config's WorkingDir)."""


def scan_for_diff(source: Any) -> ImageScan:
    """Read a source once, hashing files and parsing package databases."""
    return analysis.scan_image(source, analysis.ScanOptions(search=False, parsers=packages.PARSERS))


@dataclasses.dataclass(frozen=True)
class ImageRef:
    ref: str
    image_id: str
    source: str


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A path only one image has."""

    path: bytes
    type: str
    size: int
    sha256: str | NotAvailable | None
    layer: int


@dataclasses.dataclass(frozen=True)
class FileMod:
    """A path both images have, that differs."""

    path: bytes
    changed: tuple[str, ...]
    """Among ``type``, ``content``, ``link``, ``mode``, ``owner``."""
    type1: str
    type2: str
    size1: int
    size2: int
    sha256_1: str | NotAvailable | None
    sha256_2: str | NotAvailable | None
    mode1: int
    mode2: int
    owner1: str
    owner2: str
    link1: bytes
    link2: bytes
    layer1: int
    layer2: int


@dataclasses.dataclass(frozen=True)
class FieldDiff:
    """A config field that differs; for lists and maps, the items added and removed."""

    field: str
    value1: Any
    value2: Any
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class HistoryDiff:
    adds: tuple[str, ...]
    """created_by entries only B has (in B's order)."""
    dels: tuple[str, ...]
    """created_by entries only A has."""


@dataclasses.dataclass(frozen=True)
class LayerSize:
    index: int
    digest1: str | None
    digest2: str | None
    size1: int | None
    size2: int | None


@dataclasses.dataclass(frozen=True)
class PackageChange:
    name: str
    version1: str
    version2: str
    size1: int | None
    size2: int | None


@dataclasses.dataclass(frozen=True)
class PackageDiff:
    manager: str
    count1: int
    count2: int
    added: tuple[Package, ...]
    """Only in B."""
    removed: tuple[Package, ...]
    """Only in A."""
    changed: tuple[PackageChange, ...]
    """In both, with another version (or installed size)."""


@dataclasses.dataclass(frozen=True)
class ImageDiff:
    image1: ImageRef
    image2: ImageRef
    added: tuple[FileEntry, ...]
    deleted: tuple[FileEntry, ...]
    modified: tuple[FileMod, ...]
    history: HistoryDiff
    metadata: tuple[FieldDiff, ...]
    size1: int
    size2: int
    layers: tuple[LayerSize, ...]
    packages: tuple[PackageDiff, ...]
    """One per manager either image has packages of."""
    skipped: tuple[str, ...]
    """Analyses not done, each with why (``rpm: not supported (Berkeley DB)``)."""
    problems: tuple[str, ...]


# --- files -------------------------------------------------------------------------------


def _owner(placed: Placed) -> str:
    return f"{placed.record.uid}:{placed.record.gid}"


def _entry(path: bytes, placed: Placed) -> FileEntry:
    r = placed.record
    return FileEntry(path, r.type, r.size, r.sha256, placed.layer)


def _changes(a: Placed, b: Placed, problems: list[str], path: bytes) -> tuple[str, ...]:
    ra, rb = a.record, b.record
    changed = []
    if ra.type != rb.type:
        changed.append("type")
    elif ra.type in ("file", "hardlink"):
        if isinstance(ra.sha256, str) and isinstance(rb.sha256, str):
            if ra.sha256 != rb.sha256:
                changed.append("content")
        elif ra.size != rb.size:
            changed.append("content")
        else:
            problems.append(f"{display_path(path)}: content not compared (no hash), sizes equal")
    if ra.type == rb.type and ra.type in ("symlink", "hardlink") and ra.link != rb.link:
        changed.append("link")
    if ra.mode != rb.mode:
        changed.append("mode")
    if (ra.uid, ra.gid) != (rb.uid, rb.gid):
        changed.append("owner")
    return tuple(changed)


def file_diff(
    final1: dict[bytes, Placed], final2: dict[bytes, Placed], problems: list[str]
) -> tuple[list[FileEntry], list[FileEntry], list[FileMod]]:
    added = [_entry(p, final2[p]) for p in sorted(final2.keys() - final1.keys())]
    deleted = [_entry(p, final1[p]) for p in sorted(final1.keys() - final2.keys())]
    modified = []
    for path in sorted(final1.keys() & final2.keys()):
        a, b = final1[path], final2[path]
        changed = _changes(a, b, problems, path)
        if changed:
            ra, rb = a.record, b.record
            modified.append(FileMod(path, changed, ra.type, rb.type, ra.size, rb.size, ra.sha256, rb.sha256,
                                    ra.mode, rb.mode, _owner(a), _owner(b), ra.link, rb.link, a.layer, b.layer))  # fmt: skip
    return added, deleted, modified


# --- history, metadata, sizes ---------------------------------------------------------------


def history_diff(scan1: ImageScan, scan2: ImageScan) -> HistoryDiff:
    one = [h.created_by for h in analysis.history(scan1)]
    two = [h.created_by for h in analysis.history(scan2)]
    adds: list[str] = []
    dels: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=one, b=two, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            dels.extend(one[i1:i2])
        if tag in ("insert", "replace"):
            adds.extend(two[j1:j2])
    return HistoryDiff(tuple(adds), tuple(dels))


def _container_config(scan: ImageScan) -> dict[str, Any]:
    cfg = scan.config.get("config")
    return cfg if isinstance(cfg, dict) else {}


def _items(value: Any) -> list[str] | None:
    """A list or map field as comparable items (``K=V`` for Labels, keys for port/volume sets)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return [f"{k}={v}" if isinstance(v, str) else str(k) for k, v in value.items()]
    return None


def metadata_diff(scan1: ImageScan, scan2: ImageScan) -> list[FieldDiff]:
    one, two = _container_config(scan1), _container_config(scan2)
    out = []
    for name in METADATA_FIELDS:
        v1, v2 = one.get(name), two.get(name)
        if (v1 or None) == (v2 or None):
            continue
        added: tuple[str, ...] = ()
        removed: tuple[str, ...] = ()
        if name not in ("Cmd", "Entrypoint"):  # order matters there: compared whole
            i1, i2 = _items(v1) or [], _items(v2) or []
            added = tuple(i for i in i2 if i not in i1)
            removed = tuple(i for i in i1 if i not in i2)
        out.append(FieldDiff(name, v1, v2, added, removed))
    return out


def layer_sizes(scan1: ImageScan, scan2: ImageScan) -> list[LayerSize]:
    out = []
    for index in range(max(len(scan1.layers), len(scan2.layers))):
        l1 = scan1.layers[index] if index < len(scan1.layers) else None
        l2 = scan2.layers[index] if index < len(scan2.layers) else None
        out.append(LayerSize(index, l1.digest if l1 else None, l2.digest if l2 else None,
                             l1.size if l1 else None, l2.size if l2 else None))  # fmt: skip
    return out


# --- packages ---------------------------------------------------------------------------------


def _by_name(items: list[Package]) -> dict[str, list[Package]]:
    out: dict[str, list[Package]] = {}
    for item in items:
        out.setdefault(item.name, []).append(item)
    return out


def _versions(items: list[Package]) -> str:
    return ", ".join(sorted({p.version for p in items}))


def _size(items: list[Package]) -> int | None:
    sizes = [p.size for p in items if p.size is not None]
    return sum(sizes) if sizes else None


def package_diff(manager: str, one: list[Package], two: list[Package]) -> PackageDiff:
    a, b = _by_name(one), _by_name(two)
    added = tuple(p for name in sorted(b.keys() - a.keys()) for p in b[name])
    removed = tuple(p for name in sorted(a.keys() - b.keys()) for p in a[name])
    changed = []
    for name in sorted(a.keys() & b.keys()):
        v1, v2, s1, s2 = _versions(a[name]), _versions(b[name]), _size(a[name]), _size(b[name])
        if v1 != v2 or s1 != s2:
            changed.append(PackageChange(name, v1, v2, s1, s2))
    return PackageDiff(manager, len(one), len(two), added, removed, tuple(changed))


# --- all of it --------------------------------------------------------------------------------


def diff(scan1: ImageScan, scan2: ImageScan) -> ImageDiff:
    """Every container-diff analysis of two scans made by :func:`scan_for_diff`."""
    problems: list[str] = []
    for label, scan in (("A", scan1), ("B", scan2)):
        problems.extend(f"{label}: {p}" for p in scan.problems)
        for layer in scan.layers:
            problems.extend(f"{label}: layer {layer.index}: {p}" for p in layer.problems)
        problems.extend(f"{label}: {c.what} digest mismatch" for c in scan.checks
                        if not c.ok and not isinstance(c.actual, NotAvailable))  # fmt: skip
    final1, final2 = analysis.final_files(scan1), analysis.final_files(scan2)
    added, deleted, modified = file_diff(final1, final2, problems)
    pk1, pk2 = packages.installed(final1), packages.installed(final2)
    package_diffs = tuple(package_diff(m, pk1[m], pk2[m]) for m in packages.MANAGERS if pk1[m] or pk2[m])
    skipped = [f"A: {s}" for s in packages.skipped_databases(final1)]
    skipped += [f"B: {s}" for s in packages.skipped_databases(final2)]
    return ImageDiff(
        ImageRef(scan1.ref, scan1.image_id, scan1.kind), ImageRef(scan2.ref, scan2.image_id, scan2.kind),
        tuple(added), tuple(deleted), tuple(modified), history_diff(scan1, scan2),
        tuple(metadata_diff(scan1, scan2)), sum(layer.size for layer in scan1.layers),
        sum(layer.size for layer in scan2.layers), tuple(layer_sizes(scan1, scan2)), package_diffs,
        tuple(skipped), tuple(problems),
    )  # fmt: skip

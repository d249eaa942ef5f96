"""``container extract``: copy files out of a container, from disk, through the evidence sink.

The replacement for ``docker cp`` (which runs in the daemon and has loaded the container's
own libraries, CVE-2019-14271): each file is found in the merged view of the container's
layers and read through :class:`RootFS` over the layer that provides it, with no link
followed. Every file is written through the sink (named with :func:`segment`, hashed) and
described in an index: mode, owner, times, the layer it came from, and what happened to
it. A file over the size cap is copied up to the cap and marked; a link is recorded with
its target, never followed; a FIFO, device or socket is recorded, never opened.
"""

from __future__ import annotations

import collections
import dataclasses
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forensics import __version__
from forensics.containers.diff import ContainerDiff, FileMeta
from forensics.containers.layers import ContainerLayers, Layer, host_path
from forensics.containers.limits import MAX_FILE
from forensics.containers.overlay import Located, list_merged, locate
from forensics.errors import EnvironmentProblem, UnsafePath
from forensics.evidence.archive import SealedArchive, seal
from forensics.evidence.custody import Custody
from forensics.evidence.names import segment
from forensics.evidence.writer import EvidenceWriter, Sink
from forensics.host.disk import DiskContainer
from forensics.host.rootfs import RootFS
from forensics.records import display_path, iso_utc, path_record, to_jsonable, utc_now

MAX_FILES = 100_000
"""Entries extracted from one request (a directory is walked up to this many)."""
MAX_TOTAL = 4 * 1024 * 1024 * 1024
"""Bytes copied from one container in all; files after that are recorded as skipped."""


@dataclasses.dataclass(frozen=True)
class ExtractedFile:
    """One entry of the extraction index."""

    path: bytes
    """Path inside the container."""
    status: str
    """``copied``, ``capped`` (copied up to the size cap), ``link`` (recorded, not followed),
    ``special`` (FIFO, device, socket: recorded, not opened), ``directory`` or ``skipped``."""
    reason: str
    archive_name: str | None
    """Where the copy is in the archive."""
    copied_bytes: int
    sha256: str | None
    """Of the copy (the file's own hash when ``copied``)."""
    meta: FileMeta | None
    layer: str
    """``writable``, ``image``, ``init`` or ``unknown``."""
    layer_ref: Layer | None
    link_target: bytes | None = None
    kind: str = ""
    """The diff's A or C, when the extraction follows a diff."""


@dataclasses.dataclass(frozen=True)
class Extraction:
    container_id: str
    max_file_size: int
    files: list[ExtractedFile]
    problems: list[str]

    @property
    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(f.status for f in self.files))


def archive_name(base: str, path: bytes) -> str:
    """``<base>/<segment>/<segment>...``: every component of the suspect's path made safe."""
    parts = [segment(p) for p in path.split(b"/") if p]
    return "/".join([base, *parts])


class _Extractor:
    def __init__(
        self,
        sink: Sink,
        base: str,
        layers: ContainerLayers,
        root: str,
        max_file: int,
        max_total: int = MAX_TOTAL,
    ) -> None:
        self.sink = sink
        self.budget = max_total
        self.max_total = max_total
        self.base = base
        self.layers = layers
        self.root = root
        self.max_file = max_file
        self.stack = [host_path(root, layers.upper)] + [
            host_path(root, layer.path) for layer in layers.lowers
        ]
        self.files: list[ExtractedFile] = []
        self.problems: list[str] = []

    def where(self, index: int) -> tuple[str, Layer | None, str]:
        """(label, layer, directory inside the host root) of stack entry ``index``."""
        if index == 0:
            return "writable", None, self.layers.upper
        ref = self.layers.lowers[index - 1]
        return ref.role, ref, ref.path

    def record(
        self, path: bytes, status: str, reason: str, found: Located | None, kind: str = "",
        archive_name: str | None = None, copied_bytes: int = 0, sha256: str | None = None,
        link_target: bytes | None = None,
    ) -> None:  # fmt: skip
        label, ref = "", None
        if found is not None:
            label, ref, _ = self.where(found.layer)
        meta = FileMeta.of(found.st) if found is not None else None
        self.files.append(ExtractedFile(path, status, reason, archive_name, copied_bytes, sha256, meta, label,
                                        ref, link_target, kind))  # fmt: skip

    def one(self, path: bytes, found: Located, kind: str = "") -> None:
        label, _ref, directory = self.where(found.layer)
        mode = found.st.st_mode
        if stat.S_ISLNK(mode):
            try:
                target: bytes | None = RootFS(host_path(self.root, directory)).readlink(path)
                reason = "a link: recorded with its target, not followed"
            except (UnsafePath, OSError) as exc:
                target, reason = None, f"a link whose target is unreadable: {exc}"
            self.record(path, "link", reason, found, kind, link_target=target)
            return
        if stat.S_ISDIR(mode):
            self.record(path, "directory", "", found, kind)
            return
        if not stat.S_ISREG(mode):
            self.record(
                path, "special", f"a {FileMeta.of(found.st).file_type}: recorded, not opened", found, kind
            )
            return
        if self.budget <= 0:
            self.record(
                path, "skipped", f"the {self.max_total}-byte budget for this container is spent", found, kind
            )
            return
        name = archive_name(self.base, path)
        try:
            with RootFS(host_path(self.root, directory)).open_regular(path, follow=False) as (fd, st):
                if (st.st_dev, st.st_ino) != (found.st.st_dev, found.st.st_ino):
                    raise UnsafePath("the file was replaced while it was being extracted")
                written = self.sink.add_fd(name, fd, limit=min(self.max_file, self.budget))
        except (UnsafePath, OSError) as exc:
            self.record(path, "skipped", f"unreadable: {exc}", found, kind)
            self.problems.append(f"{display_path(path)}: {exc}")
            return
        self.budget -= written.size
        if written.truncated:
            cap = "per-file cap" if written.size >= self.max_file else "container's remaining budget"
            reason = f"larger than the {cap}: first {written.size} bytes copied"
            self.record(path, "capped", reason, found, kind, archive_name=name, copied_bytes=written.size,
                        sha256=written.sha256)  # fmt: skip
        else:
            self.record(path, "copied", f"from the {label} layer", found, kind, archive_name=name,
                        copied_bytes=written.size, sha256=written.sha256)  # fmt: skip

    def tree(self, top: bytes, found: Located, max_files: int) -> None:
        """``top`` and everything below it in the merged view, breadth first, bounded."""
        todo = collections.deque([(top, found)])
        while todo:
            if len(self.files) >= max_files:
                self.problems.append(f"stopped after {max_files} entries below {display_path(top)}")
                return
            path, here = todo.popleft()
            self.one(path, here)
            if stat.S_ISDIR(here.st.st_mode):
                children, problems = list_merged(self.stack, path)
                self.problems += problems
                for name, child in sorted((children or {}).items()):
                    todo.append(((path.rstrip(b"/") + b"/" + name), child))


def extract_paths(
    sink: Sink, base: str, container: DiskContainer, layers: ContainerLayers, root: str, paths: Sequence[bytes],
    max_file: int = MAX_FILE, max_files: int = MAX_FILES,
) -> Extraction:  # fmt: skip
    """Copy ``paths`` (files, or directories walked whole) as the container sees them."""
    job = _Extractor(sink, base, layers, root, max_file)
    for raw in paths:
        path = b"/" + raw.strip(b"/") if raw.strip(b"/") else b"/"
        found, problems = locate(job.stack, path)
        job.problems += problems
        if found is None:
            job.record(path, "skipped", "not in the container (nor in its image)", None)
            continue
        job.tree(path, found, max_files)
    return Extraction(container.id, max_file, job.files, job.problems)


def extract_changed(
    sink: Sink,
    base: str,
    diff: ContainerDiff,
    root: str,
    max_file: int = MAX_FILE,
    max_total: int = MAX_TOTAL,
) -> Extraction:
    """Every added or changed entry of a diff: regular files copied, the rest recorded."""
    job = _Extractor(sink, base, diff.layers, root, max_file, max_total)
    for entry in diff.entries:
        if entry.kind not in "AC" or entry.current is None or entry.current.file_type == "directory":
            continue
        found, problems = locate(job.stack[:1], entry.path)
        job.problems += problems
        if found is None:
            job.record(entry.path, "skipped", "gone from the writable layer since the diff", None, entry.kind)
            continue
        job.one(entry.path, found, entry.kind)
    return Extraction(diff.container_id, max_file, job.files, job.problems)


def extraction_record(extraction: Extraction) -> dict[str, Any]:
    files = []
    for f in extraction.files:
        record: dict[str, Any] = {**path_record(f.path), "status": f.status, "reason": f.reason,
                                  "archive_name": f.archive_name, "copied_bytes": f.copied_bytes,
                                  "sha256": f.sha256, "meta": to_jsonable(f.meta), "layer": f.layer,
                                  "layer_ref": to_jsonable(f.layer_ref)}  # fmt: skip
        if f.kind:
            record["kind"] = f.kind
        if f.link_target is not None:
            target = path_record(f.link_target)
            record["link_target"] = target["path"]
            if "path_b64" in target:
                record["link_target_b64"] = target["path_b64"]
        files.append(record)
    return {
        "container_id": extraction.container_id,
        "max_file_size": extraction.max_file_size,
        "counts": extraction.counts,
        "files": files,
        "problems": extraction.problems,
    }


def write_archive(
    output: Path, container: DiskContainer, layers: ContainerLayers, root: str, paths: Sequence[bytes],
    max_file: int, argv: list[str], case_id: str = "", examiner: str = "",
) -> tuple[SealedArchive, Extraction]:  # fmt: skip
    """A small evidence archive of the extracted files: files/, index.json, custody.json,
    MANIFEST.sha256, sealed as ``<output>/extract-<container>-<UTC>.tar.gz``."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create output directory {output}: {exc}") from exc
    started = utc_now()
    label = segment(container.name or container.id[:12])[:64]
    writer = EvidenceWriter(output / f"extract-{label}-{started.strftime('%Y%m%dT%H%M%SZ')}")
    extraction = extract_paths(writer, "files", container, layers, root, paths, max_file)
    writer.add_json("index.json", {
        "container": {"id": container.id, "name": container.name, "image_id": container.image_id,
                      "image": container.image_ref, "state": container.state.status},
        "requested": [path_record(p) for p in paths],
        "layers": to_jsonable(layers),
        **extraction_record(extraction),
    })  # fmt: skip
    custody = Custody(
        case_id=case_id, examiner=examiner, tool="forensic-container", tool_version=__version__,
        command_line=argv, started_utc=iso_utc(started), ended_utc=iso_utc(utc_now()), complete=True,
        options={"root": root, "container": container.id, "max_file_size": max_file},
    )  # fmt: skip
    writer.add_json("custody.json", custody)
    writer.write_manifest()
    return seal(writer.top, output), extraction

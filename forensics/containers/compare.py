"""``container compare``: one file now against its original in the image, read from disk.

No fresh container of the image and no ``docker cp``: the file as the container sees it
is looked up in the merged view (writable layer over the lower layers), the original in
the lower layers alone, both the way overlayfs does (:func:`overlay.locate`). Text gets
a unified diff (difflib), anything else sizes and hashes. Account files (passwd, shadow,
group, sudoers and sudoers.d) are parsed and their differences become findings.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import stat
from typing import Any

from forensics.containers.accounts import AccountChange, account_changes, findings, is_account_file
from forensics.containers.diff import FileMeta
from forensics.containers.layers import ContainerLayers, Layer, host_path
from forensics.containers.overlay import locate
from forensics.errors import NotFound, UnsafePath
from forensics.findings import Finding
from forensics.host.disk import DiskContainer
from forensics.host.rootfs import GrewPastLimit, RootFS, chunks
from forensics.records import NotAvailable, display_path, path_record, to_jsonable

MAX_TEXT = 2 * 1024 * 1024
"""Largest side read whole for a text diff."""
MAX_TEXT_LINES = 50_000
"""More lines than this on a side: no text diff (difflib can be quadratic on hostile text)."""
MAX_HASH = 256 * 1024 * 1024
MAX_DIFF_LINES = 20_000


@dataclasses.dataclass(frozen=True)
class FileVersion:
    """One side of a comparison."""

    layer: str
    """``writable`` (the container's own layer), ``image``, ``init`` or ``unknown``."""
    layer_ref: Layer | None
    """The lower layer (None for the writable layer)."""
    meta: FileMeta
    sha256: str | NotAvailable
    link_target: bytes | NotAvailable | None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A file in the container against the image's."""

    container_id: str
    name: str
    path: bytes
    status: str
    """``added`` (not in the image), ``deleted``, ``changed`` (the writable layer holds its
    own copy) or ``unchanged`` (the container sees the image's file)."""
    content: str
    """``same``, ``differs`` or ``not-compared`` (not two regular files, or unreadable)."""
    current: FileVersion | None
    original: FileVersion | None
    text_diff: str | NotAvailable
    """Unified diff, image first."""
    accounts: list[AccountChange]
    problems: list[str]
    findings: list[Finding]


def _read(fs: RootFS, path: bytes) -> tuple[str | NotAvailable, bytes | None]:
    """(SHA-256, whole content when at most MAX_TEXT bytes) of a regular file."""
    try:
        with fs.open_regular(path, follow=False) as (fd, st):
            if st.st_size > MAX_HASH:
                return NotAvailable(f"{st.st_size} bytes, over the {MAX_HASH}-byte limit"), None
            digest = hashlib.sha256()
            kept: list[bytes] | None = [] if st.st_size <= MAX_TEXT else None
            size = 0
            try:
                for chunk in chunks(fd, st.st_size, MAX_HASH):
                    size += len(chunk)
                    digest.update(chunk)
                    if kept is not None:
                        kept.append(chunk)
                        if size > MAX_TEXT:
                            kept = None
            except GrewPastLimit:
                return NotAvailable("grew past the hash limit while read"), None
            return digest.hexdigest(), b"".join(kept) if kept is not None else None
    except (UnsafePath, OSError) as exc:
        return NotAvailable(f"unreadable: {exc}"), None


def _version(
    root: str, where: str, layer: str, ref: Layer | None, path: bytes, st: os.stat_result
) -> tuple[FileVersion, bytes | None]:
    fs = RootFS(host_path(root, where))
    sha: str | NotAvailable = NotAvailable("not a regular file")
    data = None
    target: bytes | NotAvailable | None = None
    if stat.S_ISREG(st.st_mode):
        sha, data = _read(fs, path)
    elif stat.S_ISLNK(st.st_mode):
        try:
            target = fs.readlink(path)
        except (UnsafePath, OSError) as exc:
            target = NotAvailable(f"unreadable: {exc}")
    return FileVersion(layer, ref, FileMeta.of(st), sha, target), data


def _is_text(data: bytes | None) -> bool:
    return data is not None and b"\0" not in data[:65536]


def _unified(before: bytes, after: bytes, path: bytes) -> str:
    name = display_path(path)
    lines = difflib.unified_diff(
        before.decode("utf-8", "backslashreplace").splitlines(keepends=True),
        after.decode("utf-8", "backslashreplace").splitlines(keepends=True),
        fromfile=f"image:{name}",
        tofile=f"container:{name}",
    )
    out = []
    for number, line in enumerate(lines):
        if number >= MAX_DIFF_LINES:
            out.append(f"... diff cut at {MAX_DIFF_LINES} lines\n")
            break
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def compare(
    container: DiskContainer, layers: ContainerLayers, root: str, path: bytes | str, evidence: str = ""
) -> Comparison:
    """Compare ``path`` in the container with the image's. NotFound when neither has it."""
    raw = os.fsencode(path)
    if not raw.startswith(b"/"):
        raw = b"/" + raw
    lowers = [host_path(root, layer.path) for layer in layers.lowers]
    now, problems = locate([host_path(root, layers.upper), *lowers], raw)
    before, more = locate(lowers, raw)
    problems += more
    if now is None and before is None:
        raise NotFound(f"{display_path(raw)!r} is neither in container {container.id[:12]} nor in its image")
    current = original = None
    data_now = data_before = None
    if now is not None:
        if now.layer == 0:
            current, data_now = _version(root, layers.upper, "writable", None, raw, now.st)
        else:
            ref = layers.lowers[now.layer - 1]
            current, data_now = _version(root, ref.path, ref.role, ref, raw, now.st)
    if before is not None:
        ref = layers.lowers[before.layer]
        original, data_before = _version(root, ref.path, ref.role, ref, raw, before.st)
    if current is None:
        status = "deleted"
    elif original is None:
        status = "added"
    else:
        status = "changed" if current.layer == "writable" else "unchanged"
    content = "not-compared"
    if current and original and isinstance(current.sha256, str) and isinstance(original.sha256, str):
        content = "same" if current.sha256 == original.sha256 else "differs"
    text: str | NotAvailable = NotAvailable("not two text files")
    both_text = (data_now is None or _is_text(data_now)) and (data_before is None or _is_text(data_before))
    regular = all(v is None or v.meta.file_type == "file" for v in (current, original))
    if (data_now is not None or data_before is not None) and both_text and regular:
        lines = max((data_now or b"").count(b"\n"), (data_before or b"").count(b"\n"))
        if lines > MAX_TEXT_LINES:
            text = NotAvailable(f"{lines} lines: too long for a text diff (limit {MAX_TEXT_LINES})")
        else:
            text = _unified(data_before or b"", data_now or b"", raw)
    accounts: list[AccountChange] = []
    name = raw.decode("utf-8", "replace")
    if is_account_file(name) and both_text:
        accounts = account_changes(
            name,
            (data_before or b"").decode("utf-8", "replace"),
            (data_now or b"").decode("utf-8", "replace"),
        )
    label = container.name or container.id[:12]
    where = (evidence,) if evidence else ()
    found = findings(accounts, f"container:{container.id}", label, where)
    return Comparison(
        container.id, container.name, raw, status, content, current, original, text, accounts, problems, found
    )


def comparison_record(result: Comparison) -> dict[str, Any]:
    def side(version: FileVersion | None) -> Any:
        if version is None:
            return None
        record = to_jsonable(version)
        if isinstance(version.link_target, bytes):
            record["link_target"] = path_record(version.link_target)
        return record

    return {
        "container": {"id": result.container_id, "name": result.name},
        **path_record(result.path),
        "status": result.status,
        "content": result.content,
        "current": side(result.current),
        "original": side(result.original),
        "text_diff": to_jsonable(result.text_diff),
        "accounts": to_jsonable(result.accounts),
        "problems": result.problems,
        "findings": to_jsonable(result.findings),
    }

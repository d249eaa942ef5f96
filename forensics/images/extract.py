"""Safe extraction of an image's file system (or one layer) into a directory.

The one place in the image area that writes files, because writing them is what was asked.
Every entry is the suspect's, so the rules are:

- nothing outside DIR: names were validated by the reader (no ``..``, no absolute name);
  every write here goes through directory file descriptors opened with ``O_NOFOLLOW``
  from DIR down, so no write ever passes through a link;
- an entry below a symlink or a file of the image (``d -> ../..`` then ``d/file``, or a layer
  planting ``x -> /`` and a later one writing ``x/etc/y``) is refused;
- symlinks are created last, and only those whose target, resolved the kernel's way from
  where the link stands (through the other links being extracted, at most
  :data:`~forensics.host.rootfs.MAX_LINKS` of them), stays inside DIR. An absolute target is
  refused: on this machine it names a host path. A link refused can make others escape, so
  the check runs until nothing changes;
- hard links only to a regular file of the same layer that was written (never to a link);
- no devices, FIFOs or sockets; setuid and setgid bits are cleared (and listed); the owner
  always gets read and write (and search on directories); ownership is not restored;
- a total size and an entry count limit;
- the merged view applies whiteouts and opaque directories (OCI layer spec): only the entries
  of the final file system are written, so nothing is deleted in DIR. ``--layer N`` writes
  that layer's own entries; its whiteouts are listed, not applied.

Everything refused is returned (:class:`Refusal`) with why. DIR must be new or empty.

Two reads of the source: the first (no content read) decides what the final file system is
and what to refuse; the second writes the chosen entries as their bytes stream past.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import posixpath
import stat
from collections import deque
from collections.abc import Callable, Iterator

from forensics.errors import UsageProblem
from forensics.host.rootfs import MAX_LINKS, MAX_PATH
from forensics.images import analysis
from forensics.images.analysis import FileRecord, ImageScan, Placed
from forensics.images.source import ImageSource
from forensics.records import NotAvailable, display_path

MAX_BYTES = 8 << 30
MAX_ENTRIES = 1_000_000
MAX_NAME = 4096
"""Bytes of an entry's path that is written (Linux's PATH_MAX: the engine itself could not
have unpacked a longer one, and no program could open it by its name)."""
MAX_DEPTH = 256
"""Directories above an entry that is written (the container diff walks no deeper)."""
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclasses.dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_BYTES
    """File content written in all."""
    max_entries: int = MAX_ENTRIES
    """Entries written (files, directories, links)."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    path: bytes
    """The entry's path in the image (empty for a member the reader refused by name)."""
    layer: int | None
    reason: str


@dataclasses.dataclass(frozen=True)
class Written:
    path: bytes
    type: str
    """file, dir, symlink or hardlink."""
    layer: int
    size: int
    sha256: str | None
    """Of the bytes written (files)."""
    mode: int
    """As written (setuid/setgid cleared, owner access added)."""
    image_mode: int
    uid: int
    """Owner in the image (not restored)."""
    gid: int
    link: bytes = b""
    """A link's target as written."""
    image_link: bytes = b""
    """A symlink's target as the image has it (differs when rewritten)."""


@dataclasses.dataclass(frozen=True)
class Extraction:
    output: str
    layer: int | None
    """The layer extracted alone, or None for the merged view."""
    image_id: str
    written: tuple[Written, ...]
    refused: tuple[Refusal, ...]
    cleared_setid: tuple[bytes, ...]
    """Entries whose setuid or setgid bit was cleared."""
    rewritten_links: tuple[bytes, ...]
    """Links whose absolute target was written relative (``rewrite_absolute``)."""
    bytes_written: int
    whiteouts_applied: int
    problems: tuple[str, ...]


# --- what to write: the view, and what it refuses ------------------------------------------


def _view(scan: ImageScan, layer: int | None) -> tuple[dict[bytes, Placed], list[Refusal], int]:
    """(path -> entry to write, refusals of whiteouts, whiteouts applied)."""
    if layer is None:
        marks = sum(1 for lr in scan.layers for f in lr.files if f.type in ("whiteout", "opaque"))
        return analysis.final_files(scan), [], marks
    if not 0 <= layer < len(scan.layers):
        raise UsageProblem(f"--layer {layer}: the image has layers 0 to {len(scan.layers) - 1}")
    one = scan.layers[layer]
    state = analysis.Stack()
    analysis._apply(state, dataclasses.replace(one, files=tuple(f for f in one.files
                                                                if f.type not in ("whiteout", "opaque"))))  # fmt: skip
    refused = [Refusal(f.path, layer, f"{f.type} marker: not applied when one layer is extracted")
               for f in one.files if f.type in ("whiteout", "opaque")]  # fmt: skip
    return dict(sorted(state.files.items())), refused, 0


def _ancestors(path: bytes) -> Iterator[bytes]:
    parent = path.rpartition(b"/")[0]
    while parent:
        yield parent
        parent = parent.rpartition(b"/")[0]


def _screen(view: dict[bytes, Placed], limits: Limits) -> tuple[dict[bytes, Placed], list[Refusal]]:
    """The entries that may be written, and the refused ones with why."""
    keep: dict[bytes, Placed] = {}
    refused = []
    for path, placed in view.items():
        record = placed.record
        if len(path) > MAX_NAME or path.count(b"/") > MAX_DEPTH:
            refused.append(Refusal(path, placed.layer, f"path of {len(path)} bytes, {path.count(b'/')} deep: "
                                   f"over {MAX_NAME} bytes or {MAX_DEPTH} directories, not written"))  # fmt: skip
            continue
        blocker = next((a for a in _ancestors(path) if a in view and view[a].record.type != "dir"), None)
        if blocker is not None:
            kind = view[blocker].record.type
            refused.append(Refusal(path, placed.layer, f"below {display_path(blocker)}, a {kind} in the image: "
                                                        "nothing is written through it"))  # fmt: skip
        elif record.type in ("char", "block", "fifo"):
            refused.append(Refusal(path, placed.layer, f"{record.type} device or FIFO: not created"))
        elif record.type not in ("file", "dir", "symlink", "hardlink"):
            refused.append(Refusal(path, placed.layer, f"type {record.type}: not created"))
        elif len(keep) >= limits.max_entries:
            refused.append(Refusal(path, placed.layer, f"entry limit ({limits.max_entries}) reached"))
        else:
            keep[path] = placed
    return keep, refused


# --- symlinks: resolved the kernel's way among the links being made ------------------------


def _parts(path: bytes) -> list[bytes]:
    return [p for p in path.split(b"/") if p]


def _resolve_escape(
    link: bytes, links: dict[bytes, bytes], kinds: dict[bytes, str]
) -> tuple[str | None, set[bytes]]:
    """(why the link leads out of DIR or None, the other links its resolution went through).

    ``kinds`` says what else exists (``dir``/``file``); a missing name is taken as a
    directory (lexically), the conservative choice since every link that will exist is known.
    """
    target = links[link]
    if target.startswith(b"/"):
        return f"absolute target {display_path(target)!r}: on this machine it names a host path", set()
    stack = _parts(link)[:-1]
    pending: deque[bytes] = deque(_parts(target))
    followed: set[bytes] = set()
    count = 0
    while pending:
        comp = pending.popleft()
        if comp == b".":
            continue
        if comp == b"..":
            if not stack:
                return f"target {display_path(target)!r} climbs out of the output directory", followed
            stack.pop()
            continue
        here = b"/" + b"/".join([*stack, comp])
        if here in links:
            count += 1
            if here != link:
                followed.add(here)
            if count > MAX_LINKS:
                return (
                    f"more than {MAX_LINKS} links to resolve {display_path(target)!r} (a chain or a loop)",
                    followed,
                )
            inner = links[here]
            if inner.startswith(b"/"):
                return f"goes through {display_path(here)!r}, a link to an absolute path", followed
            pending.extendleft(reversed(_parts(inner)))
            if sum(len(p) + 1 for p in pending) > MAX_PATH:
                return f"target expands past {MAX_PATH} bytes", followed
            continue
        if kinds.get(here) == "file" and pending:
            return None, followed  # ENOTDIR: goes nowhere
        stack.append(comp)
    return None, followed


def safe_links(links: dict[bytes, bytes], kinds: dict[bytes, str]) -> dict[bytes, str]:
    """The links to refuse (path -> why), until no refusal makes another link escape."""
    active = dict(links)
    refused: dict[bytes, str] = {}
    users: dict[bytes, set[bytes]] = {}
    todo = deque(sorted(active))
    queued = set(todo)
    while todo:
        link = todo.popleft()
        queued.discard(link)
        if link not in active:
            continue
        why, through = _resolve_escape(link, active, kinds)
        for other in through:
            users.setdefault(other, set()).add(link)
        if why is None:
            continue
        refused[link] = why
        del active[link]
        for user in sorted(users.pop(link, set())):
            if user in active and user not in queued:
                todo.append(user)
                queued.add(user)
    return refused


# --- writing under DIR, never through a link ------------------------------------------------


class _Tree:
    """DIR, with every operation done relative to directory fds opened O_NOFOLLOW."""

    def __init__(self, output: str) -> None:
        self.output = output
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(output, 0o700)
            self.root = os.open(output, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UsageProblem(f"{output}: cannot be the output directory: {exc.strerror or exc}") from exc
        if os.listdir(self.root):
            os.close(self.root)
            raise UsageProblem(f"{output} is not empty: extraction needs a new or empty directory")
        self.kinds: dict[bytes, str] = {}
        """What exists under DIR that we made: path -> dir/file."""

    def close(self) -> None:
        os.close(self.root)

    def parent(self, path: bytes) -> tuple[int, bytes]:
        """An fd of the parent dir of ``path`` (created as needed, 0700) and the last name."""
        parts = _parts(path)
        fd = os.dup(self.root)
        try:
            walked = b""
            for comp in parts[:-1]:
                walked += b"/" + comp
                try:
                    child = os.open(comp, _DIR_OPEN, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(comp, 0o700, dir_fd=fd)
                    self.kinds[walked] = "dir"
                    child = os.open(comp, _DIR_OPEN, dir_fd=fd)
                os.close(fd)
                fd = child
            return fd, parts[-1]
        except BaseException:
            os.close(fd)
            raise

    def mkdir(self, path: bytes) -> None:
        fd, name = self.parent(path)
        try:
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise
            self.kinds[path] = "dir"
        finally:
            os.close(fd)

    def write(
        self, path: bytes, chunks: Iterator[bytes], budget: int, mode: int, mtime: float
    ) -> tuple[int, str]:
        """Write a new file; (bytes, sha256). Over ``budget`` bytes: removed, :class:`_TooBig`."""
        fd, name = self.parent(path)
        try:
            out = os.open(name, _FILE_CREATE, 0o600, dir_fd=fd)
            sha = hashlib.sha256()
            size = 0
            try:
                for chunk in chunks:
                    size += len(chunk)
                    if size > budget:
                        raise _TooBig
                    sha.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view) :]
                os.fchmod(out, mode)
                _set_time(out, mtime)
            except BaseException:
                os.close(out)
                out = -1
                os.unlink(name, dir_fd=fd)
                raise
            finally:
                if out >= 0:
                    os.close(out)
            self.kinds[path] = "file"
            return size, sha.hexdigest()
        finally:
            os.close(fd)

    def hardlink(self, target: bytes, path: bytes) -> None:
        src_fd, src_name = self.parent(target)
        try:
            dst_fd, dst_name = self.parent(path)
            try:
                os.link(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
                self.kinds[path] = "file"
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)

    def symlink(self, path: bytes, target: bytes, mtime: float) -> None:
        fd, name = self.parent(path)
        try:
            os.symlink(target, name, dir_fd=fd)
            with contextlib.suppress(OSError, OverflowError, ValueError):  # a link's time is cosmetic
                os.utime(name, (mtime, mtime), dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def finish_dir(self, path: bytes, mode: int, mtime: float) -> None:
        fd, name = self.parent(path)
        try:
            inner = os.open(name, _DIR_OPEN, dir_fd=fd)
            try:
                os.fchmod(inner, mode)
                _set_time(inner, mtime)
            finally:
                os.close(inner)
        finally:
            os.close(fd)


class _TooBig(Exception):
    """A file that would pass the size limit."""


def _set_time(fd: int, mtime: float) -> None:
    """The image's mtime, when the value is one the kernel takes (a hostile one is dropped)."""
    with contextlib.suppress(OSError, OverflowError, ValueError):
        os.utime(fd, (mtime, mtime))


def _safe_mode(record: FileRecord) -> int:
    owner = 0o700 if record.type == "dir" else 0o600
    return (record.mode & 0o1777 & ~(stat.S_ISUID | stat.S_ISGID)) | owner


# --- the extraction ------------------------------------------------------------------------


def extract(
    open_source: Callable[[], ImageSource],
    output: str,
    layer: int | None = None,
    limits: Limits = Limits(),
    rewrite_absolute: bool = False,
) -> Extraction:
    """Extract the merged view (or ``layer`` alone) of the image ``open_source`` gives into ``output``.

    ``open_source`` is called twice: once to plan (nothing read but metadata), once to write.
    With ``rewrite_absolute``, a link to an absolute path is written relative instead (resolved
    inside DIR the way :class:`~forensics.host.rootfs.RootFS` takes it), then checked like any
    other; else it is refused.
    """
    first = open_source()
    plan = analysis.scan_image(first, analysis.ScanOptions(content=False, search=False))
    problems = list(plan.problems)
    refused: list[Refusal] = []
    for lr in plan.layers:
        for problem in lr.problems:
            if "refused" in problem or "skipped" in problem:
                refused.append(Refusal(b"", lr.index, f"refused by the reader: {problem}"))
            else:
                problems.append(f"layer {lr.index}: {problem}")
    view, marker_refusals, whiteouts = _view(plan, layer)
    refused.extend(marker_refusals)
    chosen, screened = _screen(view, limits)
    refused.extend(screened)
    order = {key: index for index, key in enumerate(first.layer_keys)}
    last = _last_occurrence(plan)
    tree = _Tree(output)
    written: list[Written] = []
    cleared: list[bytes] = []
    dirs: list[tuple[bytes, int, float]] = []
    hardlinks: list[tuple[bytes, Placed]] = []
    links: dict[bytes, Placed] = {}
    rewritten: list[bytes] = []
    total = 0
    try:
        source = open_source()
        try:
            for reading in source.walk():
                index = order.get(reading.key)
                if index is None or (layer is not None and index != layer):
                    for _entry in reading.entries():
                        pass
                    continue
                seen: dict[bytes, int] = {}
                for entry in reading.entries():
                    seen[entry.path] = seen.get(entry.path, 0) + 1
                    placed = chosen.get(entry.path)
                    if (
                        placed is None
                        or placed.layer != index
                        or seen[entry.path] != last[index].get(entry.path)
                    ):
                        continue
                    record = placed.record
                    mode = _safe_mode(record)
                    if record.mode & (stat.S_ISUID | stat.S_ISGID):
                        cleared.append(entry.path)
                    try:
                        if record.type == "dir":
                            tree.mkdir(entry.path)
                            dirs.append((entry.path, mode, record.mtime))
                            written.append(_written(entry.path, placed, 0, None, mode))
                        elif record.type == "file":
                            size, digest = tree.write(entry.path, entry.chunks(limits.max_bytes - total + 1),
                                                      limits.max_bytes - total, mode, record.mtime)  # fmt: skip
                            total += size
                            written.append(_written(entry.path, placed, size, digest, mode))
                        elif record.type == "hardlink":
                            hardlinks.append((entry.path, placed))
                        elif record.type == "symlink":
                            links[entry.path] = placed
                    except _TooBig:
                        refused.append(
                            Refusal(entry.path, index, f"size limit ({limits.max_bytes} bytes) reached")
                        )
                    except OSError as exc:
                        refused.append(Refusal(entry.path, index, f"not written: {exc.strerror or exc}"))
                    except (
                        Exception
                    ) as exc:  # an unreadable entry (broken stream, unsafe path) is one refusal
                        refused.append(Refusal(entry.path, index, f"not written: {exc}"))
            if source.config_digest and plan.image_id and source.config_digest != plan.image_id:
                problems.append(
                    f"the image changed between the two reads ({plan.image_id} -> {source.config_digest})"
                )
        finally:
            source.close()
        written_files = {w.path: w for w in written if w.type == "file"}
        for path, placed in hardlinks:
            reason = _hardlink_refusal(placed, chosen, written_files)
            if reason is None:
                try:
                    tree.hardlink(placed.record.link, path)
                    target = written_files[placed.record.link]
                    written.append(_written(path, placed, target.size, target.sha256, target.mode))
                    continue
                except OSError as exc:
                    reason = f"not written: {exc.strerror or exc}"
            refused.append(Refusal(path, placed.layer, reason))
        targets = {
            path: _target(path, placed.record.link, rewrite_absolute) for path, placed in links.items()
        }
        bad = safe_links(targets, tree.kinds)
        for path, placed in links.items():
            if path in bad:
                refused.append(Refusal(path, placed.layer, f"symlink refused: {bad[path]}"))
                continue
            try:
                tree.symlink(path, targets[path], placed.record.mtime)
                written.append(dataclasses.replace(_written(path, placed, 0, None, 0o777), link=targets[path],
                                                   image_link=placed.record.link))  # fmt: skip
                if targets[path] != placed.record.link:
                    rewritten.append(path)
            except OSError as exc:
                refused.append(Refusal(path, placed.layer, f"not written: {exc.strerror or exc}"))
        for path, mode, mtime in sorted(dirs, key=lambda d: d[0].count(b"/"), reverse=True):
            try:
                tree.finish_dir(path, mode, mtime)
            except OSError as exc:
                problems.append(f"{display_path(path)}: mode and time not set: {exc.strerror or exc}")
    finally:
        tree.close()
    for check in plan.checks:
        if not check.ok and not isinstance(check.actual, NotAvailable):
            problems.append(f"{check.what} digest mismatch: expected {check.expected}, got {check.actual}")
    return Extraction(output, layer, plan.image_id, tuple(sorted(written, key=lambda w: w.path)),
                      tuple(refused), tuple(cleared), tuple(rewritten), total, whiteouts, tuple(problems))  # fmt: skip


def _target(path: bytes, target: bytes, rewrite_absolute: bool) -> bytes:
    """The target to write: as stored, or an absolute one made relative to the link's directory."""
    if not (rewrite_absolute and target.startswith(b"/")):
        return target
    inside = posixpath.normpath(target)  # "/.." is "/": taken against DIR, never above it
    if inside.startswith(b"//"):
        inside = inside[1:]
    return posixpath.relpath(inside, posixpath.dirname(path) or b"/")


def _written(path: bytes, placed: Placed, size: int, digest: str | None, mode: int) -> Written:
    r = placed.record
    return Written(path, r.type, placed.layer, size, digest, mode, r.mode, r.uid, r.gid, r.link)


def _last_occurrence(scan: ImageScan) -> list[dict[bytes, int]]:
    """Per layer: how many entries each path has (the last one is what the view holds)."""
    out = []
    for lr in scan.layers:
        counts: dict[bytes, int] = {}
        for record in lr.files:
            counts[record.path] = counts.get(record.path, 0) + 1
        out.append(counts)
    return out


def _hardlink_refusal(placed: Placed, chosen: dict[bytes, Placed], files: dict[bytes, Written]) -> str | None:
    target = placed.record.link
    other = chosen.get(target)
    if other is None:
        return f"hard link to {display_path(target)!r}, which is not extracted"
    if other.record.type != "file":
        return f"hard link to {display_path(target)!r}, a {other.record.type}: only regular files are linked"
    if other.layer != placed.layer:
        return f"hard link to {display_path(target)!r}, which a later layer replaced"
    if target not in files:
        return f"hard link to {display_path(target)!r}, which was not written"
    return None


__all__ = ["Extraction", "Limits", "Refusal", "Written", "extract", "safe_links"]

"""What a container changed, computed from its overlay2 writable layer on disk.

The Docker engine (20.10 and later, overlay2 driver) answers ``docker diff`` with its
"naive" differ: it mounts the container's layer and the layer below it, walks both merged
trees and compares them (moby PR #37313 made overlay2 do this because the upper-dir walk
mishandled opaque directories). This module gets the same answer without mounting
anything: only paths present in the upper (writable) directory can differ between the two
merged views, so it walks the upper dir and looks each name up in the lower layers the way
overlayfs would (top layer first; a whiteout or a non-directory ends the search; an opaque
directory hides everything below it). The engine's rules are kept exactly:

* a name in the new view and not in the old is ``A``, and so is everything below it;
* a name in both is ``C`` when mode, owner, rdev or security.capability differ, or, for
  anything the engine does not count as a directory, mtime (same second, and equal
  nanoseconds or either zero) or size differ;
* a name in the old view and not in the new (a whiteout, or a lower child hidden by an
  opaque directory) is ``D``; nothing below a deleted directory is listed;
* a directory with a change anywhere below it is ``C`` itself, unless it is ``A`` or
  ``C`` already, or it is the root.

Everything below the upper dir is the suspect's: names are bytes, only lstat is used,
links are never followed (directories are entered with ``O_NOFOLLOW``), only regular files
are ever opened (to read an xattr, with ``O_NONBLOCK``), and counts and depth are bounded.
Trouble with one name is recorded as a problem and the walk goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from forensics.errors import EnvironmentProblem
from forensics.records import display_path

MAX_ENTRIES = 2_000_000
"""Upper-dir entries examined before the walk stops (recorded as truncated)."""
MAX_DEPTH = 256
"""Directory depth below the upper dir's root that is walked."""
MAX_PROBLEMS = 1000
"""Problems kept; later ones are counted only."""

XATTR_OPAQUE = "trusted.overlay.opaque"
XATTR_WHITEOUT = "trusted.overlay.whiteout"
XATTR_REDIRECT = "trusted.overlay.redirect"
XATTR_CAPABILITY = "security.capability"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_S_IFDIR = 0o040000


def offered(mode: int) -> bool:
    """What the visit hook is offered: regular files and links."""
    return stat.S_IFMT(mode) in _OFFERED


_OFFERED = (stat.S_IFREG, stat.S_IFLNK)
_tuple_new = tuple.__new__


class RawChange(NamedTuple):
    """One change as the engine would list it, with the stats behind it (a named tuple:
    a walk makes one per change, and a frozen dataclass costs ten times as much to build)."""

    kind: str
    """``A``, ``C`` or ``D``."""
    path: bytes
    """Absolute path inside the container."""
    new: os.stat_result | None
    """lstat of the entry in the upper dir (None for ``D``)."""
    old: os.stat_result | None
    """lstat of the entry the lower layers held (None for ``A``)."""
    old_layer: int | None
    """Index (in the lower stack, top first) of the layer that held the original."""
    cause: str
    """Why: ``new``, ``stat``, ``capability``, ``parent``, ``whiteout``, ``xattr-whiteout``,
    ``opaque``."""


@dataclasses.dataclass(frozen=True)
class OverlayChanges:
    """The changes of one writable layer against its lower layers."""

    changes: list[RawChange]
    entries: int
    """Upper-dir entries examined."""
    truncated: bool
    """True when MAX_ENTRIES stopped the walk before its end."""
    problems: list[str]
    """Names that could not be examined, and why."""
    visited: dict[bytes, Any] = dataclasses.field(default_factory=dict)
    """Path -> what the ``visit`` hook of :func:`compute_changes` returned for it."""


Visit = Callable[[RawChange, int, bytes], Any]
"""Called during the walk for each added or changed regular file or link, with the change,
the fd of the writable directory that holds it and its name there: the entry can be read
through that fd (no path is resolved again) while the walk holds the directory open."""


@dataclasses.dataclass(frozen=True)
class _Found:
    """A name in the old (lower-only) view."""

    st: os.stat_result
    layer: int
    """Stack index of the topmost layer that holds it."""
    pos: int
    """Position in the parent's contributing list where it was found."""


def whiteout_kind(st: os.stat_result, xattr_whiteout: bool = False) -> str | None:
    """``whiteout`` for a 0/0 character device, ``xattr-whiteout`` for the xattr form."""
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return "whiteout"
    if xattr_whiteout:
        return "xattr-whiteout"
    return None


def stat_different(old: os.stat_result, new: os.stat_result) -> bool:
    """The engine's statDifferent (pkg/archive/changes_unix.go, 20.10).

    Its "is a directory" test is ``mode & S_IFDIR == S_IFDIR`` on the raw mode, which
    also holds for block devices and sockets: for those, as for directories, mtime and
    size are not compared. Kept as is, so our answer is the engine's.
    """
    if (
        old.st_mode != new.st_mode
        or old.st_uid != new.st_uid
        or old.st_gid != new.st_gid
        or old.st_rdev != new.st_rdev
    ):
        return True
    if old.st_mode & _S_IFDIR == _S_IFDIR:
        return False
    return not same_fs_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size


def same_fs_time(a_ns: int, b_ns: int) -> bool:
    """Equal, or the same second with either side's nanoseconds zero (tar loses them)."""
    a_sec, a_nsec = divmod(a_ns, 1_000_000_000)
    b_sec, b_nsec = divmod(b_ns, 1_000_000_000)
    return a_sec == b_sec and (a_nsec == b_nsec or a_nsec == 0 or b_nsec == 0)


def _fgetxattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise


def _dir_fd(name: bytes | str, dir_fd: int | None = None) -> int:
    """A directory fd whose listing leaves the directory's atime alone (``O_NOATIME``
    needs ownership or CAP_FOWNER: without it, opened plainly)."""
    if _O_NOATIME:
        try:
            return os.open(name, _DIR_FLAGS | _O_NOATIME, dir_fd=dir_fd)
        except PermissionError:
            pass
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


@contextlib.contextmanager
def _open_dir(name: bytes | str, dir_fd: int | None = None) -> Iterator[int]:
    fd = _dir_fd(name, dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def file_xattr(dir_fd: int, name: bytes, st: os.stat_result, attr: str) -> bytes | None:
    """An xattr of a regular file, read through an fd opened without following links.

    Only a regular file is opened (non-blocking, no atime update), and only when it is
    still the inode that was lstat'ed; anything else has no xattr for us.
    """
    if not stat.S_ISREG(st.st_mode):
        return None
    flags = _FILE_FLAGS | _O_NOATIME
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            return None
        return _fgetxattr(fd, attr)
    finally:
        os.close(fd)


class _Walk:
    """One comparison of an upper dir against a stack of lower dirs."""

    def __init__(self, max_entries: int, max_depth: int, visit: Visit | None = None) -> None:
        self.out: list[RawChange] = []
        self.visit = visit
        self.visited: dict[bytes, Any] = {}
        self.problems: list[str] = []
        self.dropped_problems = 0
        self.entries = 0
        self.truncated = False
        self.max_entries = max_entries
        self.max_depth = max_depth

    # -- bookkeeping ------------------------------------------------------------------
    def problem(self, path: bytes, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            shown = display_path(path)
            if len(shown) > 300:
                shown = f"{shown[:140]}...({len(shown)} characters)...{shown[-140:]}"
            self.problems.append(f"{shown}: {message}")
        else:
            self.dropped_problems += 1

    def emit(
        self, kind: str, path: bytes, new: os.stat_result | None, found: _Found | None, cause: str,
        at: tuple[int, bytes] | None = None,
    ) -> None:  # fmt: skip
        """Record a change; ``at`` (upper dir fd, name) offers it to the visit hook."""
        if found is None:
            change = _tuple_new(RawChange, (kind, path, new, None, None, cause))
        else:
            change = _tuple_new(RawChange, (kind, path, new, found.st, found.layer, cause))
        self.out.append(change)
        if at is not None and self.visit is not None and new is not None and offered(new.st_mode):
            try:
                self.visited[path] = self.visit(change, *at)
            except OSError as exc:  # the hook records its own trouble; this is the backstop
                self.problem(path, f"cannot read: {exc.strerror}")

    def names(self, path: bytes, dir_fd: int) -> list[bytes]:
        """Names in a directory, at most what the entry budget still allows."""
        budget = self.max_entries - self.entries
        names: list[bytes] = []
        try:
            with os.scandir(dir_fd) as listing:
                for entry in listing:
                    if len(names) >= budget:
                        self.truncated = True
                        break
                    names.append(os.fsencode(entry.name))
        except OSError as exc:
            self.problem(path, f"cannot list: {exc.strerror}")
        names.sort()
        self.entries += len(names)
        return names

    # -- the old (lower-only) view ------------------------------------------------------
    def is_whiteout(self, path: bytes, dir_fd: int, name: bytes, st: os.stat_result) -> str | None:
        kind = stat.S_IFMT(st.st_mode)
        if kind != stat.S_IFCHR and (kind != stat.S_IFREG or st.st_size):
            return None  # neither a device nor an empty file: the common case, decided at once
        xattr = False
        if kind == stat.S_IFREG:
            try:
                xattr = file_xattr(dir_fd, name, st, XATTR_WHITEOUT) is not None
            except OSError as exc:
                self.problem(path, f"cannot read xattrs: {exc.strerror}")
        return whiteout_kind(st, xattr)

    def lookup(self, path: bytes, lower: Sequence[tuple[int, int]], name: bytes) -> _Found | None:
        """``name`` in the old merged directory made of ``lower`` (top first)."""
        for pos, (layer, fd) in enumerate(lower):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.problem(path, f"lower layer {layer}: {exc.strerror}")
                continue
            if self.is_whiteout(path, fd, name, st):
                return None
            return _Found(st, layer, pos)
        return None

    @contextlib.contextmanager
    def lower_dirs(
        self, path: bytes, lower: Sequence[tuple[int, int]], name: bytes, found: _Found
    ) -> Iterator[list[tuple[int, int]]]:
        """The lower directories that make up ``name`` in the old view, opened.

        From the topmost layer holding it down, until a layer holds a non-directory or a
        whiteout there, or the directory found is opaque.
        """
        opened: list[tuple[int, int]] = []
        try:
            for layer, fd in lower[found.pos :]:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self.problem(path, f"lower layer {layer}: {exc.strerror}")
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    break
                try:
                    sub = _dir_fd(name, fd)
                except OSError as exc:
                    self.problem(path, f"lower layer {layer}: cannot open: {exc.strerror}")
                    break
                opened.append((layer, sub))
                try:
                    opaque = _fgetxattr(sub, XATTR_OPAQUE) == b"y"
                except OSError:
                    opaque = False
                if opaque:
                    break
            yield opened
        finally:
            for _layer, fd in opened:
                os.close(fd)

    def old_children(self, path: bytes, lower: Sequence[tuple[int, int]]) -> dict[bytes, _Found]:
        """Every name of the old merged directory, each from the first layer that has it."""
        decided: dict[bytes, _Found | None] = {}
        for pos, (layer, fd) in enumerate(lower):
            for name in self.names(path, fd):
                if name in decided:
                    continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError as exc:
                    self.problem(path + b"/" + name, f"lower layer {layer}: {exc.strerror}")
                    continue
                hidden = self.is_whiteout(path, fd, name, st)
                decided[name] = None if hidden else _Found(st, layer, pos)
        return {n: f for n, f in sorted(decided.items()) if f is not None}

    def capability_differs(
        self, path: bytes, upper_fd: int, name: bytes, new: os.stat_result,
        lower: Sequence[tuple[int, int]], found: _Found,
    ) -> bool:  # fmt: skip
        if not (stat.S_ISREG(new.st_mode) and stat.S_ISREG(found.st.st_mode)):
            return False
        try:
            now = file_xattr(upper_fd, name, new, XATTR_CAPABILITY) or b""
            before = file_xattr(lower[found.pos][1], name, found.st, XATTR_CAPABILITY) or b""
        except OSError as exc:
            self.problem(path, f"cannot read security.capability: {exc.strerror}")
            return False
        return now != before

    # -- the walk -------------------------------------------------------------------------
    def directory(
        self, path: bytes, upper_fd: int, lower: Sequence[tuple[int, int]], opaque: bool, depth: int
    ) -> None:
        """Compare one upper directory (present in both views, or new) with the old view."""
        if depth > self.max_depth:
            self.problem(path, f"deeper than {self.max_depth} directories: not walked further")
            return
        names = self.names(path or b"/", upper_fd)
        for name in names:
            child = path + b"/" + name
            try:
                st = os.stat(name, dir_fd=upper_fd, follow_symlinks=False)
            except OSError as exc:
                self.problem(child, f"cannot lstat: {exc.strerror}")
                continue
            found = self.lookup(child, lower, name) if lower else None
            hidden = self.is_whiteout(child, upper_fd, name, st)
            if hidden:
                if found is not None:
                    self.emit("D", child, None, found, hidden)
                continue
            if found is None:
                self.emit("A", child, st, None, "new", (upper_fd, name))
                if stat.S_ISDIR(st.st_mode):
                    self.subdirectory(child, upper_fd, name, (), depth)
                continue
            mark = len(self.out)
            if stat_different(found.st, st):
                self.emit("C", child, st, found, "stat", (upper_fd, name))
            elif self.capability_differs(child, upper_fd, name, st, lower, found):
                self.emit("C", child, st, found, "capability", (upper_fd, name))
            reported = len(self.out) > mark
            if stat.S_ISDIR(st.st_mode):
                if stat.S_ISDIR(found.st.st_mode):
                    with self.lower_dirs(child, lower, name, found) as below:
                        self.subdirectory(child, upper_fd, name, below, depth)
                else:
                    self.subdirectory(child, upper_fd, name, (), depth)
                if not reported and len(self.out) > mark:
                    self.out.insert(mark, RawChange("C", child, st, found.st, found.layer, "parent"))
        if opaque and lower:
            present = set(names)
            for name, found in self.old_children(path or b"/", lower).items():
                if name not in present:
                    self.emit("D", path + b"/" + name, None, found, "opaque")

    def subdirectory(
        self, path: bytes, parent_fd: int, name: bytes, lower: Sequence[tuple[int, int]], depth: int
    ) -> None:
        try:
            with _open_dir(name, parent_fd) as fd:
                try:
                    opaque = _fgetxattr(fd, XATTR_OPAQUE) == b"y"
                    if _fgetxattr(fd, XATTR_REDIRECT) is not None:
                        self.problem(path, "has an overlay redirect xattr: renamed directories are "
                                     "not followed, the answer may differ from the engine's")  # fmt: skip
                except OSError as exc:
                    self.problem(path, f"cannot read xattrs: {exc.strerror}")
                    opaque = False
                self.directory(path, fd, lower, opaque, depth + 1)
        except OSError as exc:
            self.problem(path, f"cannot open directory: {exc.strerror}")


def compute_changes(
    upper: str | bytes,
    lowers: Sequence[str | bytes],
    max_entries: int = MAX_ENTRIES,
    max_depth: int = MAX_DEPTH,
    visit: Visit | None = None,
) -> OverlayChanges:
    """Changes of the ``upper`` directory against ``lowers`` (top first).

    Both are paths on this machine that must already be canonical (no links on the way:
    resolve them inside the host root first). A lower layer that cannot be opened is left
    out and recorded as a problem. ``visit``, when given, sees each added or changed
    regular file and link while its directory is open (see :data:`Visit`).
    """
    walk = _Walk(max_entries, max_depth, visit)
    opened: list[tuple[int, int]] = []
    try:
        for index, lower in enumerate(lowers):
            try:
                opened.append((index, _dir_fd(lower)))
            except OSError as exc:
                walk.problem(os.fsencode(lower), f"lower layer {index} cannot be opened: {exc.strerror}")
        try:
            upper_fd = _dir_fd(upper)
        except OSError as exc:
            shown = display_path(os.fsencode(upper))
            raise EnvironmentProblem(f"the writable layer {shown} cannot be opened: {exc.strerror}") from exc
        try:
            try:
                opaque = _fgetxattr(upper_fd, XATTR_OPAQUE) == b"y"
            except OSError:
                opaque = False
            try:
                walk.directory(b"", upper_fd, opened, opaque, 0)
            except RecursionError:
                # MAX_DEPTH keeps well inside Python's limit; a caller deep in its own stack
                # must still get an answer, marked incomplete, rather than an exception.
                walk.truncated = True
                walk.problem(b"/", "directory tree too deep for this process's stack")
        finally:
            os.close(upper_fd)
    finally:
        for _index, fd in opened:
            os.close(fd)
    if walk.dropped_problems:
        walk.problems.append(f"... and {walk.dropped_problems} more problems")
    if walk.truncated:
        walk.problems.append(f"stopped after {max_entries} entries: the list of changes is incomplete")
    return OverlayChanges(walk.out, walk.entries, walk.truncated, walk.problems, walk.visited)


@dataclasses.dataclass(frozen=True)
class Located:
    """Where one path is found in a stack of layers."""

    st: os.stat_result
    """lstat of the entry."""
    layer: int
    """Index in the stack (0 = topmost) of the layer that provides it."""


def locate(stack: Sequence[str | bytes], path: bytes) -> tuple[Located | None, list[str]]:
    """Find ``path`` in the merged view of ``stack`` (top first), as overlayfs would.

    Each component below the root must be a directory in the merged view; a whiteout, a
    non-directory or an opaque directory ends the search below it. Links are not
    followed, not even in the middle of the path (a link there means the path does not
    exist as named). Returns (None, problems) when the path is not there.
    """
    walk = _Walk(MAX_ENTRIES, MAX_DEPTH)
    parts = [p for p in path.split(b"/") if p and p != b"."]
    if b".." in parts:
        return None, [f"{display_path(path)}: '..' is not allowed"]
    if len(parts) > MAX_DEPTH:
        return None, [f"{display_path(path)}: deeper than {MAX_DEPTH} directories"]
    with contextlib.ExitStack() as stack_fds:
        current = _open_layers(stack, stack_fds, walk)
        if not parts:
            if not current:
                return None, walk.problems
            return Located(os.fstat(current[0][1]), current[0][0]), walk.problems
        here = b""
        for number, name in enumerate(parts):
            here += b"/" + name
            found = walk.lookup(here, current, name)
            if found is None:
                return None, walk.problems
            if number == len(parts) - 1:
                return Located(found.st, found.layer), walk.problems
            if not stat.S_ISDIR(found.st.st_mode):
                return None, walk.problems
            current = stack_fds.enter_context(walk.lower_dirs(here, current, name, found))
    return None, walk.problems


def _open_layers(
    stack: Sequence[str | bytes], fds: contextlib.ExitStack, walk: _Walk
) -> list[tuple[int, int]]:
    """(layer index, directory fd) of each layer's root that opens; the others are problems."""
    opened: list[tuple[int, int]] = []
    for index, layer in enumerate(stack):
        try:
            opened.append((index, fds.enter_context(_open_dir(layer))))
        except OSError as exc:
            walk.problem(os.fsencode(layer), f"layer {index} cannot be opened: {exc.strerror}")
    return opened


def list_merged(stack: Sequence[str | bytes], path: bytes) -> tuple[dict[bytes, Located] | None, list[str]]:
    """The entries of directory ``path`` in the merged view of ``stack`` (top first).

    None when ``path`` is not a directory there. Whiteouts hide, opaque directories cut
    the layers below, links are not followed.
    """
    walk = _Walk(MAX_ENTRIES, MAX_DEPTH)
    parts = [p for p in path.split(b"/") if p and p != b"."]
    if b".." in parts or len(parts) > MAX_DEPTH:
        return None, [f"{display_path(path)}: not a plain absolute path"]
    with contextlib.ExitStack() as stack_fds:
        current = _open_layers(stack, stack_fds, walk)
        here = b""
        for name in parts:
            here += b"/" + name
            found = walk.lookup(here, current, name)
            if found is None or not stat.S_ISDIR(found.st.st_mode):
                return None, walk.problems
            current = stack_fds.enter_context(walk.lower_dirs(here, current, name, found))
        children = walk.old_children(here or b"/", current)
        return {name: Located(f.st, f.layer) for name, f in children.items()}, walk.problems

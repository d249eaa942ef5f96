"""Safe paths inside a container or image root, resolved the way a chroot would.

Every name below the root is the suspect's: a link may point at ``/etc/shadow`` of the
host, a chain of ``..`` may try to climb out, a FIFO may wait forever for a writer. The
resolver walks one component at a time with directory file descriptors
(``O_PATH | O_NOFOLLOW``), so a link swapped in during the walk fails instead of being
followed (CVE-2018-15664). Absolute link targets and ``..`` are taken against the root,
never past it. Links are counted and the walk stops at :data:`MAX_LINKS`. Only regular
files are ever opened for reading, with ``O_NOFOLLOW | O_NONBLOCK | O_NOATIME``.

All names are bytes, so non-UTF-8 names survive untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from forensics.errors import UnsafePath
from forensics.records import display_path

MAX_LINKS = 40
"""Links followed in one resolution, as Linux's own limit (MAXSYMLINKS)."""

MAX_PATH = 64 * 1024
"""Longest path, in bytes, that a resolution will grow to while expanding links."""

_DIR_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_NOATIME = getattr(os, "O_NOATIME", 0)


class PathNotFound(UnsafePath):
    """The path does not exist inside the root."""


class NotRegularFile(UnsafePath):
    """The path names a directory, device, FIFO, socket or link, not a file to read."""


class GrewPastLimit(UnsafePath):
    """A file gave more bytes than the limit while it was read (it grew since its stat)."""


class LinkLimit(UnsafePath):
    """Too many links, a loop, or a path that grew past MAX_PATH."""


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Where a path ends up inside the root."""

    path: bytes
    """The canonical path inside the root, absolute, links resolved."""
    stat: os.stat_result | None
    """lstat of the final component, or None when it does not exist."""
    links_followed: int
    """How many links the walk expanded."""


def _split(path: bytes) -> list[bytes]:
    return [p for p in path.split(b"/") if p and p != b"."]


class RootFS:
    """A directory treated as the root of a suspect file system."""

    def __init__(self, root: str | bytes | os.PathLike[str]) -> None:
        self.root = os.fsencode(root)
        fd = os.open(self.root, _DIR_FLAGS)
        os.close(fd)

    def __repr__(self) -> str:
        return f"RootFS({display_path(self.root)!r})"

    @contextlib.contextmanager
    def _walk(self, path: bytes | str, follow_final: bool) -> Iterator[tuple[int, bytes, Resolved]]:
        """Yield (fd of the parent dir, final name, resolution); fds are closed after."""
        path = os.fsencode(path)
        if b"\0" in path:
            raise UnsafePath(f"NUL byte in path {display_path(path)!r}")
        root_fd = os.open(self.root, _DIR_FLAGS)
        stack: list[int] = [root_fd]
        names: list[bytes] = []
        pending: deque[bytes] = deque(_split(path))
        links = 0
        try:
            if not pending:
                yield root_fd, b".", Resolved(b"/", os.stat(root_fd), 0)
                return
            while pending:
                comp = pending.popleft()
                if comp == b"..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                        names.pop()
                    continue
                last = not pending
                try:
                    st = os.stat(comp, dir_fd=stack[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        canonical = b"/" + b"/".join([*names, comp])
                        yield stack[-1], comp, Resolved(canonical, None, links)
                        return
                    raise PathNotFound(f"{display_path(path)!r}: {display_path(comp)!r} is missing") from None
                if stat.S_ISLNK(st.st_mode) and (not last or follow_final):
                    links += 1
                    if links > MAX_LINKS:
                        raise LinkLimit(f"{display_path(path)!r}: more than {MAX_LINKS} links")
                    target = os.readlink(comp, dir_fd=stack[-1])
                    if target.startswith(b"/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                        names.clear()
                    pending.extendleft(reversed(_split(target)))
                    if sum(len(p) + 1 for p in pending) > MAX_PATH:
                        raise LinkLimit(f"{display_path(path)!r}: expands past {MAX_PATH} bytes")
                    if not pending:
                        # A link to "/" or "." ends where the walk now stands.
                        here = b"/" + b"/".join(names)
                        yield stack[-1], b".", Resolved(here, os.stat(stack[-1]), links)
                        return
                    continue
                if last:
                    canonical = b"/" + b"/".join([*names, comp])
                    yield stack[-1], comp, Resolved(canonical, st, links)
                    return
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafePath(f"{display_path(path)!r}: {display_path(comp)!r} is not a directory")
                try:
                    stack.append(os.open(comp, _DIR_FLAGS, dir_fd=stack[-1]))
                except OSError as exc:
                    # ELOOP/ENOTDIR: swapped for a link or a file since the lstat above.
                    raise UnsafePath(
                        f"{display_path(path)!r}: {display_path(comp)!r} changed: {exc.strerror}"
                    ) from exc
                names.append(comp)
            # The path ended in "..": the walk stands on a directory.
            here = b"/" + b"/".join(names)
            yield stack[-1], b".", Resolved(here, os.stat(stack[-1]), links)
        finally:
            for fd in stack:
                os.close(fd)

    def resolve(self, path: bytes | str, follow_final: bool = True) -> Resolved:
        """Resolve ``path`` inside the root. Never raises for a missing final name."""
        with self._walk(path, follow_final) as (_fd, _name, resolved):
            return resolved

    def lstat(self, path: bytes | str) -> os.stat_result:
        resolved = self.resolve(path, follow_final=False)
        if resolved.stat is None:
            raise PathNotFound(f"{display_path(path)!r} is missing")
        return resolved.stat

    def readlink(self, path: bytes | str) -> bytes:
        """A link's target, as data. The link is not followed."""
        with self._walk(path, follow_final=False) as (fd, name, resolved):
            if resolved.stat is None:
                raise PathNotFound(f"{display_path(path)!r} is missing")
            if not stat.S_ISLNK(resolved.stat.st_mode):
                raise UnsafePath(f"{display_path(path)!r} is not a link")
            return os.readlink(name, dir_fd=fd)

    @contextlib.contextmanager
    def open_regular(self, path: bytes | str, follow: bool = True) -> Iterator[tuple[int, os.stat_result]]:
        """Open a regular file for reading; yield (fd, fstat). Anything else is refused.

        A FIFO, socket or device is refused from its lstat, before any open, so opening
        has no side effect and cannot block.
        """
        with self._walk(path, follow_final=follow) as (dir_fd, name, resolved):
            if resolved.stat is None:
                raise PathNotFound(f"{display_path(path)!r} is missing")
            if not stat.S_ISREG(resolved.stat.st_mode):
                kind = file_type(resolved.stat.st_mode)
                raise NotRegularFile(f"{display_path(path)!r} is a {kind}, not a regular file")
            fd = _open_noatime(name, dir_fd)
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (resolved.stat.st_dev, resolved.stat.st_ino):
                    raise UnsafePath(f"{display_path(path)!r} changed while it was opened")
                yield fd, st
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def directory(self, path: bytes | str) -> Iterator[int]:
        """An fd of the directory ``path`` (links inside the root followed as a chroot
        would, never out of it), to look names up in and open them with
        :func:`open_file_at` without resolving the path again for each; closed after."""
        with self._walk(path, follow_final=True) as (dir_fd, name, resolved):
            if resolved.stat is None:
                raise PathNotFound(f"{display_path(path)!r} is missing")
            if not stat.S_ISDIR(resolved.stat.st_mode):
                raise UnsafePath(f"{display_path(path)!r} is not a directory")
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:  # ELOOP/ENOTDIR: swapped since the lstat
                raise UnsafePath(f"{display_path(path)!r} changed: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (resolved.stat.st_dev, resolved.stat.st_ino):
                raise UnsafePath(f"{display_path(path)!r} changed while it was opened")
            yield fd
        finally:
            os.close(fd)

    def read_bytes(self, path: bytes | str, limit: int) -> bytes:
        """Read at most ``limit`` bytes of a regular file; refuse a larger one."""
        with self.open_regular(path) as (fd, st):
            if st.st_size > limit:
                raise UnsafePath(f"{display_path(path)!r} is {st.st_size} bytes, over the {limit} limit")
            try:
                return b"".join(chunks(fd, st.st_size, limit))
            except GrewPastLimit:
                raise GrewPastLimit(
                    f"{display_path(path)!r} grew past the {limit} limit while read"
                ) from None

    def listdir(self, path: bytes | str) -> list[bytes]:
        """Names in a directory (links to directories followed inside the root), sorted."""
        with self._walk(path, follow_final=True) as (dir_fd, name, resolved):
            if resolved.stat is None:
                raise PathNotFound(f"{display_path(path)!r} is missing")
            if not stat.S_ISDIR(resolved.stat.st_mode):
                raise UnsafePath(f"{display_path(path)!r} is not a directory")
            fd = _open_noatime(name, dir_fd, _LIST_FLAGS)
            try:
                return sorted(os.fsencode(n) for n in os.listdir(fd))
            finally:
                os.close(fd)

    def walk(
        self, top: bytes | str = b"/", max_entries: int = 10_000_000
    ) -> Iterator[tuple[bytes, os.stat_result]]:
        """Every entry below ``top`` (itself included), lstat only, links never followed.

        Directories are entered through file descriptors with O_NOFOLLOW, so a directory
        swapped for a link during the walk is skipped rather than followed.
        """
        resolved = self.resolve(top, follow_final=False)
        if resolved.stat is None:
            raise PathNotFound(f"{display_path(top)!r} is missing")
        yield resolved.path, resolved.stat
        if not stat.S_ISDIR(resolved.stat.st_mode):
            return
        count = 0
        with self._walk(resolved.path, follow_final=False) as (parent, name, _res):
            start = _open_noatime(name, parent, _LIST_FLAGS)
        todo: list[tuple[int, bytes]] = [(start, resolved.path.rstrip(b"/"))]
        try:
            while todo:
                dir_fd, prefix = todo.pop()
                try:
                    names = sorted(os.fsencode(n) for n in os.listdir(dir_fd))
                except OSError:
                    os.close(dir_fd)
                    continue
                subdirs = []
                for entry in names:
                    try:
                        st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                    except OSError:
                        continue
                    count += 1
                    if count > max_entries:
                        raise UnsafePath(f"more than {max_entries} entries below {display_path(top)!r}")
                    yield prefix + b"/" + entry, st
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(entry)
                for entry in reversed(subdirs):
                    try:
                        sub = _open_noatime(entry, dir_fd, _LIST_FLAGS)
                    except OSError:
                        continue
                    todo.append((sub, prefix + b"/" + entry))
                os.close(dir_fd)
        finally:
            for fd, _ in todo:
                os.close(fd)

    def host_path(self, path: bytes | str) -> Path:
        """The resolved path as seen from outside the root, for tools that take a path.

        Only for handing to our own tools, which must themselves not follow links.
        """
        resolved = self.resolve(path, follow_final=False)
        return Path(os.fsdecode(self.root + resolved.path))


def open_file_at(dir_fd: int, name: bytes, expected: os.stat_result) -> tuple[int, os.stat_result]:
    """Open ``name`` in ``dir_fd`` for reading, for a walker that holds the directory.

    The caller lstat'ed ``name`` there and found a regular file: the open follows no link,
    never blocks, leaves the atime alone, and must land on that same inode, else
    :class:`UnsafePath`. Gives (fd, fstat); the caller closes the fd.
    """
    if not stat.S_ISREG(expected.st_mode):
        raise NotRegularFile(f"{display_path(name)!r} is a {file_type(expected.st_mode)}, not a regular file")
    fd = _open_noatime(name, dir_fd)
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(fd)
        raise UnsafePath(f"{display_path(name)!r} changed while it was opened")
    return fd, st


def chunks(fd: int, size: int, limit: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of the open regular file ``fd``, from where it stands, in reads of at most
    ``chunk``. The first asks for the ``size`` fstat gave plus one byte: os.read allocates what
    it is asked for, and a 1 MiB buffer per small file costs more than its open, read and
    close. A short read is the end; past ``limit`` bytes, :class:`GrewPastLimit`."""
    read = 0
    want = min(chunk, limit + 1, size + 1)
    while True:
        data = os.read(fd, want)
        read += len(data)
        if read > limit:
            raise GrewPastLimit(f"grew past the {limit}-byte limit while read")
        if data:
            yield data
        if len(data) < want:
            return
        want = min(chunk, limit + 1 - read)


def _open_noatime(name: bytes, dir_fd: int, flags: int = _READ_FLAGS) -> int:
    """Open so that reading (a file's bytes, a directory's entries) leaves its atime alone."""
    if _O_NOATIME:
        try:
            return os.open(name, flags | _O_NOATIME, dir_fd=dir_fd)
        except PermissionError:
            pass  # O_NOATIME needs ownership or CAP_FOWNER; fall back without it.
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
    return os.open(name, flags, dir_fd=dir_fd)


_TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def file_type(mode: int) -> str:
    """``file``, ``directory``, ``symlink``, ... from an st_mode (``unknown`` for none)."""
    return _TYPES.get(stat.S_IFMT(mode), "unknown")

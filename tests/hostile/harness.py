"""Guards every hostile case shares: a hang detector, a memory bound, a before/after snapshot."""

from __future__ import annotations

import hashlib
import os
import resource
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tests.hostile.corpus import CANARY

HANG = 120.0
"""Seconds before a case counts as hung (a detector, not a timing assertion)."""
MEMORY = 768 << 20
"""Growth of the process's peak RSS one case may cause (generous: the bounds are far lower)."""

T = TypeVar("T")


def guarded(fn: Callable[[], T], what: str = "case") -> T:
    """Run ``fn`` in a thread; fail if it hangs or raises, or if peak RSS grows past MEMORY."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    thread = threading.Thread(target=target, name=f"hostile-{what}", daemon=True)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive(), f"{what}: still running after {HANG:.0f}s (hang)"
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MEMORY, f"{what}: peak RSS grew by {grown >> 20} MiB"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def snapshot(top: Path, skip: Iterable[Path] = (), content: bool = False) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``top`` (lstat only, links never followed), but the ``skip`` trees."""
    skipped = {os.fsencode(p) for p in skip}
    seen: dict[str, tuple[Any, ...]] = {}
    # fwalk works from directory fds, so names longer than PATH_MAX are no trouble.
    for dirpath, dirnames, filenames, dfd in os.fwalk(os.fsencode(top)):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skipped]
        for name in dirnames + filenames:
            st = os.lstat(name, dir_fd=dfd)
            row: tuple[Any, ...] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if content and stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
                with os.fdopen(fd, "rb") as f:
                    row += (hashlib.file_digest(f, "sha256").hexdigest(),)
            if stat.S_ISLNK(st.st_mode):
                row += (os.readlink(name, dir_fd=dfd),)
            seen[os.fsdecode(os.path.join(dirpath, name))] = row
    return seen


def assert_same(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> None:
    added = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or gone or changed), f"added {added[:5]}, removed {gone[:5]}, changed {changed[:5]}"


def canaries(*tops: Path) -> list[str]:
    """Every name containing CANARY under ``tops`` (not recursing into huge system trees)."""
    found = []
    for top in tops:
        if not top.exists():
            continue
        if top in (Path("/"), Path("/etc"), Path("/tmp")):
            found += [str(p) for p in top.iterdir() if CANARY in p.name]
            continue
        for dirpath, dirnames, filenames, _fd in os.fwalk(top):
            found += [os.path.join(dirpath, n) for n in dirnames + filenames if CANARY in n]
    return found


def escapes(out: Path) -> list[str]:
    """Links under ``out`` that resolve outside it."""
    bad = []
    real_out = os.path.realpath(out)
    for dirpath, dirnames, filenames, dfd in os.fwalk(out):
        for name in dirnames + filenames:
            if not stat.S_ISLNK(os.lstat(name, dir_fd=dfd).st_mode):
                continue
            target = os.readlink(name, dir_fd=dfd)
            # Resolve lexically from the link's directory, as a chroot at ``out`` would not:
            # any target that leaves ``out`` this way is an escape for a tool run on the host.
            where = os.path.normpath(os.path.join(dirpath, target))
            if where != real_out and not where.startswith(real_out + os.sep):
                bad.append(f"{dirpath}/{name} -> {target}")
    return bad

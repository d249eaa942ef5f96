"""Safe resolution inside a hostile root: nothing may lead out of it, nothing may hang."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from forensics.errors import UnsafePath
from forensics.host.rootfs import LinkLimit, NotRegularFile, PathNotFound, RootFS, open_file_at


@pytest.fixture()
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """An outside secret, and a root full of links that try to reach it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("HOST SECRET")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text("container shadow")
    (root / "abs").symlink_to("/etc/shadow")
    (root / "climb").symlink_to("../../../../../../../../" + str(outside / "shadow").lstrip("/"))
    (root / "dots").symlink_to("../../..")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "self").symlink_to(".")
    (root / "rootlink").symlink_to("/")
    os.mkfifo(root / "fifo")
    (root / "to_fifo").symlink_to("/fifo")
    (root / "new\nline").write_text("newline name")
    (root / os.fsdecode(b"bad\xffname")).write_text("latin")
    return root, outside


def test_absolute_link_stays_inside(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    fs = RootFS(root)
    assert fs.read_bytes("/abs", 100) == b"container shadow"
    assert fs.resolve("/abs").path == b"/etc/shadow"


def test_dotdot_chain_cannot_climb_out(hostile: tuple[Path, Path]) -> None:
    root, outside = hostile
    fs = RootFS(root)
    # The link names the outside file by a long climb; inside the root the climb stops at
    # the root, so the path names a file that does not exist there.
    with pytest.raises(PathNotFound):
        fs.read_bytes("/climb", 100)
    assert fs.resolve("/dots/etc/shadow").path == b"/etc/shadow"
    assert fs.read_bytes("/dots/dots/../etc/shadow", 100) == b"container shadow"
    assert fs.resolve("/../../..").path == b"/"
    assert (outside / "shadow").read_text() == "HOST SECRET"


def test_link_to_root_and_dot(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    fs = RootFS(root)
    assert fs.resolve("/rootlink").path == b"/"
    assert fs.resolve("/self/self/etc/shadow").path == b"/etc/shadow"
    assert fs.read_bytes("/rootlink/rootlink/etc/shadow", 100) == b"container shadow"


def test_link_loop_is_bounded(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    with pytest.raises(LinkLimit):
        RootFS(root).resolve("/loop1")


def test_long_chain_is_bounded(tmp_path: Path) -> None:
    for i in range(60):
        (tmp_path / f"l{i}").symlink_to(f"l{i + 1}")
    (tmp_path / "l60").write_text("end")
    fs = RootFS(tmp_path)
    with pytest.raises(LinkLimit):
        fs.read_bytes("/l0", 10)
    assert fs.read_bytes("/l30", 10) == b"end"


def test_fifo_is_refused_without_blocking(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    fs = RootFS(root)
    result: list[BaseException] = []

    def attempt() -> None:
        try:
            fs.read_bytes("/to_fifo", 100)
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "opening a FIFO through a link blocked"
    assert isinstance(result[0], NotRegularFile)


def test_device_is_never_opened(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(NotRegularFile):
        RootFS(tmp_path).read_bytes("/null", 10)


def test_odd_names_survive(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    fs = RootFS(root)
    assert fs.read_bytes(b"/new\nline", 100) == b"newline name"
    assert fs.read_bytes(b"/bad\xffname", 100) == b"latin"
    names = {path for path, _ in fs.walk("/")}
    assert b"/bad\xffname" in names and b"/new\nline" in names


def test_walk_never_follows_links(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    paths = [p for p, _ in RootFS(root).walk("/")]
    # rootlink -> / and dots -> ../../.. must not be entered: each path appears once.
    assert len(paths) == len(set(paths))
    assert not any(p.startswith(b"/rootlink/") or p.startswith(b"/dots/") for p in paths)


def test_readlink_is_data(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    assert RootFS(root).readlink("/abs") == b"/etc/shadow"


def test_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1000)
    with pytest.raises(UnsafePath):
        RootFS(tmp_path).read_bytes("/big", 999)


def test_intermediate_file_is_not_a_directory(hostile: tuple[Path, Path]) -> None:
    root, _ = hostile
    with pytest.raises(UnsafePath):
        RootFS(root).resolve("/etc/shadow/x/y")


def test_nul_byte_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        RootFS(tmp_path).resolve(b"/a\0b")


def test_reading_leaves_atimes_alone(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"evidence")
    old = 1_000_000_000
    for p in (tmp_path / "d" / "f", tmp_path / "d"):
        os.utime(p, (old, old))  # older than mtime + a day: relatime would update it
    fs = RootFS(tmp_path)
    assert fs.read_bytes("/d/f", 100) == b"evidence"
    assert fs.listdir("/d") == [b"f"]
    assert [p for p, _ in fs.walk("/d")] == [b"/d", b"/d/f"]
    assert (tmp_path / "d" / "f").stat().st_atime == old
    assert (tmp_path / "d").stat().st_atime == old


def test_open_file_at_lands_on_the_lstated_inode_only(hostile: tuple[Path, Path]) -> None:
    root, _outside = hostile
    dir_fd = os.open(root / "etc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        st = os.stat(b"shadow", dir_fd=dir_fd, follow_symlinks=False)
        fd, now = open_file_at(dir_fd, b"shadow", st)
        try:
            assert os.read(fd, 100) == b"container shadow" and now.st_ino == st.st_ino
        finally:
            os.close(fd)
        # Swapped after the lstat: another file now has the name.
        os.rename(root / "etc" / "shadow", root / "etc" / "shadow.old")
        (root / "etc" / "shadow").write_text("swapped in")
        with pytest.raises(UnsafePath, match="changed"):
            open_file_at(dir_fd, b"shadow", st)
        # Swapped for a link: not followed.
        os.unlink(root / "etc" / "shadow")
        os.symlink("shadow.old", root / "etc" / "shadow")
        with pytest.raises(OSError):
            open_file_at(dir_fd, b"shadow", st)
    finally:
        os.close(dir_fd)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fifo = os.stat(b"fifo", dir_fd=root_fd, follow_symlinks=False)
        with pytest.raises(NotRegularFile):  # refused from its lstat: never opened, never blocks
            open_file_at(root_fd, b"fifo", fifo)
    finally:
        os.close(root_fd)


def test_directory_fds_stay_inside_the_root(hostile: tuple[Path, Path]) -> None:
    root, outside = hostile
    fs = RootFS(root)
    inside = os.stat(root)
    for path in ("/dots", "/rootlink", "/self", "/", "/etc/.."):
        with fs.directory(path) as fd:
            st = os.fstat(fd)
            assert (st.st_dev, st.st_ino) == (inside.st_dev, inside.st_ino), path
    with fs.directory("/etc") as fd:
        shadow = os.stat(b"shadow", dir_fd=fd, follow_symlinks=False)
        src, _st = open_file_at(fd, b"shadow", shadow)
        try:
            assert os.read(src, 100) == b"container shadow"
        finally:
            os.close(src)
    (root / "out").symlink_to(outside)  # absolute: taken against the root, where it is missing
    for path, error in (("/etc/shadow", UnsafePath), ("/fifo", UnsafePath), ("/nope", PathNotFound),
                        ("/out", PathNotFound), ("/loop1", LinkLimit)):  # fmt: skip
        with pytest.raises(error), fs.directory(path):
            pass

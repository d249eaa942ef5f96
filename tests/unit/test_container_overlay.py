"""The overlay diff on upper/lower trees built under tmp_path (root: mknod, trusted.* xattrs)."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from forensics.containers.overlay import MAX_DEPTH, compute_changes, same_fs_time, stat_different
from forensics.errors import EnvironmentProblem

pytestmark = pytest.mark.root

NS = 1_000_000_000


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: 0/0 character devices and trusted.* xattrs")


def write(path: Path, data: bytes = b"x", mtime: int | None = None, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
    return path


def whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(0, 0))


def opaque(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.setxattr(path, "trusted.overlay.opaque", b"y")
    return path


def same_dir_meta(src: Path, dst: Path) -> None:
    """Give ``dst`` the mode, owner and times of ``src`` (as a copy-up does)."""
    st = src.lstat()
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.chown(dst, st.st_uid, st.st_gid)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_up(lower: Path, upper: Path) -> Path:
    """A byte-for-byte copy with the same metadata: what overlayfs does before a write."""
    upper.parent.mkdir(parents=True, exist_ok=True)
    if lower.is_symlink():
        os.symlink(os.readlink(lower), upper)
        return upper
    upper.write_bytes(lower.read_bytes())
    same_dir_meta(lower, upper)
    return upper


def changes(upper: Path, *lowers: Path, **kw: int) -> set[tuple[str, str]]:
    result = compute_changes(str(upper), [str(p) for p in lowers], **kw)
    return {(c.kind, c.path.decode("utf-8", "backslashreplace")) for c in result.changes}


@pytest.fixture()
def base(tmp_path: Path) -> tuple[Path, Path]:
    """One lower layer like a tiny distribution, and an empty upper dir."""
    lower = tmp_path / "lower"
    for name in ("etc/passwd", "etc/group", "usr/sbin/a", "usr/sbin/b", "root/.profile", "bin/busybox"):
        write(lower / name, b"original " + name.encode(), mtime=1_600_000_000 * NS)
    os.symlink("/bin/busybox", lower / "bin/ls")
    (lower / "tmp").mkdir()
    upper = tmp_path / "upper"
    upper.mkdir()
    return lower, upper


def test_add_file_in_new_directory(base: tuple[Path, Path]) -> None:
    lower, upper = base
    write(upper / "newdir/f")
    assert changes(upper, lower) == {("A", "/newdir"), ("A", "/newdir/f")}


def test_changed_file_makes_its_parent_changed(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "etc").mkdir()
    same_dir_meta(lower / "etc", upper / "etc")
    write(upper / "etc/passwd", b"root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    assert changes(upper, lower) == {("C", "/etc"), ("C", "/etc/passwd")}


def test_unchanged_copy_up_is_not_a_change(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "etc").mkdir()
    same_dir_meta(lower / "etc", upper / "etc")
    copy_up(lower / "etc/passwd", upper / "etc/passwd")
    assert changes(upper, lower) == set()


def test_mtime_with_zero_nanoseconds_counts_as_the_same(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "etc").mkdir()
    same_dir_meta(lower / "etc", upper / "etc")
    copy_up(lower / "etc/passwd", upper / "etc/passwd")
    os.utime(upper / "etc/passwd", ns=(0, 1_600_000_000 * NS + 123))  # lower has .000000000
    assert changes(upper, lower) == set()
    os.utime(upper / "etc/passwd", ns=(0, 1_600_000_001 * NS))
    assert changes(upper, lower) == {("C", "/etc"), ("C", "/etc/passwd")}


def test_whiteout_deletes_and_only_when_the_lower_has_it(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "etc").mkdir()
    same_dir_meta(lower / "etc", upper / "etc")
    whiteout(upper / "etc/group")
    whiteout(upper / "etc/never-existed")
    assert changes(upper, lower) == {("C", "/etc"), ("D", "/etc/group")}


def test_deleted_directory_lists_only_itself(base: tuple[Path, Path]) -> None:
    lower, upper = base
    whiteout(upper / "root")
    assert changes(upper, lower) == {("D", "/root")}


def test_opaque_directory_deletes_each_lower_child(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "usr").mkdir()
    same_dir_meta(lower / "usr", upper / "usr")
    opaque(upper / "usr/sbin")
    same_dir_meta(lower / "usr/sbin", upper / "usr/sbin")
    write(upper / "usr/sbin/x")
    assert changes(upper, lower) == {
        ("C", "/usr"),
        ("C", "/usr/sbin"),
        ("D", "/usr/sbin/a"),
        ("D", "/usr/sbin/b"),
        ("A", "/usr/sbin/x"),
    }


def test_opaque_directory_keeping_a_lower_name(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "usr").mkdir()
    same_dir_meta(lower / "usr", upper / "usr")
    opaque(upper / "usr/sbin")
    same_dir_meta(lower / "usr/sbin", upper / "usr/sbin")
    copy_up(lower / "usr/sbin/a", upper / "usr/sbin/a")
    # a is back with the same metadata: not a change; b is hidden: deleted.
    assert changes(upper, lower) == {("C", "/usr"), ("C", "/usr/sbin"), ("D", "/usr/sbin/b")}


def test_type_change_symlink_to_file(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "bin").mkdir()
    same_dir_meta(lower / "bin", upper / "bin")
    write(upper / "bin/ls", b"#!/bin/sh\n")
    assert changes(upper, lower) == {("C", "/bin"), ("C", "/bin/ls")}


def test_directory_mode_change_alone(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "tmp").mkdir()
    same_dir_meta(lower / "tmp", upper / "tmp")
    os.chmod(upper / "tmp", 0o1777)
    assert changes(upper, lower) == {("C", "/tmp")}


def test_directory_mtime_alone_is_not_a_change(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "tmp").mkdir()
    same_dir_meta(lower / "tmp", upper / "tmp")
    os.utime(upper / "tmp", ns=(0, 5 * NS))
    assert changes(upper, lower) == set()


def test_file_capability_change(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "bin").mkdir()
    same_dir_meta(lower / "bin", upper / "bin")
    copy_up(lower / "bin/busybox", upper / "bin/busybox")
    cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # v2, effective, cap_net_bind_service
    os.setxattr(upper / "bin/busybox", "security.capability", cap)
    result = compute_changes(str(upper), [str(lower)])
    by_path = {c.path: c for c in result.changes}
    assert by_path[b"/bin/busybox"].kind == "C"
    assert by_path[b"/bin/busybox"].cause == "capability"
    assert by_path[b"/bin"].cause == "parent"


def test_layers_stack_whiteouts_and_opaque_dirs_below(tmp_path: Path) -> None:
    bottom, top, upper = tmp_path / "l0", tmp_path / "l1", tmp_path / "up"
    write(bottom / "gone", b"deleted by the layer above")
    write(bottom / "d/old", b"hidden by an opaque dir above")
    write(bottom / "keep/a")
    whiteout(top / "gone")
    opaque(top / "d")
    write(top / "d/new")
    (top / "keep").mkdir()
    upper.mkdir()
    # "gone" does not exist in the old view: writing it is an addition.
    write(upper / "gone")
    # Emptying d (opaque) deletes only what the old view had: d/new, not d/old.
    opaque(upper / "d")
    same_dir_meta(top / "d", upper / "d")
    # keep/a comes from the bottom layer through a merged directory.
    (upper / "keep").mkdir()
    same_dir_meta(top / "keep", upper / "keep")
    whiteout(upper / "keep/a")
    result = compute_changes(str(upper), [str(top), str(bottom)])
    found = {(c.kind, c.path.decode()): c for c in result.changes}
    assert set(found) == {("A", "/gone"), ("C", "/d"), ("D", "/d/new"), ("C", "/keep"), ("D", "/keep/a")}
    assert found[("D", "/keep/a")].old_layer == 1
    assert found[("D", "/d/new")].old_layer == 0


def test_lower_symlink_is_not_a_directory(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    write(lower / "usr/lib/x")
    os.symlink("usr/lib", lower / "lib")
    opaque(upper / "lib")
    write(upper / "lib/y")
    # The old /lib is a link, the new one a directory: changed, and y is added. The link is
    # never followed to usr/lib, so x is not reported deleted.
    assert changes(upper, lower) == {("C", "/lib"), ("A", "/lib/y")}


def test_xattr_whiteout_in_the_upper_dir(base: tuple[Path, Path]) -> None:
    lower, upper = base
    (upper / "etc").mkdir()
    same_dir_meta(lower / "etc", upper / "etc")
    write(upper / "etc/passwd", b"")
    os.setxattr(upper / "etc/passwd", "trusted.overlay.whiteout", b"")
    result = compute_changes(str(upper), [str(lower)])
    assert {(c.kind, c.path, c.cause) for c in result.changes} == {
        ("C", b"/etc", "parent"),
        ("D", b"/etc/passwd", "xattr-whiteout"),
    }


def test_hostile_entries_are_listed_never_followed_or_opened(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    os.symlink("/etc/shadow", upper / "escape")
    os.symlink("../../../../..", upper / "updir")
    os.mkfifo(upper / "fifo")
    os.mknod(upper / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    write(upper / "new\nline")
    write(upper / b"latin1-\xe9".decode("utf-8", "surrogateescape"))
    result = compute_changes(str(upper), [str(lower)])
    assert {c.path for c in result.changes} == {
        b"/escape", b"/updir", b"/fifo", b"/null", b"/new\nline", b"/latin1-\xe9",
    }  # fmt: skip
    assert all(c.kind == "A" for c in result.changes)
    assert result.problems == []


def test_depth_and_entry_bounds(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    deep = upper
    for _ in range(12):
        deep = deep / "d"
    deep.mkdir(parents=True)
    shallow = compute_changes(str(upper), [str(lower)], max_depth=5)
    assert len(shallow.changes) == 6
    assert any("deeper than 5" in p for p in shallow.problems)
    for n in range(50):
        write(upper / f"f{n:02}")
    few = compute_changes(str(upper), [str(lower)], max_entries=20)
    assert few.truncated
    assert few.entries <= 20
    assert any("incomplete" in p for p in few.problems)


def test_a_very_deep_tree_stops_at_the_default_depth(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    fd = os.open(upper, os.O_RDONLY)
    for _ in range(700):  # deeper than PATH_MAX allows to name in one go
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    result = compute_changes(str(upper), [str(lower)])
    assert len(result.changes) == MAX_DEPTH + 1
    assert any("deeper than" in p and len(p) < 400 for p in result.problems)


def test_missing_lower_layer_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    write(upper / "f")
    result = compute_changes(str(upper), [str(tmp_path / "nope")])
    assert {(c.kind, c.path) for c in result.changes} == {("A", b"/f")}
    assert any("cannot be opened" in p for p in result.problems)


def test_a_missing_upper_dir_is_an_environment_problem(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="cannot be opened"):
        compute_changes(str(tmp_path / "gone"), [])


def test_stat_rules_of_the_engine(tmp_path: Path) -> None:
    assert same_fs_time(5 * NS + 7, 5 * NS + 7)
    assert same_fs_time(5 * NS, 5 * NS + 7)
    assert not same_fs_time(5 * NS + 6, 5 * NS + 7)
    assert not same_fs_time(5 * NS, 6 * NS)
    a = write(tmp_path / "a", b"1", mtime=5 * NS)
    b = write(tmp_path / "b", b"22", mtime=5 * NS)
    assert stat_different(a.lstat(), b.lstat())  # size
    os.mknod(tmp_path / "blk1", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    os.mknod(tmp_path / "blk2", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    os.utime(tmp_path / "blk2", ns=(0, 9 * NS), follow_symlinks=False)
    # The engine's "is a directory" test also holds for block devices: mtime is not compared.
    assert not stat_different((tmp_path / "blk1").lstat(), (tmp_path / "blk2").lstat())


def test_the_visit_hook_reads_added_and_changed_files_and_links_through_the_walks_fd(
    base: tuple[Path, Path],
) -> None:
    lower, upper = base
    write(upper / "etc/passwd", b"changed")
    write(upper / "new/dir/file", b"added")
    os.symlink("/etc/shadow", upper / "new/link")
    whiteout(upper / "etc/group")
    os.mkfifo(upper / "new/fifo")
    seen: dict[bytes, tuple[str, bytes]] = {}

    def visit(change: object, dir_fd: int, name: bytes) -> str:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(name, dir_fd=dir_fd)
        else:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            data = os.read(fd, 100)
            os.close(fd)
        seen[change.path] = (change.kind, data)  # type: ignore[attr-defined]
        return "visited"

    result = compute_changes(str(upper), [str(lower)], visit=visit)
    assert seen == {
        b"/etc/passwd": ("C", b"changed"),
        b"/new/dir/file": ("A", b"added"),
        b"/new/link": ("A", b"/etc/shadow"),
    }  # not the deletion, the directories or the FIFO
    assert result.visited == dict.fromkeys(seen, "visited")
    assert {(c.kind, c.path) for c in result.changes} >= {("D", b"/etc/group"), ("A", b"/new/fifo")}


def test_a_visit_hook_that_fails_is_a_problem_not_a_lost_walk(base: tuple[Path, Path]) -> None:
    lower, upper = base
    write(upper / "a", b"1")
    write(upper / "b", b"2")

    def visit(change: object, dir_fd: int, name: bytes) -> None:
        raise PermissionError(13, "Permission denied")

    result = compute_changes(str(upper), [str(lower)], visit=visit)
    assert {c.path for c in result.changes} == {b"/a", b"/b"}
    assert len(result.problems) == 2 and "cannot read" in result.problems[0]

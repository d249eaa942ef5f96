"""image extract on hostile layers built in code: nothing may appear outside DIR.

Each case lists everything under tmp_path (but DIR) before and after, lstat only, and
requires the two to be equal; then checks what DIR holds and what was refused.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.images.extract import Extraction, Limits, extract, safe_links
from forensics.images.source import open_path
from tests.unit.test_image_source import save_tar

Member = tuple[str, str, object]
"""(name, kind, value): kind file (bytes), dir, symlink (target), hardlink (target), char, block, fifo."""


def tar_of(members: list[Member | tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, kind, value = member
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                assert isinstance(value, bytes)
                data = value
                info.size = len(data)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = str(value)
            else:
                info.type = {"dir": tarfile.DIRTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
                             "fifo": tarfile.FIFOTYPE}[kind]  # fmt: skip
                if kind in ("char", "block"):
                    info.devmajor, info.devminor = 1, 3
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            if Path(dirpath, name) == skip:
                continue
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size)
    return out


def run(tmp_path: Path, layers: list[bytes], layer: int | None = None, limits: Limits = Limits(),
        relative: bool = False) -> tuple[Extraction, Path]:  # fmt: skip
    archive = save_tar(tmp_path / "image.tar", layers)
    (tmp_path / "victim").mkdir(exist_ok=True)
    (tmp_path / "victim" / "file").write_text("original")
    out = tmp_path / "work" / "out"
    out.parent.mkdir(exist_ok=True)
    before = snapshot(tmp_path, out)
    result = extract(lambda: open_path(archive), str(out), layer, limits, relative)
    after = snapshot(tmp_path, out)
    assert after == before, set(after.items()) ^ set(before.items())
    assert (tmp_path / "victim" / "file").read_text() == "original"
    return result, out


def reasons(result: Extraction) -> dict[str, str]:
    return {r.path.decode(): r.reason for r in result.refused}


def test_dotdot_and_absolute_names_are_refused_by_name(tmp_path: Path) -> None:
    layer = tar_of([("ok", "file", b"fine"), ("../../victim/file", "file", b"pwned"),
                    ("/" + str(tmp_path / "victim/abs")[1:], "file", b"x")])  # fmt: skip
    # tarfile strips a leading "/" itself; put one back through a raw name.
    raw = tarfile.TarInfo("/etc/abs-name")
    raw.size = 0
    result, out = run(tmp_path, [layer + b"", tar_of([raw])])
    assert (out / "ok").read_bytes() == b"fine"
    reader = [r.reason for r in result.refused if not r.path]
    assert any("'..'" in r for r in reader) and any("absolute member name" in r for r in reader)


def test_link_then_write_through_it(tmp_path: Path) -> None:
    layer = tar_of(
        [("d", "symlink", "../.."), ("d/file", "file", b"pwned"), ("d/victim/file", "file", b"pwned")]
    )
    result, out = run(tmp_path, [layer])
    why = reasons(result)
    assert "climbs out" in why["/d"]
    assert "below /d, a symlink" in why["/d/file"] and "below /d" in why["/d/victim/file"]
    assert os.listdir(out) == []


def test_two_step_link_across_layers(tmp_path: Path) -> None:
    """GNU tar CVE-2025-45582: layer 0 plants x -> /, layer 1 writes x/<victim>/pwned."""
    inside = str(tmp_path / "victim")[1:]
    first = tar_of([("x", "symlink", "/")])
    second = tar_of([(f"x/{inside}/pwned", "file", b"pwned"), ("x/etc/y", "file", b"y")])
    for relative in (False, True):
        out = tmp_path / "work" / "out"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        result, out = run(tmp_path, [first, second], relative=relative)
        why = reasons(result)
        assert "below /x, a symlink" in why["/x/etc/y"] and "below /x" in why[f"/x/{inside}/pwned"]
        if relative:  # x -> / made relative is x -> ".": inside DIR, and nothing goes through it
            assert os.readlink(out / "x") == "." and "/x" not in why
        else:
            assert "absolute target" in why["/x"] and not (out / "x").exists()


def test_hardlinks_out_of_the_root_to_links_and_good_ones(tmp_path: Path) -> None:
    layer = tar_of([("f", "file", b"data"), ("good", "hardlink", "f"), ("s", "symlink", "f"),
                    ("tolink", "hardlink", "s"), ("out", "hardlink", "../../victim/file"),
                    ("missing", "hardlink", "nothere")])  # fmt: skip
    result, out = run(tmp_path, [layer])
    assert os.stat(out / "good").st_ino == os.stat(out / "f").st_ino
    why = reasons(result)
    assert "a symlink: only regular files" in why["/tolink"] and "not extracted" in why["/missing"]
    assert any("refused hard link" in r.reason for r in result.refused if not r.path)
    assert sorted(os.listdir(out)) == ["f", "good", "s"]


def test_devices_fifos_and_setid_bits(tmp_path: Path) -> None:
    setuid = tarfile.TarInfo("suid")
    setuid.mode, setuid.size = 0o4755, 0
    setgid_dir = tarfile.TarInfo("gdir")
    setgid_dir.type, setgid_dir.mode = tarfile.DIRTYPE, 0o2775
    layer = tar_of(
        [("null", "char", None), ("sda", "block", None), ("pipe", "fifo", None), setuid, setgid_dir]
    )
    result, out = run(tmp_path, [layer])
    assert sorted(os.listdir(out)) == ["gdir", "suid"]
    assert {"/null", "/sda", "/pipe"} <= set(reasons(result))
    assert stat.S_IMODE(os.stat(out / "suid").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(out / "gdir").st_mode) == 0o775
    assert set(result.cleared_setid) == {b"/suid", b"/gdir"}


def test_long_link_chains_and_loops(tmp_path: Path) -> None:
    chain: list[Member] = [(f"l{i}", "symlink", f"l{i + 1}") for i in range(50)]
    layer = tar_of([*chain, ("l50", "file", b"end"), ("loop1", "symlink", "loop2"), ("loop2", "symlink", "loop1"),
                    ("dot", "symlink", "."), ("deep", "dir", None), ("deep/up", "symlink", "../deep/../..")])  # fmt: skip
    result, out = run(tmp_path, [layer])
    why = reasons(result)
    assert "more than 40 links" in why["/l0"] and "/l45" not in why
    assert (out / "l45").read_bytes() == b"end"
    # loop1 goes round; once it is refused, loop2 only dangles (to a name that is not there).
    assert "more than 40 links" in why["/loop1"] and "/loop2" not in why and not (out / "loop2").exists()
    assert "climbs out" in why["/deep/up"]
    assert os.readlink(out / "dot") == "."


def test_chmod_through_a_link_across_layers(tmp_path: Path) -> None:
    """containerd CVE-2021-32760: a link, then a directory entry of the same name."""
    first = tar_of([("e", "symlink", "../../victim")])
    again = tarfile.TarInfo("e")
    again.type, again.mode = tarfile.DIRTYPE, 0o777
    _result, out = run(tmp_path, [first, tar_of([again])])
    assert (out / "e").is_dir() and not (out / "e").is_symlink()
    assert stat.S_IMODE(os.stat(tmp_path / "victim").st_mode) != 0o777


def test_whiteouts_merged_view_and_one_layer(tmp_path: Path) -> None:
    base = tar_of([("a", "dir", None), ("a/gone", "file", b"1"), ("a/kept", "file", b"2"), ("o", "dir", None),
                   ("o/hidden", "file", b"3")])  # fmt: skip
    top = tar_of([("a/.wh.gone", "file", b""), ("o/.wh..wh..opq", "file", b""), ("o/new", "file", b"4")])
    result, out = run(tmp_path, [base, top])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a", "a/kept", "o", "o/new"]
    assert result.whiteouts_applied == 2
    (tmp_path / "second").mkdir()
    result, out = run(tmp_path / "second", [base, top], layer=1)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["o", "o/new"]
    assert "whiteout marker" in reasons(result)["/a/gone"] and "opaque marker" in reasons(result)["/o"]


def test_size_and_entry_limits(tmp_path: Path) -> None:
    layer = tar_of(
        [("big", "file", b"B" * 1000), ("small", "file", b"s"), ("x", "file", b"x"), ("y", "file", b"y")]
    )
    result, out = run(tmp_path, [layer], limits=Limits(max_bytes=10, max_entries=3))
    why = reasons(result)
    assert "size limit" in why["/big"] and "entry limit" in why["/y"]
    assert sorted(os.listdir(out)) == ["small", "x"] and result.bytes_written == 2


def test_output_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "thing").write_text("x")
    archive = save_tar(tmp_path / "i.tar", [tar_of([("a", "file", b"a")])])
    assert main(["image", "extract", str(archive), "--output", str(tmp_path / "full"), "--no-engine",
                 "--root", str(tmp_path)]) == 2  # fmt: skip


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = save_tar(tmp_path / "i.tar", [tar_of([("a", "file", b"a"), ("s", "symlink", "/etc/passwd")])])
    out = tmp_path / "o"
    assert (
        main(
            [
                "image",
                "extract",
                str(archive),
                "-o",
                str(out),
                "--json",
                "--no-engine",
                "--root",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert [w["path"] for w in data["written"]] == ["/a"] and data["refused"][0]["path"] == "/s"
    assert main(["image", "extract", str(archive), "-o", str(tmp_path / "o2"), "--relative-links", "--no-engine",
                 "--root", str(tmp_path)]) == 0  # fmt: skip
    assert os.readlink(tmp_path / "o2" / "s") == "etc/passwd"
    assert "1 absolute links made relative" in capsys.readouterr().out


def test_safe_links_recheck_what_a_refusal_changes() -> None:
    kinds = {b"/a": "dir", b"/a/b": "dir"}
    links = {b"/up": b"..", b"/a/b/l": b"../../x", b"/a/ok": b"b/l"}
    assert set(safe_links(links, kinds)) == {b"/up"}
    assert set(safe_links({b"/a/z": b"../a/../..", b"/a/y": b"z/../.."}, kinds)) == {b"/a/z", b"/a/y"}


def test_a_hostile_mtime_does_not_stop_the_file(tmp_path: Path) -> None:
    odd = tarfile.TarInfo("odd")
    odd.size, odd.mtime = 0, 10**20
    result, out = run(tmp_path, [tar_of([odd, ("after", "file", b"a")])])
    assert sorted(os.listdir(out)) == ["after", "odd"] and result.refused == ()

"""image diff (container-diff's analyzers) and the package databases, on images built in code."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.images import diff, packages
from forensics.images.source import open_path
from tests.unit.test_image_source import layer_tar, save_tar, sha

DPKG_A = b"""Package: foo
Status: install ok installed
Installed-Size: 10
Architecture: amd64
Version: 1.0
Description: a thing
 with a long description
 .
 Package: not-a-package

Package: bar
Status: install ok installed
Version: 2.0

Package: removed-but-configured
Status: deinstall ok config-files
Version: 0.1
"""
DPKG_B = DPKG_A.replace(b"Version: 1.0", b"Version: 1.1").replace(b"Package: bar\n", b"Package: baz\n")
APK = b"P:musl\nV:1.2.4-r2\nA:x86_64\nI:622592\n\nP:busybox\nV:1.36.1-r5\nI:1\n"


def rpm_header(fields: list[tuple[int, int, bytes]]) -> bytes:
    """An rpm header blob: il, dl, index entries (tag, type, offset, count), then the data."""
    index, store = (
        [struct.pack(">iiii", 63, 7, 0, 16)],
        bytearray(b"\0" * 16),
    )  # a region tag first, as rpm writes
    for tag, kind, value in fields:
        if kind == 4:
            store.extend(b"\0" * (-len(store) % 4))
        index.append(struct.pack(">iiii", tag, kind, len(store), 1))
        store.extend(value)
    return struct.pack(">ii", len(index), len(store)) + b"".join(index) + bytes(store)


def rpmdb(tmp_path: Path, packages_: list[tuple[str, str, str, int | None]]) -> bytes:
    path = tmp_path / "rpmdb.sqlite"
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    for name, version, release, epoch in packages_:
        fields = [(1000, 6, name.encode() + b"\0"), (1001, 6, version.encode() + b"\0"),
                  (1002, 6, release.encode() + b"\0"), (1022, 6, b"x86_64\0"), (1009, 4, struct.pack(">i", 4096))]  # fmt: skip
        if epoch is not None:
            fields.append((1003, 4, struct.pack(">i", epoch)))
        db.execute("INSERT INTO Packages (blob) VALUES (?)", (rpm_header(fields),))
    db.execute("INSERT INTO Packages (blob) VALUES (?)", (b"\xff\xff\xff\xff garbage",))
    db.commit()
    db.close()
    return path.read_bytes()


def test_dpkg_status_only_installed_packages() -> None:
    found = packages.parse_dpkg(b"/var/lib/dpkg/status", DPKG_A)
    assert [(p.name, p.version, p.size, p.arch) for p in found] == [
        ("foo", "1.0", 10240, "amd64"),
        ("bar", "2.0", None, ""),
    ]


def test_apk_pip_npm_parsers() -> None:
    assert [(p.name, p.version, p.size) for p in packages.parse_apk(b"/lib/apk/db/installed", APK)] == [
        ("musl", "1.2.4-r2", 622592), ("busybox", "1.36.1-r5", 1)]  # fmt: skip
    meta = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\nName: not-this\n"
    assert [(p.name, p.version) for p in packages.parse_pip(b"/x/METADATA", meta)] == [("requests", "2.31.0")]
    assert packages.parse_npm(b"/p.json", b'{"name": "left-pad", "version": "1.3.0"}')[0].version == "1.3.0"
    assert packages.parse_npm(b"/p.json", b"not json") == [] and packages.parse_npm(b"/p.json", b"[1]") == []


@pytest.mark.parametrize(
    ("path", "manager"),
    [(b"/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "pip"),
     (b"/usr/local/lib/python3.11/site-packages/x.egg-info/PKG-INFO", "pip"),
     (b"/app/node_modules/express/package.json", "npm"), (b"/app/node_modules/@types/node/package.json", "npm"),
     (b"/app/node_modules/express/lib/package.json", None), (b"/app/package.json", None),
     (b"/var/lib/dpkg/status.d/base", "dpkg"), (b"/var/lib/rpm/rpmdb.sqlite", "rpm")],
)  # fmt: skip
def test_which_files_each_parser_wants(path: bytes, manager: str | None) -> None:
    wanting = [p.name.removeprefix("packages.") for p in packages.PARSERS if p.wants(path)]
    assert wanting == ([manager] if manager else [])


def test_rpm_sqlite_header_blobs(tmp_path: Path) -> None:
    data = rpmdb(tmp_path, [("bash", "5.1.8", "6.el9", None), ("openssl", "3.0.7", "24.el9", 1)])
    found = packages.parse_rpm_sqlite(b"/var/lib/rpm/rpmdb.sqlite", data)
    assert [(p.name, p.version, p.arch, p.size) for p in found] == [
        ("bash", "5.1.8-6.el9", "x86_64", 4096), ("openssl", "1:3.0.7-24.el9", "x86_64", 4096)]  # fmt: skip
    with pytest.raises(ValueError):
        packages.parse_rpm_header(struct.pack(">ii", 1 << 30, 0))


def _images(tmp_path: Path) -> tuple[Path, Path]:
    common = [("etc", None), ("etc/keep", b"same"), ("var", None), ("var/lib", None), ("var/lib/dpkg", None),
              ("lib", None), ("lib/apk", None), ("lib/apk/db", None), ("lib/apk/db/installed", APK)]  # fmt: skip
    py = "usr/lib/python3/site-packages/"
    a = layer_tar([*common, ("etc/gone", b"bye"), ("etc/mod", b"one"), ("var/lib/dpkg/status", DPKG_A),
                   ("var/lib/rpm", None), ("var/lib/rpm/rpmdb.sqlite", rpmdb(tmp_path, [("bash", "5.1", "1", None)])),
                   (py + "six-1.0.dist-info/METADATA", b"Name: six\nVersion: 1.0\n")])  # fmt: skip
    b = layer_tar([*common, ("etc/mod", b"two!"), ("etc/new", b"new"), ("var/lib/dpkg/status", DPKG_B),
                   ("var/lib/rpm", None), ("var/lib/rpm/Packages", b"\0" * 64),
                   (py + "six-1.1.dist-info/METADATA", b"Name: six\nVersion: 1.1\n"),
                   ("app", None), ("app/node_modules", None), ("app/node_modules/evil", None),
                   ("app/node_modules/evil/package.json", b'{"name": "evil", "version": "6.6.6"}')])  # fmt: skip

    def config(layer: bytes, env: str, hist: str) -> bytes:
        return json.dumps({"config": {"Env": ["PATH=/bin", env], "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}},
                           "rootfs": {"diff_ids": [sha(layer)]}, "history": [{"created_by": hist}]}).encode()  # fmt: skip

    return (save_tar(tmp_path / "a.tar", [a], config=config(a, "MODE=a", "RUN a")),
            save_tar(tmp_path / "b.tar", [b], config=config(b, "MODE=b", "RUN b")))  # fmt: skip


def test_diff_of_two_images(tmp_path: Path) -> None:
    path_a, path_b = _images(tmp_path)
    result = diff.diff(diff.scan_for_diff(open_path(path_a)), diff.scan_for_diff(open_path(path_b)))
    added = {e.path for e in result.added}
    assert {b"/etc/new", b"/app/node_modules/evil/package.json"} <= added
    assert b"/etc/gone" in {e.path for e in result.deleted}
    mods = {m.path: m for m in result.modified}
    assert mods[b"/etc/mod"].changed == ("content",) and (
        mods[b"/etc/mod"].size1,
        mods[b"/etc/mod"].size2,
    ) == (3, 4)
    assert b"/etc/keep" not in mods
    env = next(f for f in result.metadata if f.field == "Env")
    assert (env.added, env.removed) == (("MODE=b",), ("MODE=a",))
    assert [f.field for f in result.metadata] == ["Env"]
    assert (result.history.adds, result.history.dels) == (("RUN b",), ("RUN a",))
    by_manager = {p.manager: p for p in result.packages}
    dpkg = by_manager["dpkg"]
    assert [p.name for p in dpkg.added] == ["baz"] and [p.name for p in dpkg.removed] == ["bar"]
    assert [(c.name, c.version1, c.version2) for c in dpkg.changed] == [("foo", "1.0", "1.1")]
    assert [(c.name, c.version1, c.version2) for c in by_manager["pip"].changed] == [("six", "1.0", "1.1")]
    assert [p.name for p in by_manager["npm"].added] == ["evil"]
    assert not by_manager["apk"].added and not by_manager["apk"].changed and by_manager["apk"].count1 == 2
    assert [p.name for p in by_manager["rpm"].removed] == ["bash"]
    assert result.skipped == ("B: rpm: not supported (Berkeley DB): /var/lib/rpm/Packages",)
    assert result.size2 - result.size1 == sum(s.size2 or 0 for s in result.layers) - sum(
        s.size1 or 0 for s in result.layers
    )


def test_diff_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path_a, path_b = _images(tmp_path)
    assert (
        main(["image", "diff", str(path_a), str(path_b), "--json", "--root", str(tmp_path), "--no-engine"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["image1"]["source"] == "docker-archive"
    assert [m["path"] for m in data["modified"]] == ["/etc/mod", "/var/lib/dpkg/status"]
    assert main(["image", "diff", str(path_a), str(path_b), "--root", str(tmp_path), "--no-engine"]) == 0
    text = capsys.readouterr().out
    assert "  ~ foo 1.0 -> 1.1" in text and "skipped: B: rpm: not supported (Berkeley DB)" in text


SPEC = """Name: forensics-probe
Version: 1.2.3
Release: 4
Epoch: 2
Summary: probe
License: MIT
BuildArch: noarch
%description
probe
%install
mkdir -p %{buildroot}/opt/probe && echo hi > %{buildroot}/opt/probe/f
%files
/opt/probe/f
"""


@pytest.mark.skipif(
    shutil.which("rpmbuild") is None or shutil.which("rpm") is None, reason="no rpm/rpmbuild here"
)
def test_a_real_rpm_sqlite_database_agrees_with_rpm_qa(tmp_path: Path) -> None:
    """rpm's own sqlite rpmdb (rpm >= 4.16), read by us and by ``rpm -qa``."""
    (tmp_path / "t.spec").write_text(SPEC)
    define = ["--define", f"_topdir {tmp_path / 'top'}", "--define", "_db_backend sqlite"]
    subprocess.run(["rpmbuild", *define, "-bb", str(tmp_path / "t.spec")], check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    db = tmp_path / "db"
    db.mkdir()
    rpm = ["rpm", *define, "--dbpath", str(db)]
    subprocess.run([*rpm, "--initdb"], check=True, capture_output=True, timeout=60)
    built = next((tmp_path / "top/RPMS/noarch").glob("*.rpm"))
    subprocess.run([*rpm, "-i", "--justdb", "--nodeps", "--noscripts", str(built)], check=True, capture_output=True,
                   timeout=60)  # fmt: skip
    qa = subprocess.run([*rpm, "-qa", "--qf", "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH} %{SIZE}\\n"],
                        check=True, capture_output=True, text=True, timeout=60).stdout.split()  # fmt: skip
    ours = packages.parse_rpm_sqlite(b"/var/lib/rpm/rpmdb.sqlite", (db / "rpmdb.sqlite").read_bytes())
    assert [[p.name, p.version, p.arch, str(p.size)] for p in ours] == [qa]

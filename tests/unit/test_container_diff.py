"""container diff on a fake overlay2 host: layers found, entries described, CLI answers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.containers.diff import DiffOptions, analyse, diff_record
from forensics.containers.layers import container_layers, resolve_container
from forensics.errors import NotFound
from forensics.host.disk import DockerDisk
from forensics.records import NotAvailable
from tests.unit.fakehost import add_container, fake_host, hexid

pytestmark = pytest.mark.root

DOCKER = "var/lib/docker"


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: whiteouts are 0/0 character devices")


@dataclass
class Overlay:
    root: Path
    cid: str
    upper: Path
    init: Path
    image_layer: Path
    diff_id: str


def build(tmp_path: Path, seed: str = "victim", name: str = "web", lower_file: bool = True) -> Overlay:
    """A fake host whose container has an image layer, an init layer and a writable layer."""
    root = tmp_path / "host" if (tmp_path / "host").exists() else fake_host(tmp_path)
    cid = add_container(root, seed, name)
    mount = hexid("mount" + seed)
    diff_id = "sha256:" + hexid("layerimage")
    cache = hexid("cache-image")
    layerdb = root / DOCKER / "image/overlay2/layerdb/sha256" / diff_id[7:]
    layerdb.mkdir(parents=True, exist_ok=True)
    (layerdb / "cache-id").write_text(cache)
    overlay2 = root / DOCKER / "overlay2"
    image_layer = overlay2 / cache / "diff"
    if not image_layer.exists():
        for rel, data in {"etc/passwd": b"root:x:0:0::/root:/bin/sh\n", "etc/group": b"root:x:0:\n",
                          "bin/busybox": b"\x7fELF" + b"\0" * 60}.items():  # fmt: skip
            (image_layer / rel).parent.mkdir(parents=True, exist_ok=True)
            (image_layer / rel).write_bytes(data)
        (image_layer / "tmp").mkdir()
    init = overlay2 / f"{mount}-init" / "diff"
    (init / "etc").mkdir(parents=True)
    (init / "etc/hosts").write_bytes(b"")
    (init / ".dockerenv").write_bytes(b"")
    upper = overlay2 / mount / "diff"
    upper.mkdir(parents=True)
    mounts = root / DOCKER / "image/overlay2/layerdb/mounts" / cid
    (mounts / "init-id").write_text(f"{mount}-init")
    links = overlay2 / "l"
    links.mkdir(exist_ok=True)
    short_init, short_image = f"I{seed.upper()}", "IMAGELAYER"
    os.symlink(f"../{mount}-init/diff", links / short_init)
    if not (links / short_image).is_symlink():
        os.symlink(f"../{cache}/diff", links / short_image)
    if lower_file:
        (overlay2 / mount / "lower").write_text(f"l/{short_init}:l/{short_image}")
    return Overlay(root, cid, upper, init, image_layer, diff_id)


def same_meta(src: Path, dst: Path) -> None:
    st = src.lstat()
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def whiteout(path: Path) -> None:
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(0, 0))


def run_diff(o: Overlay, **kw: object) -> dict:
    disk = DockerDisk(str(o.root))
    inventory = disk.inventory()
    container = resolve_container(inventory, o.cid)
    layers = container_layers(disk, inventory, container)
    result = analyse(container, layers, str(o.root), DiffOptions(yara=False, **kw))  # type: ignore[arg-type]
    return diff_record(result)


def test_layers_come_from_the_lower_file(tmp_path: Path) -> None:
    o = build(tmp_path)
    disk = DockerDisk(str(o.root))
    inventory = disk.inventory()
    layers = container_layers(disk, inventory, resolve_container(inventory, "web"))
    assert layers.source == "lower-file"
    assert [layer.role for layer in layers.lowers] == ["init", "image"]
    assert layers.lowers[1].diff_id == o.diff_id and layers.lowers[1].image_index == 0
    assert isinstance(layers.lowers[0].diff_id, NotAvailable)
    assert layers.upper.endswith("/diff") and layers.problems == []


def test_without_a_lower_file_the_image_config_is_used(tmp_path: Path) -> None:
    o = build(tmp_path, lower_file=False)
    disk = DockerDisk(str(o.root))
    inventory = disk.inventory()
    layers = container_layers(disk, inventory, resolve_container(inventory, o.cid))
    assert layers.source == "image-config"
    assert [layer.role for layer in layers.lowers] == ["init", "image"]
    assert any("lower file is unreadable" in p for p in layers.problems)


def test_a_lower_entry_leading_out_of_the_layers_is_refused(tmp_path: Path) -> None:
    o = build(tmp_path)
    overlay2 = o.root / DOCKER / "overlay2"
    os.symlink("/etc", overlay2 / "l/EVIL")
    (overlay2 / hexid("mountvictim") / "lower").write_text("l/EVIL:l/IMAGELAYER")
    disk = DockerDisk(str(o.root))
    inventory = disk.inventory()
    layers = container_layers(disk, inventory, resolve_container(inventory, o.cid))
    assert layers.source == "image-config"
    assert any("not a layer directory" in p for p in layers.problems)


def test_a_writable_layer_that_is_a_link_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    o = build(tmp_path)
    o.upper.rmdir()
    os.symlink("/", o.upper)  # would make the whole host root the "writable layer"
    assert main(["container", "diff", "web", "--root", str(o.root), "--no-engine"]) == 3
    assert "not to a layer directory" in capsys.readouterr().err


def test_a_linked_docker_root_is_followed_inside_the_host_root(tmp_path: Path) -> None:
    o = build(tmp_path)
    moved = o.root / "data/docker"
    moved.parent.mkdir()
    (o.root / DOCKER).rename(moved)
    os.symlink("/data/docker", o.root / DOCKER)
    (moved / "overlay2" / hexid("mountvictim") / "diff/added").write_bytes(b"x")
    data = run_diff(o)
    assert [(c["kind"], c["path"]) for c in data["changes"]] == [("A", "/added")]
    assert data["layers"]["upper"] == "/data/docker/overlay2/" + hexid("mountvictim") + "/diff"


def test_container_names_and_prefixes(tmp_path: Path) -> None:
    a = build(tmp_path, "one", "alpha")
    b = build(tmp_path, "two", "beta")
    inventory = DockerDisk(str(a.root)).inventory()
    assert resolve_container(inventory, "alpha").id == a.cid
    assert resolve_container(inventory, "/beta").id == b.cid
    assert resolve_container(inventory, b.cid[:10]).id == b.cid
    with pytest.raises(NotFound, match="no container"):
        resolve_container(inventory, "gamma")
    twin = dataclasses.replace(inventory.containers[0], id=a.cid[:20] + "0" * 44, name="twin")
    crowded = dataclasses.replace(inventory, containers=[*inventory.containers, twin])
    with pytest.raises(NotFound, match="ambiguous"):
        resolve_container(crowded, a.cid[:20])
    assert resolve_container(crowded, "twin").id == twin.id


def test_entries_carry_metadata_hashes_layers_and_flags(tmp_path: Path) -> None:
    o = build(tmp_path)
    (o.upper / "etc").mkdir()
    same_meta(o.init / "etc", o.upper / "etc")
    (o.upper / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    whiteout(o.upper / "etc/hosts")  # the original is in the init layer
    whiteout(o.upper / "etc/group")
    (o.upper / "tmp").mkdir()
    same_meta(o.image_layer / "tmp", o.upper / "tmp")
    (o.upper / "tmp/payload").write_bytes(b"\x7fELF" + b"\1" * 100)
    os.symlink(b"/\xff/target", os.fsencode(o.upper / "tmp") + b"/link")
    (o.upper / "big").write_bytes(b"z" * 5000)
    data = run_diff(o, hash_limit=4096)
    by_path = {c["path"]: c for c in data["changes"]}
    assert [c["path"] for c in data["changes"]] == sorted(by_path)
    assert set(by_path) == {"/etc", "/etc/passwd", "/etc/hosts", "/etc/group", "/tmp", "/tmp/payload",
                            "/tmp/link", "/big"}  # fmt: skip
    assert by_path["/etc"]["cause"] == "parent" and by_path["/etc"]["layer"]["role"] == "init"
    assert by_path["/etc/hosts"]["layer"]["role"] == "init"
    assert by_path["/etc/group"]["layer"]["role"] == "image"
    assert by_path["/etc/group"]["original"]["size"] == len(b"root:x:0:\n")
    assert by_path["/etc/passwd"]["layer"]["diff_id"] == o.diff_id
    assert "accounts.files" in by_path["/etc/passwd"]["flags"]
    payload = by_path["/tmp/payload"]
    assert payload["kind"] == "A" and payload["flags"] == ["exec.elf-in-tmp"]
    assert len(payload["sha256"]) == 64
    assert "hash limit" in by_path["/big"]["sha256"]["not_available"]
    link = by_path["/tmp/link"]
    assert link["link_target"] == "/\\xff/target" and link["link_target_b64"] == "L/8vdGFyZ2V0"
    assert data["counts"] == {"C": 3, "D": 2, "A": 3}
    rules = {f["rule"] for f in data["findings"]}
    assert rules == {"container.accounts.files", "container.exec.elf-in-tmp"}
    assert all(f["subject"] == f"container:{o.cid}" for f in data["findings"])


def test_cli_diff_on_a_fake_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = build(tmp_path)
    (o.upper / "added").write_bytes(b"hello")
    argv = ["container", "diff", "web", "--root", str(o.root), "--no-engine", "--no-yara"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["kind"], c["path"]) for c in data["changes"]] == [("A", "/added")]
    assert data["engine"] == {"not_available": "--no-engine: working from disk alone"}
    assert main(argv) == 0
    shown = capsys.readouterr()
    assert "A /added" in shown.out
    assert main(["container", "diff", "nope", "--root", str(o.root), "--no-engine"]) == 2


def test_a_container_without_a_writable_layer_is_an_environment_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    o = build(tmp_path)
    (o.root / DOCKER / "image/overlay2/layerdb/mounts" / o.cid / "mount-id").unlink()
    assert main(["container", "diff", o.cid[:8], "--root", str(o.root), "--no-engine"]) == 3
    assert "no writable layer" in capsys.readouterr().err


def test_hashes_are_of_the_bytes_read_whatever_lstat_said(tmp_path: Path) -> None:
    """A file is read in one short read when it is as big as fstat says, in CHUNKs when it
    is bigger, and to its real end when it grew after it was looked at."""
    from forensics.containers.diff import CHUNK, _read

    folder = tmp_path / "d"
    folder.mkdir()
    big = os.urandom(2 * CHUNK + 17)
    (folder / "big").write_bytes(big)
    (folder / "empty").write_bytes(b"")
    (folder / "grows").write_bytes(b"before")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        st = {n: os.stat(n, dir_fd=fd, follow_symlinks=False) for n in (b"big", b"empty", b"grows")}
        with open(folder / "grows", "ab") as f:
            f.write(b" and after" * 1000)
        sha, head = _read(fd, b"big", st[b"big"], 1 << 30, 4)
        assert (sha, head) == (hashlib.sha256(big).hexdigest(), big[:4])
        assert _read(fd, b"empty", st[b"empty"], 1 << 30, 4) == (hashlib.sha256(b"").hexdigest(), b"")
        grown = (folder / "grows").read_bytes()
        assert _read(fd, b"grows", st[b"grows"], 1 << 30, 0)[0] == hashlib.sha256(grown).hexdigest()
        over, head = _read(fd, b"big", st[b"big"], CHUNK, 2)
        assert isinstance(over, NotAvailable) and "hash limit" in over.reason and head == big[:2]
    finally:
        os.close(fd)


def test_a_file_with_more_bytes_than_fstat_says_is_read_to_its_end() -> None:
    """The one read of a small file asks for one byte more than fstat's size: when it gets
    it, the file is read again from the start. /proc's files say 0 bytes and hold more: a
    real file with the shape of one that grew between the fstat and the read."""
    from forensics.containers.diff import _read

    with open("/proc/self/cmdline", "rb") as f:
        want = f.read()
    assert len(want) > 1
    fd = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        st = os.stat(b"cmdline", dir_fd=fd, follow_symlinks=False)
        assert st.st_size == 0
        assert _read(fd, b"cmdline", st, 1 << 30, 4) == (hashlib.sha256(want).hexdigest(), want[:4])
        over, _ = _read(fd, b"cmdline", st, 1, 4)
        assert isinstance(over, NotAvailable) and "grew past" in over.reason
    finally:
        os.close(fd)


class StandInEngine:
    """Stands in for the Engine API: the real daemon cannot be made to disagree with its own
    disk, and these tests need it to. Answers ``container_changes`` from a list."""

    def __init__(self, answer: list[dict[str, object]] | Exception) -> None:
        self.answer = answer
        self.threads: list[str] = []

    def container_changes(self, cid: str) -> list[dict[str, object]]:
        self.threads.append(threading.current_thread().name)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_engine_is_asked_while_the_disk_is_walked_and_disagreements_are_kept(tmp_path: Path) -> None:
    o = build(tmp_path)
    (o.upper / "tmp").mkdir()
    same_meta(o.image_layer / "tmp", o.upper / "tmp")
    (o.upper / "tmp/dropped").write_bytes(b"x")
    same = [{"Kind": 0, "Path": "/tmp"}, {"Kind": 1, "Path": "/tmp/dropped"}]
    agrees = StandInEngine(same)
    assert run_diff(o, engine=agrees)["engine"] == {"engine_count": 2, "only_engine": [], "only_disk": []}
    assert agrees.threads[0].startswith("engine-changes"), "the first answer is had beside the walk"
    ghost = StandInEngine([*same, {"Kind": 1, "Path": "/tmp/ghost"}])
    engine = run_diff(o, engine=ghost)["engine"]
    assert engine["only_engine"] == ["A /tmp/ghost"] and engine["only_disk"] == []
    assert len(ghost.threads) == 2, "a disagreement is asked a second time"
    broken = run_diff(o, engine=StandInEngine(ConnectionError("daemon went away")))["engine"]
    assert "daemon went away" in broken["not_available"]

"""``forensics memory analyze`` over the memory of a real VM: Debian's kernel from its .deb
under qemu-system-x86_64 (TCG) with a busybox initramfs, dumped through QMP's
``dump-guest-memory`` (scripts/testvm builds and caches the pieces).

The analysis runs under ``unshare -n`` where the kernel permits it, so volatility3 could
not reach the network even if it tried.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import os
import queue
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.memory.volatility import PluginStatus, analyze, matching_isf
from forensics.records import NotAvailable

REPO = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 180.0
EX_TEMPFAIL = 75


def _build() -> dict[str, str]:
    proc = subprocess.run(
        [str(REPO / "scripts" / "testvm"), "build"], capture_output=True, text=True, timeout=900
    )
    if proc.returncode == EX_TEMPFAIL:
        pytest.skip(f"test VM pieces not available: {proc.stderr.strip().splitlines()[-1:]}")
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


class Qmp:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(120)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        greeting = json.loads(self.file.readline())
        assert "QMP" in greeting
        self.call("qmp_capabilities")

    def call(self, command: str, **arguments: object) -> object:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        self.file.flush()
        while True:  # events may come before the answer
            reply = json.loads(self.file.readline())
            if "error" in reply:
                raise AssertionError(f"QMP {command}: {reply['error']}")
            if "return" in reply:
                return reply["return"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _wait_ready(vm: subprocess.Popen[bytes], ready: str, timeout: float) -> list[str]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert vm.stdout is not None
        for raw in vm.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError(f"qemu exited before the guest was up: {''.join(seen[-20:])}")
        seen.append(line)
        if ready in line:
            return seen
    raise AssertionError(f"guest not up after {timeout:.0f}s: {''.join(seen[-20:])}")


@pytest.fixture(scope="module")
def vm_dump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """An ELF memory dump of a freshly booted guest; the VM and the dump are gone afterwards."""
    pieces = _build()
    work = tmp_path_factory.mktemp("testvm")
    qmp_path = str(work / "qmp.sock")
    dump = work / "guest-memory.elf"
    argv = [pieces["QEMU"], "-nographic", "-m", "256", "-accel", "tcg", "-no-reboot",
            "-kernel", pieces["KERNEL"], "-initrd", pieces["INITRD"],
            "-append", "console=ttyS0 panic=-1 quiet", "-qmp", f"unix:{qmp_path},server=on,wait=off"]  # fmt: skip
    started = time.monotonic()
    vm = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_ready(vm, pieces["READY"], BOOT_TIMEOUT)
        booted = time.monotonic()
        qmp = Qmp(qmp_path)
        qmp.call("dump-guest-memory", paging=False, protocol=f"file:{dump}")
        dumped = time.monotonic()
        qmp.call("quit")
        qmp.close()
        vm.wait(timeout=60)
        print(f"\ntest VM: boot {booted - started:.1f}s, dump {dumped - booted:.1f}s, "
              f"{dump.stat().st_size >> 20} MiB")  # fmt: skip
        yield dump, pieces
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
        shutil.rmtree(work, ignore_errors=True)


def _unshare_net() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


@pytest.mark.vm
def test_banners_find_the_debian_kernel_and_pslist_says_it_lacks_symbols(
    vm_dump: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    dump, pieces = vm_dump
    prefix = _unshare_net()
    if not prefix:
        print("unshare -n not permitted here: the analysis ran with volatility's offline settings only")
    cli = Path(sys.executable).with_name("forensics")
    started = time.monotonic()
    proc = subprocess.run([*prefix, str(cli), "memory", "analyze", str(dump), "--json", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=1800, env={**os.environ, "FORENSICS_VOL_SYMBOLS": ""})  # fmt: skip
    print(f"analysis {time.monotonic() - started:.1f}s")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    analysis = out["analysis"]
    release, version = pieces["RELEASE"], pieces["VERSION"]
    ours = [
        b
        for b in analysis["banners"]
        if b.startswith(f"Linux version {release} ") and f"Debian {version}" in b
    ]
    assert ours, analysis["banners"]
    by_plugin = {r["plugin"]: r for r in analysis["results"]}
    assert by_plugin["banners.Banners"]["status"] == "ok"
    assert any("Linux version" in row["Banner"] for row in by_plugin["banners.Banners"]["rows"])
    for name in ("linux.pslist.PsList", "linux.bash.Bash", "linux.lsmod.Lsmod"):
        skipped = by_plugin[name]
        assert skipped["status"] == "skipped"
        assert "no symbols" in skipped["reason"] and "dwarf2json" in skipped["reason"]
        assert f"Linux version {release}" in skipped["reason"]
    assert analysis["kernel_symbols"] == {"not_available": analysis["kernel_symbols"]["not_available"]}
    assert analysis["image"]["format"] == "elf" and analysis["image"]["size"] == dump.stat().st_size
    if prefix:
        assert "unshare -n" in analysis["isolation"]
    archive = Path(out["archive"]["path"])
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        stored = next(n for n in names if n.endswith("memory/volatility/analysis.json"))
        member = tar.extractfile(stored)
        assert member is not None
        assert json.load(member)["banners"] == analysis["banners"]
    assert any(n.endswith("MANIFEST.sha256") for n in names)


@pytest.mark.vm
def test_a_matching_isf_runs_the_plugin_and_its_failure_and_timeouts_are_records(
    vm_dump: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    dump, pieces = vm_dump
    first = analyze(str(dump), plugins=["no.such.Plugin"], timeout=600)
    assert first.banners
    unknown = first.results[-1]
    assert unknown.status is PluginStatus.ERROR and "unknown plugin" in unknown.reason
    # An ISF that carries the kernel's banner but no types: the plugin is attempted (not
    # skipped) and fails as a record, with volatility's reason, rather than ending the run.
    banner = next(b for b in first.banners if "#1 " in b)
    isf = tmp_path / "symbols" / f"{pieces['RELEASE']}.json.xz"
    isf.parent.mkdir()
    doc = {
        "symbols": {"linux_banner": {"constant_data": base64.b64encode(banner.encode() + b"\n\0").decode()}}
    }
    isf.write_bytes(lzma.compress(json.dumps(doc).encode()))
    second = analyze(str(dump), plugins=["linux.pslist.PsList"], symbols=[str(isf.parent)], timeout=600)
    assert second.kernel_symbols == str(isf)
    pslist = second.results[-1]
    assert pslist.plugin == "linux.pslist.PsList"
    assert pslist.status is PluginStatus.ERROR, pslist
    assert pslist.reason
    # One second is too little to even import volatility3 and stack a 256 MiB image.
    hurried = analyze(str(dump), plugins=["banners.Banners"], timeout=1)
    assert [r.status for r in hurried.results] == [PluginStatus.TIMEOUT]
    assert hurried.banners == []


def test_isf_matching_reads_each_compression_and_wants_the_exact_banner(tmp_path: Path) -> None:
    banner = "Linux version 6.1.0-99-amd64 (x@y) #1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2030-01-01)"

    def isf(text: str) -> bytes:
        data = base64.b64encode(text.encode() + b"\n\0").decode()
        return json.dumps({"symbols": {"linux_banner": {"constant_data": data}}}).encode()

    (tmp_path / "other.json").write_bytes(isf(banner.replace("99", "98")))
    (tmp_path / "broken.json.xz").write_bytes(b"not xz")
    (tmp_path / "nobanner.json.bz2").write_bytes(bz2.compress(b'{"symbols": {}}'))
    assert isinstance(matching_isf([str(tmp_path)], [banner]), NotAvailable)
    assert isinstance(matching_isf([], [banner]), NotAvailable)
    assert isinstance(matching_isf([str(tmp_path)], []), NotAvailable)
    for name, pack in (("a.json", bytes), ("b.json.gz", gzip.compress), ("c.json.xz", lzma.compress)):
        target = tmp_path / "sub" / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(pack(isf(banner)))
        assert matching_isf([str(tmp_path)], [banner]) == str(target)
        target.unlink()

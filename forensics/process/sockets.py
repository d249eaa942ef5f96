"""Sockets of a process: /proc/<pid>/net/* of its network namespace, joined by inode to its fds.

Tables are read once per network namespace (keyed by the ``net:[inode]`` link), so a host
with hundreds of processes reads each table once, not once per process.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import struct

MAX_TABLE = 8 * 1024 * 1024
"""Bytes read of one /proc/<pid>/net/* table."""
MAX_FDS = 65536
"""File descriptors looked at per process."""

_TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
    "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}  # fmt: skip
_SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")


@dataclasses.dataclass(frozen=True)
class Socket:
    """One socket a process holds open."""

    proto: str
    """tcp, tcp6, udp, udp6 or unix."""
    local: str
    """``addr:port`` (inet) or the socket path (unix; empty when unnamed, ``@name`` when abstract)."""
    remote: str
    """``addr:port`` of the peer (inet); empty for unix."""
    state: str
    """TCP state name; ``UNCONN``/``ESTABLISHED`` style for udp; the unix state number."""
    inode: int
    """Socket inode, as in ``/proc/<pid>/fd`` links (``socket:[inode]``)."""


def _read(path: str, limit: int = MAX_TABLE) -> str:
    try:
        with open(path, "rb") as src:
            return src.read(limit).decode("ascii", "replace")
    except OSError:
        return ""


def _addr(hexaddr: str, v6: bool) -> str:
    host, _, port = hexaddr.partition(":")
    try:
        raw = bytes.fromhex(host)
        if v6:
            # four 32-bit words, each in host (little-endian) order
            words = struct.unpack("<4I", raw)
            ip = ipaddress.IPv6Address(struct.pack(">4I", *words))
            text = f"[{ip}]"
        else:
            text = socket.inet_ntoa(struct.pack("<I", int(host, 16)))
        return f"{text}:{int(port, 16)}"
    except (ValueError, struct.error, OSError):
        return hexaddr


def parse_inet(text: str, proto: str) -> dict[int, Socket]:
    """Parse one /proc/net/{tcp,tcp6,udp,udp6} table into sockets by inode."""
    v6 = proto.endswith("6")
    out: dict[int, Socket] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            inode = int(fields[9])
        except ValueError:
            continue
        state = _TCP_STATES.get(fields[3].upper(), fields[3]) if proto.startswith("tcp") else (
            "ESTABLISHED" if fields[3] == "01" else "UNCONN"
        )  # fmt: skip
        out[inode] = Socket(proto, _addr(fields[1], v6), _addr(fields[2], v6), state, inode)
    return out


def parse_unix(text: str) -> dict[int, Socket]:
    out: dict[int, Socket] = {}
    for line in text.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) < 7:
            continue
        try:
            inode = int(fields[6])
        except ValueError:
            continue
        out[inode] = Socket("unix", fields[7] if len(fields) > 7 else "", "", fields[5], inode)
    return out


class SocketTables:
    """Socket tables per network namespace, read lazily through a member process."""

    def __init__(self, proc: str) -> None:
        self.proc = proc
        self._by_netns: dict[str, dict[int, Socket]] = {}

    def table(self, pid: int) -> dict[int, Socket]:
        try:
            netns = os.readlink(f"{self.proc}/{pid}/ns/net")
        except OSError:
            netns = f"pid:{pid}"
        cached = self._by_netns.get(netns)
        if cached is None:
            cached = {}
            for proto in ("tcp", "tcp6", "udp", "udp6"):
                cached.update(parse_inet(_read(f"{self.proc}/{pid}/net/{proto}"), proto))
            cached.update(parse_unix(_read(f"{self.proc}/{pid}/net/unix")))
            self._by_netns[netns] = cached
        return cached

    def of(self, pid: int) -> list[Socket]:
        """The sockets ``pid`` holds open, in fd order (unknown inodes left out)."""
        inodes = socket_inodes(self.proc, pid)
        if not inodes:
            return []
        table = self.table(pid)
        seen: dict[int, Socket] = {}
        for inode in inodes:
            found = table.get(inode)
            if found is not None and inode not in seen:
                seen[inode] = found
        return list(seen.values())


def socket_inodes(proc: str, pid: int) -> list[int]:
    try:
        names = os.listdir(f"{proc}/{pid}/fd")
    except OSError:
        return []
    out = []
    for name in sorted(names, key=lambda n: int(n) if n.isdigit() else 0)[:MAX_FDS]:
        try:
            link = os.readlink(f"{proc}/{pid}/fd/{name}")
        except OSError:
            continue
        match = _SOCKET_LINK.fullmatch(link)
        if match:
            out.append(int(match.group(1)))
    return out

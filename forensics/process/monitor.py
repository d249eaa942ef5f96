"""Watch new processes: the kernel's netlink process connector when it answers, else pspy's way.

The process connector (``NETLINK_CONNECTOR``, group ``CN_IDX_PROC``) reports every
``exec`` as it happens; it needs root (CAP_NET_ADMIN). Without it, pspy's method runs:
inotify watches on /usr /tmp /etc /home /var /opt and their subdirectories two levels
down (an exec opens its binary and libraries there) trigger a /proc scan, and a scan runs
every 100 ms besides. When the kernel refuses more inotify watches (``ENOSPC``, the
``max_user_watches`` limit) the monitor keeps the watches it has, says so in its notes,
and the periodic scan covers the rest; without inotify at all it polls.

A process that exits before its /proc entry is read is still reported by the connector
(pid and time), with its argv marked not available.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as dt
import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from forensics.process.attribution import ContainerIndex, ContainerRef
from forensics.process.inventory import parse_ids, parse_stat
from forensics.records import NotAvailable, iso_utc

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_EXEC = 0x00000002
NLMSG_DONE = 3
_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EVENT_HEAD = struct.Struct("=IIQ")

WATCH_ROOTS = ("usr", "tmp", "etc", "home", "var", "opt")
WATCH_DEPTH = 2
MAX_WATCHES = 4096
SCAN_INTERVAL = 0.1
IN_OPEN = 0x20
IN_ACCESS = 0x01
IN_CREATE = 0x100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


@dataclasses.dataclass(frozen=True)
class ProcessEvent:
    """A process seen starting (or exec'ing) during the watch."""

    time: str
    """UTC ISO time it was seen."""
    pid: int
    ppid: int | NotAvailable
    uid: int | NotAvailable
    """Real uid."""
    cmdline: list[str] | NotAvailable
    comm: str | NotAvailable
    container: ContainerRef | None
    """Its container, or None for a host process (also when it exited before it was read)."""
    source: str
    """``netlink`` (an exec event), ``inotify`` (a scan a file event triggered) or ``poll``."""


@dataclasses.dataclass(frozen=True)
class MonitorResult:
    method: str
    """``netlink``, ``inotify+poll`` or ``poll``: what watched."""
    started: str
    ended: str
    events: list[ProcessEvent]
    notes: list[str]
    """Why a method was not used, watch exhaustion, lost events."""
    watches: int
    """inotify watches placed (0 for netlink or poll)."""


def _read(path: str, limit: int = 1 << 20) -> bytes | None:
    try:
        with open(path, "rb") as src:
            return src.read(limit)
    except OSError:
        return None


def _now() -> str:
    return iso_utc(dt.datetime.now(dt.UTC))


def read_event(proc: str, pid: int, index: ContainerIndex, source: str) -> ProcessEvent:
    """What /proc says of ``pid`` now; fields it no longer holds are NotAvailable."""
    gone = NotAvailable("the process exited before it could be read")
    base = f"{proc}/{pid}"
    raw_cmd = _read(f"{base}/cmdline")
    stat_raw = _read(f"{base}/stat")
    status = _read(f"{base}/status")
    parsed = parse_stat(stat_raw) if stat_raw else None
    uid = parse_ids(status, b"Uid")[0] if status else -1
    cmdline: list[str] | NotAvailable = gone
    if raw_cmd is not None:
        cmdline = (
            [a.decode("utf-8", "backslashreplace") for a in raw_cmd.rstrip(b"\0").split(b"\0")]
            if raw_cmd
            else []
        )
    cgroup = (_read(f"{base}/cgroup") or b"").decode("utf-8", "replace")
    return ProcessEvent(
        time=_now(), pid=pid, ppid=parsed[1] if parsed else gone, uid=uid if uid >= 0 else gone,
        cmdline=cmdline, comm=parsed[0] if parsed else gone,
        container=index.attribute(pid, cgroup) if cgroup else None, source=source,
    )  # fmt: skip


def open_connector() -> socket.socket | str:
    """A socket subscribed to the process connector, or why there is none."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    except OSError as exc:
        return f"no netlink process connector socket: {exc.strerror or exc}"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((0, CN_IDX_PROC))
        sock.send(_subscribe(PROC_CN_MCAST_LISTEN))
    except OSError as exc:
        sock.close()
        return f"process connector refused ({exc.strerror or exc}; it needs root/CAP_NET_ADMIN)"
    return sock


def _subscribe(op: int) -> bytes:
    body = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack("=I", op)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), NLMSG_DONE, 0, 0, os.getpid()) + body


def exec_pids(datagram: bytes) -> list[int]:
    """The tgids of exec events in one netlink datagram."""
    out = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(datagram):
        length = _NLMSGHDR.unpack_from(datagram, offset)[0]
        if length < _NLMSGHDR.size:
            break
        body = offset + _NLMSGHDR.size + _CN_MSG.size
        if body + _EVENT_HEAD.size + 8 <= len(datagram):
            what = _EVENT_HEAD.unpack_from(datagram, body)[0]
            if what == PROC_EVENT_EXEC:
                _pid, tgid = struct.unpack_from("=II", datagram, body + _EVENT_HEAD.size)
                out.append(tgid)
        offset += (length + 3) & ~3
    return out


class _Inotify:
    """inotify through libc (the stdlib has no binding)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def add_watch(self, path: bytes, mask: int) -> int:
        wd = self.libc.inotify_add_watch(self.fd, path, mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(wd)

    def drain(self, most: int = 8) -> None:
        """Read away what is queued, at most ``most`` reads: on a busy host the watched
        directories are opened and read without pause, and draining until empty never ended
        (the /proc scans the events are there for stopped)."""
        try:
            for _ in range(most):
                if not os.read(self.fd, 65536):
                    return
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


def watch_dirs(root: str, depth: int = WATCH_DEPTH, limit: int = MAX_WATCHES * 4) -> list[bytes]:
    """pspy's directories under the host root, and their subdirectories ``depth`` levels down."""
    out: list[bytes] = []
    level = [os.fsencode(os.path.join(root, name)) for name in WATCH_ROOTS]
    for _ in range(depth + 1):
        nxt: list[bytes] = []
        for d in level:
            if not os.path.isdir(d) or os.path.islink(d) or len(out) >= limit:
                continue
            out.append(d)
            try:
                with os.scandir(d) as it:
                    nxt.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
            except OSError:
                continue
        level = nxt
    return out[:limit]


class Monitor:
    """One watch of new processes. ``on_event`` sees each event as it comes (for streaming)."""

    def __init__(self, proc: str, root: str, index: ContainerIndex,
                 on_event: Callable[[ProcessEvent], None] | None = None,
                 use_netlink: bool = True, max_watches: int = MAX_WATCHES,
                 exclude_tree: int | None = None) -> None:  # fmt: skip
        self.proc = proc
        self.root = root
        self.index = index
        self.on_event = on_event
        self.use_netlink = use_netlink
        self.max_watches = max_watches
        self.events: list[ProcessEvent] = []
        self.notes: list[str] = []
        self._seen: set[tuple[int, int, str]] = set()
        self.inotify_factory: Callable[[], _Inotify] = _Inotify
        self.exclude_tree = exclude_tree
        self.excluded = 0

    def _ours(self, event: ProcessEvent) -> bool:
        """Whether the process descends from ``exclude_tree`` (our own tool runs)."""
        if self.exclude_tree is None:
            return False
        pid = event.pid
        parent: int | NotAvailable = event.ppid
        for _ in range(64):
            if pid == self.exclude_tree or parent == self.exclude_tree:
                return True
            if not isinstance(parent, int) or parent <= 1:
                return False
            pid = parent
            parsed = parse_stat(_read(f"{self.proc}/{pid}/stat") or b"")
            parent = parsed[1] if parsed else NotAvailable("gone")
        return False

    def _emit(self, event: ProcessEvent) -> None:
        if self._ours(event):
            self.excluded += 1
            return
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def run(self, duration: float) -> MonitorResult:
        started = _now()
        deadline = time.monotonic() + duration
        method, watches = "poll", 0
        sock = open_connector() if self.use_netlink else "netlink not asked for"
        if isinstance(sock, socket.socket):
            method = "netlink"
            try:
                self._netlink(sock, deadline)
            finally:
                with contextlib.suppress(OSError):
                    sock.send(_subscribe(PROC_CN_MCAST_IGNORE))
                sock.close()
        else:
            self.notes.append(sock)
            method, watches = self._fallback(deadline)
        return MonitorResult(method, started, _now(), self.events, self.notes, watches)

    def _netlink(self, sock: socket.socket, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], min(left, 0.5))
            if not ready:
                continue
            try:
                data = sock.recv(65536)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.notes.append("the kernel dropped process events (receive buffer overrun)")
                    continue
                raise
            for pid in exec_pids(data):
                self._emit(read_event(self.proc, pid, self.index, "netlink"))

    def _scan(self, source: str, baseline: bool = False) -> None:
        try:
            names = os.listdir(self.proc)
        except OSError:
            return
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            parsed = parse_stat(_read(f"{self.proc}/{pid}/stat") or b"")
            if parsed is None:
                continue
            # The name too: a scan can fall between a fork and its exec (the child still bears
            # its parent's name and argv); after the exec it is the program to report.
            key = (pid, parsed[2], parsed[0])
            if key in self._seen:
                continue
            self._seen.add(key)
            if not baseline:
                self._emit(read_event(self.proc, pid, self.index, source))

    def _inotify(self) -> _Inotify | None:
        try:
            return self.inotify_factory()
        except OSError as exc:
            self.notes.append(f"inotify unavailable ({exc.strerror or exc}): polling every 100 ms only")
            return None

    def _place(self, ino: _Inotify, stop: threading.Event) -> int:
        """Watch pspy's directories until the budget, the kernel's limit or ``stop``; how many."""
        placed = 0
        for d in watch_dirs(self.root):
            if stop.is_set():
                self.notes.append(f"the watch ended while watches were being placed ({placed} placed)")
                break
            if placed >= self.max_watches:
                self.notes.append(
                    f"watch budget of {self.max_watches} directories reached; the rest is polled"
                )
                break
            try:
                ino.add_watch(d, IN_OPEN | IN_ACCESS | IN_CREATE)
                placed += 1
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    self.notes.append(f"inotify watch limit reached after {placed} watches "
                                      "(fs.inotify.max_user_watches); the rest is polled every 100 ms")  # fmt: skip
                    break
                continue  # a directory gone or unreadable: skip it
        return placed

    def _fallback(self, deadline: float) -> tuple[str, int]:
        """pspy's way: a /proc scan every 100 ms, and one at once whenever a watched directory
        is opened. The watches are placed by a thread while the polling already runs: placing
        thousands of them took seconds on a loaded host, and a process that lived and died in
        that time was missed."""
        self._scan("poll", baseline=True)
        ino = self._inotify()
        placed: list[int] = []
        stop = threading.Event()
        placer = None
        if ino is not None:
            placer = threading.Thread(target=lambda: placed.append(self._place(ino, stop)), daemon=True,
                                      name="monitor-watches")  # fmt: skip
            placer.start()
        try:
            next_scan = time.monotonic() + SCAN_INTERVAL
            while (now := time.monotonic()) < deadline:
                wait = max(0.0, min(next_scan, deadline) - now)
                if ino is not None:
                    if select.select([ino.fd], [], [], wait)[0]:
                        ino.drain()
                        self._scan("inotify")
                else:
                    time.sleep(wait)
                if time.monotonic() >= next_scan:
                    self._scan("poll")
                    next_scan = time.monotonic() + SCAN_INTERVAL
        finally:
            stop.set()
            if placer is not None:
                placer.join()
            if ino is not None:
                ino.close()
        count = placed[0] if placed else 0
        return ("inotify+poll" if count else "poll"), count

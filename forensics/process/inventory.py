"""Every process of a live host, read from its /proc.

/proc is read directly rather than through psutil: the raw ``cmdline`` bytes, the
`` (deleted)`` exe suffix, namespace links and cgroup paths are what matter here, and a
fake /proc tree under a test's tmp_path then works the same as the real one.

The exe's SHA-256 is computed by opening ``/proc/<pid>/exe`` for reading (never
executing it): that link keeps the file reachable even after it was deleted. Each
distinct file (device, inode, size, mtime) is hashed once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import stat

from forensics.errors import UnsafePath
from forensics.host.disk import DiskInventory, DockerDisk
from forensics.host.rootfs import GrewPastLimit, RootFS, chunks
from forensics.process.attribution import ContainerIndex, ContainerRef
from forensics.process.sockets import Socket, SocketTables
from forensics.records import NotAvailable

MAX_HASH = 256 * 1024 * 1024
"""Bytes of an exe hashed; a larger file gets NotAvailable for its hash."""
MAX_SMALL = 1 << 20
"""Bytes read of a cmdline, status, stat or cgroup file."""
DELETED = " (deleted)"


@dataclasses.dataclass(frozen=True)
class ExeOrigin:
    """Where a container process's exe lies in the container's file system."""

    layer: str
    """``upper`` (the writable layer: not from the image), ``image layer N``, ``absent``
    (in no layer: deleted, on a volume or bind mount, or outside the container's root)."""
    from_image: bool


@dataclasses.dataclass(frozen=True)
class ProcessRecord:
    """One process as its /proc entry shows it."""

    pid: int
    ppid: int
    uid: int
    """Real uid (``Uid:`` first field of status)."""
    euid: int
    gid: int
    egid: int
    comm: str
    """The kernel's short name (15 characters at most; set by the process, untrusted)."""
    cmdline: list[str]
    """argv, each item decoded with backslash escapes for non-UTF-8 bytes."""
    exe: str | NotAvailable
    """The exe link's target, `` (deleted)`` removed; a path in the process's mount namespace."""
    exe_deleted: bool
    cwd: str | NotAvailable
    start_time: str | NotAvailable
    """UTC ISO time the process started (boot time plus its start ticks)."""
    container: ContainerRef | None
    """Its container, or None for a host process."""
    exe_sha256: str | NotAvailable
    exe_size: int | NotAvailable
    exe_origin: ExeOrigin | NotAvailable
    """For a container process: which layer holds its exe."""
    namespaces: dict[str, str]
    """mnt, pid, net, user, uts, ipc, cgroup: the ``kind:[inode]`` links."""
    cgroup: str
    """The first cgroup path (v1: the named hierarchy's; v2: the unified one)."""
    sockets: list[Socket]
    kernel_thread: bool
    """No exe and no cmdline: a kernel thread."""


@dataclasses.dataclass(frozen=True)
class ProcessProblem:
    pid: int
    message: str


@dataclasses.dataclass(frozen=True)
class ProcessList:
    """The host's processes, with what could not be read."""

    processes: list[ProcessRecord]
    excluded: list[int]
    """Pids left out: our own process tree and the appliance's container."""
    problems: list[ProcessProblem]
    boot_time: str | NotAvailable


def _read(path: str, limit: int = MAX_SMALL) -> bytes | None:
    try:
        with open(path, "rb") as src:
            return src.read(limit)
    except OSError:
        return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _readlink(path: str) -> str | NotAvailable:
    try:
        return os.readlink(path)
    except OSError as exc:
        return NotAvailable(f"readlink {path}: {exc.strerror or exc}")


def boot_time(proc: str) -> float | None:
    raw = _read(f"{proc}/stat") or b""
    for line in raw.splitlines():
        if line.startswith(b"btime "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def parse_stat(raw: bytes) -> tuple[str, int, int] | None:
    """(comm, ppid, starttime ticks) from /proc/<pid>/stat; comm may hold ')' and spaces."""
    head, sep, rest = raw.rpartition(b")")
    if not sep:
        return None
    comm = head.partition(b"(")[2]
    fields = rest.split()
    try:
        return _text(comm), int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def parse_ids(status: bytes, key: bytes) -> tuple[int, int]:
    for line in status.splitlines():
        if line.startswith(key + b":"):
            parts = line.split()
            try:
                return int(parts[1]), int(parts[2])
            except (IndexError, ValueError):
                break
    return -1, -1


def pids(proc: str) -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(proc) if n.isdigit())
    except OSError:
        return []


def descendants(proc: str, root_pid: int) -> set[int]:
    """``root_pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid in pids(proc):
        parsed = parse_stat(_read(f"{proc}/{pid}/stat") or b"")
        if parsed:
            children.setdefault(parsed[1], []).append(pid)
    out, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


class Hasher:
    """SHA-256 of exes through /proc/<pid>/exe, once per distinct file."""

    def __init__(self, limit: int = MAX_HASH) -> None:
        self.limit = limit
        self._seen: dict[tuple[int, int, int, int], str | NotAvailable] = {}

    def hash(self, proc: str, pid: int) -> tuple[str | NotAvailable, int | NotAvailable]:
        try:
            fd = os.open(f"{proc}/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            reason = NotAvailable(f"cannot open /proc/{pid}/exe: {exc.strerror or exc}")
            return reason, reason
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                reason = NotAvailable("the exe is not a regular file")
                return reason, reason
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key in self._seen:
                return self._seen[key], st.st_size
            if st.st_size > self.limit:
                result: str | NotAvailable = NotAvailable(f"exe larger than {self.limit} bytes: not hashed")
            else:
                digest = hashlib.sha256()
                try:
                    for chunk in chunks(fd, st.st_size, self.limit):
                        digest.update(chunk)
                    result = digest.hexdigest()
                except GrewPastLimit:
                    result = NotAvailable("exe grew past the limit")
            self._seen[key] = result
            return result, st.st_size
        except OSError as exc:
            reason = NotAvailable(f"reading /proc/{pid}/exe: {exc.strerror or exc}")
            return reason, reason
        finally:
            os.close(fd)


class OriginFinder:
    """Which layer of a container holds a path: the writable (upper) layer or the image's."""

    def __init__(self, disk: DockerDisk | None, index: ContainerIndex) -> None:
        self.disk = disk
        self.index = index
        self._cache: dict[tuple[str, str], ExeOrigin | NotAvailable] = {}

    def origin(self, cid: str, path: str) -> ExeOrigin | NotAvailable:
        key = (cid, path)
        if key not in self._cache:
            self._cache[key] = self._find(cid, path)
        return self._cache[key]

    def _layers(self, cid: str) -> list[tuple[str, str | NotAvailable]] | NotAvailable:
        if self.disk is None:
            return NotAvailable("no docker data to read the container's layers from")
        container = self.index.containers.get(cid)
        if container is None:
            return NotAvailable(f"container {cid[:12]} is not in the disk inventory")
        out: list[tuple[str, str | NotAvailable]] = [("upper", self.disk.upper_dir(container))]
        image = self.index.images.get(container.image_id)
        if image is None:
            return NotAvailable(f"image {container.image_id[:19]} of container {cid[:12]} is not on disk")
        lowers = self.disk.layer_dirs(image.diff_ids, container.driver or "overlay2")
        out.extend((f"image layer {n}", d) for n, d in reversed(list(enumerate(lowers))))
        return out

    def _find(self, cid: str, path: str) -> ExeOrigin | NotAvailable:
        layers = self._layers(cid)
        if isinstance(layers, NotAvailable):
            return layers
        assert self.disk is not None
        for label, directory in layers:
            if isinstance(directory, NotAvailable):
                continue
            try:
                fs = RootFS(self.disk.fs.host_path(directory))
                resolved = fs.resolve(path, follow_final=False)
            except (UnsafePath, OSError) as exc:  # the answer would be a guess: say why there is none
                return NotAvailable(f"{label} of container {cid[:12]} unreadable: {exc}")
            if resolved.stat is None:
                continue
            if stat.S_ISCHR(resolved.stat.st_mode) and resolved.stat.st_rdev == 0:
                return ExeOrigin(f"deleted in {label}", False)
            return ExeOrigin(label, label != "upper")
        return ExeOrigin("absent", False)


def read_process(
    proc: str,
    pid: int,
    btime: float | None,
    index: ContainerIndex,
    hasher: Hasher,
    origins: OriginFinder,
    tables: SocketTables,
) -> ProcessRecord | None:
    """One process, or None when it is gone."""
    base = f"{proc}/{pid}"
    stat_raw = _read(f"{base}/stat")
    status = _read(f"{base}/status")
    if stat_raw is None or status is None:
        return None
    parsed = parse_stat(stat_raw)
    if parsed is None:
        return None
    comm, ppid, ticks = parsed
    uid, euid = parse_ids(status, b"Uid")
    gid, egid = parse_ids(status, b"Gid")
    raw_cmd = _read(f"{base}/cmdline") or b""
    cmdline = [_text(a) for a in raw_cmd.rstrip(b"\0").split(b"\0")] if raw_cmd else []
    exe_link = _readlink(f"{base}/exe")
    deleted = isinstance(exe_link, str) and exe_link.endswith(DELETED)
    exe: str | NotAvailable = exe_link[: -len(DELETED)] if isinstance(exe_link, str) and deleted else exe_link
    kernel_thread = not raw_cmd and isinstance(exe, NotAvailable) and ppid in (0, 2)
    start: str | NotAvailable = NotAvailable("boot time unknown")
    if btime is not None:
        moment = dt.datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), dt.UTC)
        start = moment.isoformat().replace("+00:00", "Z")
    cgroup_text = _text(_read(f"{base}/cgroup") or b"")
    first_cgroup = next((ln.split(":", 2)[-1] for ln in cgroup_text.splitlines() if ln), "")
    container = index.attribute(pid, cgroup_text)
    namespaces = {}
    for kind in ("mnt", "pid", "net", "user", "uts", "ipc", "cgroup"):
        link = _readlink(f"{base}/ns/{kind}")
        if isinstance(link, str):
            namespaces[kind] = link
    sha: str | NotAvailable
    size: int | NotAvailable
    if kernel_thread:
        sha = size = NotAvailable("kernel thread")
    else:
        sha, size = hasher.hash(proc, pid)
    origin: ExeOrigin | NotAvailable = NotAvailable("a host process")
    if container is not None:
        origin = origins.origin(container.id, exe) if isinstance(exe, str) else exe
    return ProcessRecord(
        pid=pid, ppid=ppid, uid=uid, euid=euid, gid=gid, egid=egid, comm=comm, cmdline=cmdline,
        exe=exe, exe_deleted=deleted, cwd=_readlink(f"{base}/cwd"), start_time=start,
        container=container, exe_sha256=sha, exe_size=size, exe_origin=origin,
        namespaces=namespaces, cgroup=first_cgroup, sockets=tables.of(pid),
        kernel_thread=kernel_thread,
    )  # fmt: skip


def list_processes(
    proc: str,
    disk: DockerDisk | None,
    inventory: DiskInventory | None = None,
    exclude_container: str | None = None,
    exclude_tree: int | None = None,
    hash_limit: int = MAX_HASH,
) -> ProcessList:
    """Every process under ``proc``, our own tree and the appliance container left out."""
    if inventory is None and disk is not None and disk.exists():
        inventory = disk.inventory()
    index = ContainerIndex.build(proc, inventory)
    hasher = Hasher(hash_limit)
    origins = OriginFinder(disk if disk is not None and disk.exists() else None, index)
    tables = SocketTables(proc)
    btime = boot_time(proc)
    ours = descendants(proc, exclude_tree) if exclude_tree is not None else set()
    records, excluded, problems = [], [], []
    for pid in pids(proc):
        if pid in ours:
            excluded.append(pid)
            continue
        try:
            record = read_process(proc, pid, btime, index, hasher, origins, tables)
        except Exception as exc:  # one odd entry must not lose the listing
            problems.append(ProcessProblem(pid, f"{type(exc).__name__}: {exc}"))
            continue
        if record is None:
            continue  # exited while we looked
        if exclude_container and record.container and record.container.id == exclude_container:
            excluded.append(pid)
            continue
        records.append(record)
    boot = (
        dt.datetime.fromtimestamp(btime, dt.UTC).isoformat().replace("+00:00", "Z")
        if btime is not None
        else NotAvailable(f"no btime in {proc}/stat")
    )
    return ProcessList(records, excluded, problems, boot)

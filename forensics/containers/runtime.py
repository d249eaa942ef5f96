"""A container's runtime side: its processes and sockets, mounts and networks.

Processes come from the process area's one walk of the host's /proc (each already
attributed to a container by cgroup and namespaces, :mod:`forensics.process.attribution`);
here they are only grouped per container, with their sockets split into listening and
connected. Mounts and networks are read from the container's ``config.v2.json``, beside the
Engine API's view when it answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from forensics.errors import UnsafePath
from forensics.host.disk import DiskContainer, DockerDisk
from forensics.host.rootfs import file_type
from forensics.process.inventory import ProcessList, ProcessRecord
from forensics.process.sockets import Socket
from forensics.records import NotAvailable

LISTENING = frozenset({"LISTEN", "UNCONN"})
MAX_VOLUME_ENTRIES = 100_000


@dataclasses.dataclass(frozen=True)
class NetworkRecord:
    name: str
    ip: str
    ipv6: str
    mac: str
    gateway: str
    aliases: list[str]


@dataclasses.dataclass(frozen=True)
class MountRecord:
    destination: str
    source: str
    type: str
    name: str
    rw: bool
    propagation: str


@dataclasses.dataclass(frozen=True)
class VolumeFile:
    """A file in a volume written since the container was created."""

    path: bytes
    """Path inside the volume."""
    file_type: str
    size: int
    mtime_ns: int
    ctime_ns: int
    why: str
    """``mtime`` (written since), or ``ctime`` only (its metadata changed since: a time set
    back, or the copy docker makes of the image's files into a new volume)."""


@dataclasses.dataclass(frozen=True)
class VolumeChanges:
    """A named volume's files changed since the container's creation (volumes have no image
    to compare with: a later mtime or ctime is what marks a file as changed)."""

    destination: str
    volume: str
    files: list[VolumeFile] | NotAvailable
    examined: int
    truncated: bool


@dataclasses.dataclass(frozen=True)
class ContainerRuntime:
    """What runs in one container, and how it is wired."""

    container_id: str
    name: str
    processes: list[ProcessRecord] | NotAvailable
    listening: list[tuple[int, Socket]] | NotAvailable
    """(pid, socket) for each listening or unconnected socket."""
    connected: list[tuple[int, Socket]] | NotAvailable
    """(pid, socket) for each socket with a peer."""
    mounts: list[MountRecord]
    volumes: list[VolumeChanges]
    """For each named volume: its files changed since the container was created."""
    networks: list[NetworkRecord]
    network_mode: str
    api_networks: dict[str, Any] | NotAvailable


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def mounts_of(config: dict[str, Any]) -> list[MountRecord]:
    points = config.get("MountPoints")
    out = []
    if isinstance(points, dict):
        for dest, point in sorted(points.items()):
            if isinstance(point, dict):
                out.append(MountRecord(_str(point.get("Destination")) or str(dest), _str(point.get("Source")),
                                       _str(point.get("Type")), _str(point.get("Name")), point.get("RW") is True,
                                       _str(point.get("Propagation"))))  # fmt: skip
    return out


def networks_of(config: dict[str, Any]) -> list[NetworkRecord]:
    settings = config.get("NetworkSettings")
    networks = settings.get("Networks") if isinstance(settings, dict) else None
    out = []
    if isinstance(networks, dict):
        for name, net in sorted(networks.items()):
            if isinstance(net, dict):
                aliases = net.get("Aliases") if isinstance(net.get("Aliases"), list) else []
                out.append(NetworkRecord(str(name), _str(net.get("IPAddress")), _str(net.get("GlobalIPv6Address")),
                                         _str(net.get("MacAddress")), _str(net.get("Gateway")),
                                         [str(a) for a in aliases or []]))  # fmt: skip
    return out


def created_ns(created: str) -> int | None:
    """``2026-01-01T00:00:00.123456789Z`` as nanoseconds since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", created)
    if not match:
        return None
    try:
        seconds = dt.datetime.fromisoformat(
            match.group(1) + match.group(3).replace("Z", "+00:00")
        ).timestamp()
    except ValueError:
        return None
    return int(seconds) * 1_000_000_000 + int((match.group(2) or "0").ljust(9, "0"))


def volume_changes(
    disk: DockerDisk, container: DiskContainer, limit: int = MAX_VOLUME_ENTRIES
) -> list[VolumeChanges]:
    """Files of each named volume changed since the container was created (bounded walk)."""
    since = created_ns(container.created)
    out = []
    for mount in mounts_of(container.config):
        if mount.type != "volume":
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", mount.name):
            out.append(VolumeChanges(mount.destination, mount.name, NotAvailable("volume name failed validation"), 0,
                                     False))  # fmt: skip
            continue
        expected = disk.path("volumes", mount.name, "_data")
        if mount.source and mount.source.rstrip("/") != expected:
            out.append(VolumeChanges(mount.destination, mount.name,
                                     NotAvailable(f"source {mount.source[:200]!r} is not {expected}: not walked"), 0,
                                     False))  # fmt: skip
            continue
        if since is None:
            out.append(VolumeChanges(mount.destination, mount.name, NotAvailable("container creation time unreadable"),
                                     0, False))  # fmt: skip
            continue
        files: list[VolumeFile] = []
        examined = 0
        truncated = False
        try:
            for path, st in disk.fs.walk(expected, max_entries=limit + 1):
                if examined >= limit:
                    truncated = True
                    break
                examined += 1
                if max(st.st_mtime_ns, st.st_ctime_ns) >= since and path != expected.encode():
                    why = "mtime" if st.st_mtime_ns >= since else "ctime"
                    files.append(VolumeFile(path[len(expected.encode()):], file_type(st.st_mode), st.st_size,
                                            st.st_mtime_ns, st.st_ctime_ns, why))  # fmt: skip
        except (UnsafePath, OSError) as exc:
            out.append(VolumeChanges(mount.destination, mount.name, NotAvailable(str(exc)), examined, False))
            continue
        out.append(VolumeChanges(mount.destination, mount.name, files, examined, truncated))
    return out


def runtime_of(
    container: DiskContainer,
    listing: ProcessList | NotAvailable,
    api: dict[str, Any] | NotAvailable,
    disk: DockerDisk | None = None,
) -> ContainerRuntime:
    processes: list[ProcessRecord] | NotAvailable
    listening: list[tuple[int, Socket]] | NotAvailable
    connected: list[tuple[int, Socket]] | NotAvailable
    if isinstance(listing, NotAvailable):
        processes = listening = connected = listing
    else:
        processes = [
            p for p in listing.processes if p.container is not None and p.container.id == container.id
        ]
        listening = [
            (p.pid, s) for p in processes for s in p.sockets if s.proto != "unix" and s.state in LISTENING
        ]
        connected = [
            (p.pid, s) for p in processes for s in p.sockets if s.proto != "unix" and s.state not in LISTENING
        ]
    api_networks: dict[str, Any] | NotAvailable = api
    if not isinstance(api, NotAvailable):
        settings = api.get("NetworkSettings")
        api_networks = settings.get("Networks") or {} if isinstance(settings, dict) else {}
    mode = container.hostconfig.get("NetworkMode")
    volumes = volume_changes(disk, container) if disk is not None else []
    return ContainerRuntime(container.id, container.name, processes, listening, connected,
                            mounts_of(container.config), volumes, networks_of(container.config),
                            mode if isinstance(mode, str) else "", api_networks)  # fmt: skip

"""Which container a host process belongs to: its cgroup path, checked against namespaces.

cgroup v1 (``/docker/<64 hex>``) and v2 (``/system.slice/docker-<64 hex>.scope``) paths name
the container. The mount and pid namespaces of the container's init process (its
``State.Pid`` in config.v2.json) confirm it: a process in the container's cgroup but in
other namespaces (or the reverse) is recorded with how it was matched.
"""

from __future__ import annotations

import dataclasses
import os
import re

from forensics.host.disk import DiskContainer, DiskImage, DiskInventory
from forensics.records import NotAvailable

_CGROUP_ID = re.compile(r"(?:/docker/|/docker-|docker/containers/)([0-9a-f]{64})(?:\.scope)?(?:/|$)")


@dataclasses.dataclass(frozen=True)
class ContainerRef:
    """The container a process runs in."""

    id: str
    name: str | NotAvailable
    """The container's name (without the leading ``/``), when the disk knows it."""
    matched_by: str
    """``cgroup+namespaces``, ``cgroup`` (namespaces differ from the init's or are unknown)
    or ``namespaces`` (no docker cgroup, but the init's mount and pid namespaces)."""


def cgroup_container(text: str) -> str | None:
    """The docker container id in a /proc/<pid>/cgroup text, if any."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        match = _CGROUP_ID.search(path)
        if match:
            return match.group(1)
    return None


def ns_inode(proc: str, pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"{proc}/{pid}/ns/{kind}")
    except OSError:
        return None


@dataclasses.dataclass
class ContainerIndex:
    """Containers of the host, with their init's namespaces, for attributing processes."""

    proc: str
    containers: dict[str, DiskContainer]
    images: dict[str, DiskImage]
    init_ns: dict[tuple[str | None, str | None], str] = dataclasses.field(default_factory=dict)
    """(mnt, pid) namespace links of each running container's init -> container id."""

    @classmethod
    def build(cls, proc: str, inventory: DiskInventory | None) -> ContainerIndex:
        containers = {c.id: c for c in inventory.containers} if inventory else {}
        images = {i.id: i for i in inventory.images} if inventory else {}
        index = cls(proc, containers, images)
        for cid, container in containers.items():
            pid = container.state.pid
            if container.state.running and pid > 0:
                key = (ns_inode(proc, pid, "mnt"), ns_inode(proc, pid, "pid"))
                if None not in key:
                    index.init_ns[key] = cid
        return index

    def name(self, cid: str) -> str | NotAvailable:
        found = self.containers.get(cid)
        if found is None:
            return NotAvailable("not in the disk inventory")
        return found.name.lstrip("/")

    def attribute(self, pid: int, cgroup_text: str) -> ContainerRef | None:
        """The container of ``pid``, or None for a host process."""
        by_cgroup = cgroup_container(cgroup_text)
        key = (ns_inode(self.proc, pid, "mnt"), ns_inode(self.proc, pid, "pid"))
        by_ns = self.init_ns.get(key) if None not in key else None
        if by_cgroup is not None:
            how = "cgroup+namespaces" if by_ns == by_cgroup else "cgroup"
            return ContainerRef(by_cgroup, self.name(by_cgroup), how)
        if by_ns is not None:
            return ContainerRef(by_ns, self.name(by_ns), "namespaces")
        return None

"""The appliance knows itself: its container, its image, whether it sees the host's pids."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from forensics.host.engine import Engine
from forensics.records import NotAvailable

_ID_IN_TEXT = re.compile(r"(?:docker[-/]|containers/)([0-9a-f]{64})")


@dataclasses.dataclass(frozen=True)
class SelfView:
    """Where this process runs."""

    in_container: bool
    """Inside a container (any runtime)."""
    container_id: str | NotAvailable
    """Our own container's id, when found from cgroups or mountinfo."""
    image_id: str | NotAvailable
    """The image our container runs, from the Engine API."""
    pid_host: bool | NotAvailable
    """Whether we share the host's pid namespace (``--pid=host``)."""


def _read(path: str, limit: int = 1 << 20) -> str:
    try:
        with open(path, "rb") as src:
            return src.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def own_container_id(proc: str = "/proc") -> str | NotAvailable:
    for source in (f"{proc}/self/cgroup", f"{proc}/self/mountinfo"):
        match = _ID_IN_TEXT.search(_read(source))
        if match:
            return match.group(1)
    return NotAvailable("no container id in /proc/self/cgroup or mountinfo")


def in_container() -> bool:
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    return bool(re.search(r"docker|containerd|kubepods|libpod", _read("/proc/1/cgroup")))


def shares_host_pids(container_id: str | NotAvailable) -> bool | NotAvailable:
    """With --pid=host, pid 1 is the host's init, outside our container."""
    try:
        return os.readlink("/proc/1/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        pass
    if isinstance(container_id, NotAvailable):
        return NotAvailable("cannot compare namespaces with pid 1")
    return container_id not in _read("/proc/1/cgroup") + _read("/proc/1/mountinfo")


def look_at_self(engine: Engine | NotAvailable) -> SelfView:
    inside = in_container()
    cid = own_container_id() if inside else NotAvailable("not in a container")
    image: str | NotAvailable = NotAvailable("not in a container")
    if inside and not isinstance(cid, NotAvailable):
        if isinstance(engine, NotAvailable):
            image = NotAvailable(f"no engine to ask: {engine.reason}")
        else:
            try:
                image = str(engine.inspect_container(cid).get("Image", ""))
            except Exception as exc:  # the daemon may not know us (another runtime)
                image = NotAvailable(f"the engine does not know container {cid[:12]}: {exc}")
    elif inside:
        image = NotAvailable("own container id not found")
    return SelfView(inside, cid, image, shares_host_pids(cid) if inside else True)

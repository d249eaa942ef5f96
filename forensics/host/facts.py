"""Host facts for custody and for the archive: identity, kernel, clocks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
from typing import Any

from forensics.context import HostContext
from forensics.errors import UnsafePath
from forensics.records import NotAvailable, iso_utc, utc_now

MAX_FACT = 64 * 1024


@dataclasses.dataclass(frozen=True)
class ClockReading:
    """The appliance's clock next to the daemon's; RFC 3227 asks for the offset."""

    appliance_utc: str
    engine_system_time: str | NotAvailable
    """SystemTime from the daemon's /info, as it sent it."""
    offset_seconds: float | NotAvailable
    """Daemon minus appliance, in seconds."""


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """Who the host is."""

    root: str
    hostname: str | NotAvailable
    """From the root's /etc/hostname."""
    live_hostname: str | NotAvailable
    """The kernel's nodename, when the root is the running system."""
    machine_id: str | NotAvailable
    boot_id: str | NotAvailable
    kernel: str | NotAvailable
    os_release: dict[str, str] | NotAvailable
    uptime_seconds: float | NotAvailable
    docker_daemon_id: str | NotAvailable
    docker_version: str | NotAvailable
    clock: ClockReading


def _root_text(ctx: HostContext, path: str) -> str | NotAvailable:
    try:
        return ctx.rootfs().read_bytes(path, MAX_FACT).decode("utf-8", "replace").strip()
    except (UnsafePath, OSError) as exc:
        return NotAvailable(str(exc))


def _parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"')
    return out


def _proc_text(ctx: HostContext, rel: str) -> str | NotAvailable:
    proc = ctx.live_proc()
    if isinstance(proc, NotAvailable):
        return proc
    try:
        return (proc / rel).read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        return NotAvailable(str(exc))


def parse_engine_time(value: str) -> dt.datetime | None:
    """The daemon's RFC 3339 time with nanoseconds, to a datetime (microseconds)."""
    try:
        head, _, rest = value.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        zone = rest[len(frac) :] if rest else value[19:]
        base = dt.datetime.fromisoformat(head[:19] + (zone.replace("Z", "+00:00") or "+00:00"))
        return base + dt.timedelta(microseconds=int((frac + "000000")[:6]))
    except ValueError:
        return None


def _live_hostname(live: object) -> str | NotAvailable:
    """The kernel's nodename, when we share the host's UTS namespace (the appliance does not)."""
    if isinstance(live, NotAvailable):
        return live
    try:
        own_uts = os.readlink("/proc/self/ns/uts") != os.readlink("/proc/1/ns/uts")
    except OSError:
        own_uts = False
    if own_uts:
        return NotAvailable(
            "this process has its own UTS namespace: see hostname (from the root's /etc/hostname)"
        )
    return socket.gethostname()


def collect(ctx: HostContext, engine_info: dict[str, Any] | NotAvailable) -> HostFacts:
    now = utc_now()
    os_release = _root_text(ctx, "/etc/os-release")
    if isinstance(os_release, NotAvailable):
        os_release = _root_text(ctx, "/usr/lib/os-release")
    live = ctx.live_proc()
    uptime = _proc_text(ctx, "uptime")
    engine_time: str | NotAvailable
    offset: float | NotAvailable
    if isinstance(engine_info, NotAvailable):
        engine_time = offset = engine_info
        daemon_id: str | NotAvailable = engine_info
        version: str | NotAvailable = engine_info
    else:
        engine_time = str(engine_info.get("SystemTime", ""))
        parsed = parse_engine_time(engine_time)
        offset = (parsed - now).total_seconds() if parsed else NotAvailable("unparsable SystemTime")
        daemon_id = str(engine_info.get("ID", ""))
        version = str(engine_info.get("ServerVersion", ""))
    return HostFacts(
        root=str(ctx.root),
        hostname=_root_text(ctx, "/etc/hostname"),
        live_hostname=_live_hostname(live),
        machine_id=_root_text(ctx, "/etc/machine-id"),
        boot_id=_proc_text(ctx, "sys/kernel/random/boot_id"),
        kernel=" ".join(os.uname()[2:4]) if not isinstance(live, NotAvailable) else live,
        os_release=_parse_os_release(os_release) if isinstance(os_release, str) else os_release,
        uptime_seconds=float(uptime.split()[0])
        if isinstance(uptime, str) and uptime
        else NotAvailable("no uptime"),
        docker_daemon_id=daemon_id,
        docker_version=version,
        clock=ClockReading(iso_utc(now), engine_time, offset),
    )

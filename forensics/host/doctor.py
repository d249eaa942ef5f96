"""``forensics doctor``: what this run can see and use, and what each gap costs."""

from __future__ import annotations

import dataclasses

from forensics.context import HostContext
from forensics.host.appliance import SelfView, look_at_self
from forensics.records import NotAvailable
from forensics.tools import KNOWN_TOOLS, ToolInfo, tool_info

CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]  # fmt: skip

WANTED_CAPS = {
    "SYS_PTRACE": "process memory dumps, strace and reading other processes' /proc entries",
    "DAC_READ_SEARCH": "reading every file under the host root regardless of its mode",
    "SYS_ADMIN": "entering namespaces and reading some /proc entries of other processes",
}


def decode_capabilities(mask: int) -> list[str]:
    return [name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1] + [
        f"CAP_{bit}" for bit in range(len(CAPABILITIES), 64) if mask >> bit & 1
    ]


def effective_capabilities() -> list[str] | NotAvailable:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return decode_capabilities(int(line.split()[1], 16))
    except OSError as exc:
        return NotAvailable(str(exc))
    return NotAvailable("no CapEff line in /proc/self/status")


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    """Everything ``doctor`` checked."""

    root: str
    docker_data: str | NotAvailable
    """The docker data root found under the host root."""
    storage_driver: str | NotAvailable
    docker_host: str | NotAvailable
    engine_version: str | NotAvailable
    """The daemon's version, when its API answers."""
    tools: list[ToolInfo]
    capabilities: list[str] | NotAvailable
    self_view: SelfView
    warnings: list[str]
    """One line per missing piece, with what it costs."""


def examine(ctx: HostContext) -> DoctorReport:
    warnings: list[str] = []
    disk = ctx.disk()
    if disk.exists():
        docker_data: str | NotAvailable = str(ctx.root).rstrip("/") + disk.data_root
        driver = disk.storage_driver()
        if isinstance(driver, NotAvailable):
            warnings.append(f"storage driver unknown ({driver.reason}): layer analyses will fail")
        elif driver != "overlay2":
            warnings.append(f"storage driver {driver}: only overlay2 is read from disk")
    else:
        docker_data = NotAvailable(f"no {disk.data_root} under {ctx.root}")
        driver = NotAvailable("no docker data")
        warnings.append(
            f"no docker data under {ctx.root}: nothing can be read from disk (mount the host's / at /host)"
        )
    engine = ctx.engine()
    if isinstance(engine, NotAvailable):
        version: str | NotAvailable = engine
        warnings.append(
            f"Engine API unavailable ({engine.reason}): no live state, logs or cross-check with disk"
        )
    else:
        version = str(engine.version().get("Version", "unknown"))
    tools = [tool_info(name, forbidden_root=str(ctx.root)) for name in KNOWN_TOOLS]
    for tool in tools:
        if isinstance(tool.path, NotAvailable):
            warnings.append(f"{tool.name} missing: no {tool.purpose}")
    caps = effective_capabilities()
    if not isinstance(caps, NotAvailable):
        for cap, use in WANTED_CAPS.items():
            if cap not in caps:
                warnings.append(f"CAP_{cap} missing: no {use}")
    me = look_at_self(engine)
    if me.in_container and me.pid_host is False:
        warnings.append("not run with --pid=host: the host's processes are not visible")
    return DoctorReport(
        root=str(ctx.root),
        docker_data=docker_data,
        storage_driver=driver,
        docker_host=ctx.docker_host,
        engine_version=version,
        tools=tools,
        capabilities=caps,
        self_view=me,
        warnings=warnings,
    )

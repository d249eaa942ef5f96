"""Triage step: gcore dumps of the processes the process rules flagged, within a budget.

Runs in Phase.MEMORY, after ``process.list`` left ``flagged_processes`` and ``processes``
in ``ctx.state``. Only processes inside containers are dumped unless
``FORENSICS_DUMP_HOST=1`` (a host daemon stopped by ptrace, even briefly, is a bigger
intrusion than a suspect container's process); ``FORENSICS_DUMP`` names more pids or
containers (comma-separated, a container by name or id prefix: all its processes).
``FORENSICS_DUMP_BUDGET_MB`` (default 512) bounds the total of the expected core sizes;
a process that does not fit is a warning, and the next one is tried.
"""

from __future__ import annotations

import os

from forensics.errors import ForensicsError
from forensics.memory.dump import dump, readable_bytes
from forensics.process.inventory import ProcessList, ProcessRecord
from forensics.process.steps import FLAGGED, LISTING
from forensics.records import NotAvailable
from forensics.steps import Need, Phase, Step, StepContext, register
from forensics.tools import which

BUDGET_ENV = "FORENSICS_DUMP_BUDGET_MB"
DEFAULT_BUDGET_MB = 512
HOST_ENV = "FORENSICS_DUMP_HOST"
NAMED_ENV = "FORENSICS_DUMP"


def budget_bytes() -> int:
    try:
        return max(0, int(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_MB))) << 20
    except ValueError:
        return DEFAULT_BUDGET_MB << 20


def _named(record: ProcessRecord, names: list[str]) -> bool:
    if str(record.pid) in names:
        return True
    c = record.container
    return c is not None and any(n == c.name or (len(n) >= 4 and c.id.startswith(n)) for n in names)


def choose(
    listing: ProcessList, flagged: dict[int, list[str]], names: list[str], host_too: bool
) -> list[ProcessRecord]:
    """Processes to dump: those named, then the flagged ones (host ones only if asked)."""
    named = [p for p in listing.processes if _named(p, names) and not p.kernel_thread]
    chosen = {p.pid: p for p in named}
    for p in listing.processes:
        if p.pid in flagged and p.pid not in chosen and (p.container is not None or host_too):
            chosen[p.pid] = p
    return list(chosen.values())


def memory_dump(ctx: StepContext) -> None:
    listing = ctx.state.get(LISTING)
    if not isinstance(listing, ProcessList):
        ctx.warn("no process listing (process.list did not run): nothing to dump")
        return
    gcore = which("gcore", str(ctx.host.root))
    if isinstance(gcore, NotAvailable):
        raise RuntimeError(gcore.reason)
    proc = ctx.host.live_proc()
    if isinstance(proc, NotAvailable):
        raise RuntimeError(proc.reason)
    names = [n.strip() for n in os.environ.get(NAMED_ENV, "").split(",") if n.strip()]
    targets = choose(listing, ctx.state.get(FLAGGED, {}), names, os.environ.get(HOST_ENV) == "1")
    left = budget_bytes()
    for record in targets:
        try:
            size = readable_bytes(str(proc), record.pid)
        except ForensicsError as exc:
            ctx.warn(f"pid {record.pid}: {exc}", pid=record.pid)
            continue
        if size > left:
            ctx.warn(f"pid {record.pid} not dumped: {size >> 20} MiB over the remaining budget of {left >> 20} MiB "
                     f"({BUDGET_ENV})", pid=record.pid)  # fmt: skip
            continue
        try:
            result = dump(ctx.sink, str(proc), record.pid, gcore)
        except ForensicsError as exc:
            ctx.warn(f"pid {record.pid} not dumped: {exc}", pid=record.pid)
            continue
        left -= size
        ctx.sink.add_json(f"memory/{record.pid}/dump.json", result)
        ctx.log.event(ctx.step, "info", message="dumped", pid=record.pid, core=result.core.path,
                      size=result.core.size, sha256=result.core.sha256)  # fmt: skip


register(Step("memory.dump", Phase.MEMORY, memory_dump, frozenset({Need.LIVE_HOST, Need.ROOT_USER}),
              tools=("gcore",), timeout=1800,
              description=f"gcore of flagged (container) processes within {BUDGET_ENV}"))  # fmt: skip

"""Triage steps for processes, first in the order of volatility.

``process.list`` stores ``processes/processes.json`` (every process but our own tree and
the appliance's container), reports each rule that fires, hands flagged executables to
the binary triage (``binary_candidates``, see :mod:`forensics.binary.steps`) and leaves
the listing in ``ctx.state["processes"]`` for the memory step.

``process.monitor`` watches new processes for ``FORENSICS_MONITOR_SECONDS`` (default 5;
0 skips it) and stores them as ``processes/monitor.jsonl`` with ``processes/monitor.json``
(which method ran, notes such as inotify exhaustion).
"""

from __future__ import annotations

import dataclasses
import os

from forensics.binary.steps import CANDIDATES, BinaryCandidate
from forensics.process.attribution import ContainerIndex
from forensics.process.inventory import ProcessList, list_processes
from forensics.process.monitor import Monitor
from forensics.process.rules import evaluate
from forensics.records import NotAvailable, to_jsonable
from forensics.steps import Need, Phase, Step, StepContext, register

LISTING = "processes"
"""``ctx.state`` key of the :class:`ProcessList`."""
FLAGGED = "flagged_processes"
"""``ctx.state`` key: {pid: [rule ids]} of processes the rules flagged."""
MONITOR_ENV = "FORENSICS_MONITOR_SECONDS"
DEFAULT_MONITOR = 5.0


def _self_container(ctx: StepContext) -> str | None:
    me = ctx.state.get("self")
    cid = getattr(me, "container_id", None)
    return cid if isinstance(cid, str) else None


def process_list(ctx: StepContext) -> None:
    proc = ctx.host.live_proc()
    if isinstance(proc, NotAvailable):
        raise RuntimeError(proc.reason)
    disk = ctx.host.disk()
    inventory = ctx.state.get("disk_inventory")
    listing: ProcessList = list_processes(
        str(proc), disk if disk.exists() else None, inventory, _self_container(ctx), os.getpid()
    )
    ctx.state[LISTING] = listing
    evidence = "processes/processes.json"
    ctx.sink.add_json(evidence, listing)
    for problem in listing.problems:
        ctx.warn(f"pid {problem.pid}: {problem.message}", pid=problem.pid)
    flagged: dict[int, list[str]] = ctx.state.setdefault(FLAGGED, {})
    candidates = ctx.state.setdefault(CANDIDATES, [])
    for record in listing.processes:
        findings = evaluate(record, ctx.step, (evidence,))
        for finding in findings:
            ctx.report(finding)
        if not findings:
            continue
        flagged[record.pid] = [f.rule for f in findings]
        where = (
            "host"
            if record.container is None
            else f"container {record.container.name} ({record.container.id[:12]})"
        )
        candidates.append(BinaryCandidate(
            source=f"{where}: pid {record.pid} exe {record.exe if isinstance(record.exe, str) else '?'}",
            subject=f"process:{record.pid}", reason=", ".join(f.rule for f in findings),
            path=f"/proc/{record.pid}/exe", root=None,
        ))  # fmt: skip


def monitor_seconds() -> float:
    raw = os.environ.get(MONITOR_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_MONITOR
    except ValueError:
        return DEFAULT_MONITOR


def process_monitor(ctx: StepContext) -> None:
    seconds = monitor_seconds()
    if seconds <= 0:
        ctx.warn(f"{MONITOR_ENV}=0: process monitor not run")
        return
    proc = ctx.host.live_proc()
    if isinstance(proc, NotAvailable):
        raise RuntimeError(proc.reason)
    disk = ctx.host.disk()
    inventory = ctx.state.get("disk_inventory")
    if inventory is None and disk.exists():
        inventory = disk.inventory()
    index = ContainerIndex.build(str(proc), inventory)
    result = Monitor(str(proc), str(ctx.host.root), index, exclude_tree=os.getpid()).run(seconds)
    me = _self_container(ctx)
    events = [e for e in result.events if not (e.container and e.container.id == me)]
    ctx.sink.add_jsonl("processes/monitor.jsonl", events)
    ctx.sink.add_json("processes/monitor.json", {**to_jsonable(dataclasses.replace(result, events=[])),
                                                  "events": len(events), "seconds": seconds})  # fmt: skip
    for note in result.notes:
        ctx.warn(f"monitor: {note}")


register(Step("process.list", Phase.PROCESSES, process_list, frozenset({Need.LIVE_HOST}), timeout=300,
              description="every live process: ids, argv, exe hash, container, sockets; rules"))  # fmt: skip
register(Step("process.monitor", Phase.PROCESSES, process_monitor, frozenset({Need.LIVE_HOST}), timeout=600,
              description=f"new processes for {MONITOR_ENV} seconds (netlink, else inotify+poll)"))  # fmt: skip

"""Triage step: gcore dumps of the processes the process rules flagged, within a budget.

Runs in Phase.MEMORY, after ``process.list`` left ``flagged_processes`` and ``processes``
in ``ctx.state``. Only processes inside containers are dumped unless
``FORENSICS_DUMP_HOST=1`` (a host daemon stopped by ptrace, even briefly, is a bigger
intrusion than a suspect container's process); ``FORENSICS_DUMP`` names more pids or
containers (comma-separated, a container by name or id prefix: all its processes).
``FORENSICS_DUMP_BUDGET_MB`` (default 512) bounds the total of the expected core sizes;
a process that does not fit is a warning, and the next one is tried.

Each core is scanned while it is still on local disk, from the very file the sink then
hashes and stores: the shared secret rules (:mod:`forensics.memory.secrets`) and yara with
the appliance's rules (``forensics/rules/yara``), offsets mapped to addresses and mappings
through the core's program headers and NT_FILE note. The results go beside the core
(``memory/<pid>/scan.json``, values whole); findings show secrets masked.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterable

from forensics.errors import ForensicsError
from forensics.evidence.writer import EvidenceFile, Sink
from forensics.findings import Finding, Severity
from forensics.memory.dump import dump, readable_bytes
from forensics.memory.secrets import MemoryHit, core_segments, scan_core
from forensics.process.inventory import ProcessList, ProcessRecord
from forensics.process.steps import FLAGGED, LISTING
from forensics.records import NotAvailable
from forensics.steps import Need, Phase, Step, StepContext, register
from forensics.tools import run, which

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
        scanning = CoreScanningSink(ctx.sink)
        try:
            result = dump(scanning, str(proc), record.pid, gcore)
        except ForensicsError as exc:
            ctx.warn(f"pid {record.pid} not dumped: {exc}", pid=record.pid)
            continue
        left -= size
        ctx.sink.add_json(f"memory/{record.pid}/dump.json", result)
        ctx.log.event(ctx.step, "info", message="dumped", pid=record.pid, core=result.core.path,
                      size=result.core.size, sha256=result.core.sha256)  # fmt: skip
        for scan in scanning.scans:
            store_core_scan(ctx, record.pid, result.core.path, scan)


# ---- secrets and YARA over each core, while it is still on local disk -------------------

YARA_TIMEOUT = 600.0
MAX_YARA_HITS = 1000
YARA_RULES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "rules", "yara")


@dataclasses.dataclass(frozen=True)
class YaraHit:
    """One string of one YARA rule matched in a core."""

    rule: str
    string: str
    """The rule's string identifier, e.g. ``$xmrig``."""
    offset: int
    """Offset in the core file."""
    address: int | None
    """Virtual address in the process, when the offset lies in a PT_LOAD segment."""
    mapping: str
    """The mapped file (from the core's NT_FILE note), ``anonymous`` or ``core metadata``."""


@dataclasses.dataclass(frozen=True)
class CoreScan:
    """What the secret rules and YARA found in one core, scanned before it left local disk."""

    secrets: list[MemoryHit]
    """Credential hits, whole values (the evidence keeps them; findings show them masked)."""
    yara_status: str
    """``ran``, ``skipped`` (no yara binary or rules) or ``failed``."""
    yara_reason: str
    yara_rules: list[str]
    yara: list[YaraHit]
    yara_messages: str
    """What yara said on stderr (bounded)."""
    error: str = ""
    """Why the core could not be scanned at all (the dump is stored regardless)."""


def yara_over_core(path: str) -> tuple[str, str, list[str], list[YaraHit], str]:
    """Run the appliance's YARA rules over one core with ``-s`` (string offsets)."""
    binary = which("yara")
    rules = sorted(os.path.join(YARA_RULES_DIR, n) for n in os.listdir(YARA_RULES_DIR) if n.endswith(".yar")) \
        if os.path.isdir(YARA_RULES_DIR) else []  # fmt: skip
    if isinstance(binary, NotAvailable):
        return "skipped", binary.reason, rules, [], ""
    if not rules:
        return "skipped", f"no rules in {YARA_RULES_DIR}", rules, [], ""
    result = run([binary, "--no-warnings", "-s", f"--timeout={int(YARA_TIMEOUT)}", *rules, path],
                 timeout=YARA_TIMEOUT + 30)  # fmt: skip
    segments = core_segments(path)
    hits: list[YaraHit] = []
    rule = ""
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        if not line.startswith("0x"):
            rule = line.split(" ", 1)[0]
            continue
        at, _, rest = line.partition(":")
        string = rest.split(":", 1)[0]
        try:
            offset = int(at, 16)
        except ValueError:
            continue
        seg = next((g for g in segments if g.offset <= offset < g.offset + g.size), None)
        address = seg.vaddr + offset - seg.offset if seg else None
        hits.append(YaraHit(rule, string, offset, address, seg.mapping if seg else "core metadata"))
        if len(hits) >= MAX_YARA_HITS:
            break
    messages = result.stderr.decode("utf-8", "replace")[-4000:]
    status, reason = ("ran", "") if result.ok else ("failed", result.describe())
    return status, reason, rules, hits, messages


def scan_core_file(path: str) -> CoreScan:
    secrets = scan_core(path)
    status, reason, rules, hits, messages = yara_over_core(path)
    return CoreScan(secrets, status, reason, rules, hits, messages)


class CoreScanningSink(Sink):
    """Passes everything to ``inner``; a core given by fd (``.../core.<pid>``) is first
    scanned in place, from the same file whose bytes the sink then hashes and stores."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.scans: list[CoreScan] = []

    def add_stream(self, name: str, chunks: Iterable[bytes], limit: int | None = None) -> EvidenceFile:
        return self.inner.add_stream(name, chunks, limit)

    def add_fd(self, name: str, fd: int, limit: int | None = None) -> EvidenceFile:
        if os.path.basename(name).startswith("core."):
            try:
                self.scans.append(scan_core_file(os.readlink(f"/proc/self/fd/{fd}")))
            except (OSError, ValueError, struct.error) as exc:
                self.scans.append(CoreScan([], "skipped", "core not scanned", [], [], "", f"{exc}"))
            os.lseek(fd, 0, os.SEEK_SET)
        return self.inner.add_fd(name, fd, limit)


def store_core_scan(ctx: StepContext, pid: int, core: str, scan: CoreScan) -> None:
    """The scan beside the core in the evidence; findings per rule, values masked."""
    stored = ctx.sink.add_json(f"memory/{pid}/scan.json", scan)
    evidence = (core, stored.path)
    if scan.error:
        ctx.warn(f"pid {pid}: core not scanned for secrets or YARA: {scan.error}", pid=pid)
    elif scan.yara_status != "ran":
        ctx.warn(f"pid {pid}: yara over the core {scan.yara_status}: {scan.yara_reason}", pid=pid)
    by_rule: dict[str, list[MemoryHit]] = {}
    for hit in scan.secrets:
        by_rule.setdefault(hit.rule, []).append(hit)
    for rule, hits in by_rule.items():
        first = hits[0]
        where = ", ".join(f"{h.offset:#x} ({h.mapping})" for h in hits[:5])
        ctx.report(Finding(f"memory.secret.{rule}", first.severity,
                           f"process {pid}: {first.title} in its memory: {first.masked}"
                           f"{f' and {len(hits) - 1} more' if len(hits) > 1 else ''}",
                           f"process:{pid}", ctx.step, evidence, f"core offsets {where}"))  # fmt: skip
    yara_rules: dict[str, list[YaraHit]] = {}
    for y in scan.yara:
        yara_rules.setdefault(y.rule, []).append(y)
    for rule, ys in yara_rules.items():
        where = ", ".join(f"{y.string} at {y.offset:#x} ({y.mapping})" for y in ys[:5])
        ctx.report(Finding(f"memory.yara.{rule}", Severity.HIGH,
                           f"process {pid}: YARA rule {rule} matched its memory", f"process:{pid}",
                           ctx.step, evidence, f"{len(ys)} strings: {where}"))  # fmt: skip


register(Step("memory.dump", Phase.MEMORY, memory_dump, frozenset({Need.LIVE_HOST, Need.ROOT_USER}),
              tools=("gcore",), timeout=1800,
              description=f"gcore of flagged (container) processes within {BUDGET_ENV}; secrets and YARA over each core"))  # fmt: skip

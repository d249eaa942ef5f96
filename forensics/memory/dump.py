"""gcore dumps of live processes, with /proc/<pid>/maps and status beside them.

gcore (gdb) attaches with ptrace, writes ``<prefix>.<pid>`` and detaches; the process is
stopped only while its memory is copied. The core is written to a private temporary
directory, then copied through the evidence sink (hashed as it is written) and removed,
so the free space needed is about twice the readable mappings; the dump is refused
before it starts when that space is missing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

from forensics.errors import EnvironmentProblem
from forensics.evidence.writer import EvidenceFile, Sink
from forensics.process.trace import check_target
from forensics.tools import run

MARGIN = 64 * 1024 * 1024
SKIP_MAPS = ("[vvar]", "[vsyscall]", "[vvar_vclock]")
GCORE_TIMEOUT = 600.0


@dataclasses.dataclass(frozen=True)
class MemoryDump:
    """One process's memory as stored."""

    pid: int
    core: EvidenceFile
    maps: EvidenceFile
    status: EvidenceFile
    estimate: int
    """Bytes of readable mappings, the size the core was expected to have."""
    argv: list[str]
    """The gcore command line."""
    seconds: float
    gcore_messages: str
    """gcore's stderr (bounded), e.g. warnings about libraries it could not read."""


def readable_bytes(proc: str, pid: int) -> int:
    """Sum of the readable mappings of ``pid`` (what a core holds, at most)."""
    total = 0
    try:
        with open(f"{proc}/{pid}/maps", "rb") as src:
            for line in src.read(64 << 20).decode("ascii", "replace").splitlines():
                fields = line.split()
                if len(fields) < 2 or "r" not in fields[1] or (len(fields) > 5 and fields[5] in SKIP_MAPS):
                    continue
                start, _, end = fields[0].partition("-")
                try:
                    total += int(end, 16) - int(start, 16)
                except ValueError:
                    continue
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read /proc/{pid}/maps: {exc.strerror or exc}") from exc
    return total


def check_space(directory: str, estimate: int) -> None:
    free = shutil.disk_usage(directory).free
    need = 2 * estimate + MARGIN
    if free < need:
        raise EnvironmentProblem(
            f"not enough free space for the dump: {free // (1 << 20)} MiB free under {directory}, "
            f"about {need // (1 << 20)} MiB needed (readable mappings {estimate // (1 << 20)} MiB, twice, plus margin)",
            hint="Free space, or point TMPDIR and --output at a larger disk.",
        )


def dump(
    sink: Sink, proc: str, pid: int, gcore: str, prefix: str = "memory", timeout: float = GCORE_TIMEOUT
) -> MemoryDump:
    """Dump ``pid`` with gcore into ``<prefix>/<pid>/`` of the sink."""
    check_target(proc, pid)
    estimate = readable_bytes(proc, pid)
    with tempfile.TemporaryDirectory(prefix="forensics-gcore-") as work:
        check_space(work, estimate)
        base = f"{prefix}/{pid}"
        maps = _copy_small(sink, f"{proc}/{pid}/maps", f"{base}/maps")
        status = _copy_small(sink, f"{proc}/{pid}/status", f"{base}/status")
        out = os.path.join(work, "core")
        argv = [gcore, "-o", out, str(pid)]
        result = run(argv, timeout=timeout, max_output=64 * 1024)
        core_path = f"{out}.{pid}"
        messages = (result.stdout + result.stderr).decode("utf-8", "replace")[-4000:]
        if not os.path.isfile(core_path):
            if "ptrace" in messages.lower() or "not permitted" in messages.lower():
                raise EnvironmentProblem(f"gcore could not attach to {pid}: {result.describe()}",
                                         hint="ptrace is not permitted: run as root with CAP_SYS_PTRACE.")  # fmt: skip
            raise EnvironmentProblem(f"gcore wrote no core for {pid}: {result.describe()}")
        with open(core_path, "rb") as src:
            core = sink.add_fd(f"{base}/core.{pid}", src.fileno())
        os.unlink(core_path)
    return MemoryDump(pid, core, maps, status, estimate, argv, result.duration, messages)


def _copy_small(sink: Sink, path: str, name: str) -> EvidenceFile:
    try:
        with open(path, "rb") as src:
            return sink.add_fd(name, src.fileno(), limit=64 << 20)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read {path}: {exc.strerror or exc}") from exc

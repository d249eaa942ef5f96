"""Triage step: static triage of the executables other steps flag.

The contract for producers (container diff, image search, processes) is in
:mod:`forensics.binary.candidates`: append a ``BinaryCandidate`` to
``ctx.state.setdefault(CANDIDATES, [])`` from a step in a phase before ``Phase.SCANS``.
Import it from there: importing this module registers the step, and registration order
decides the order of steps within a phase.

What this step does with them
-----------------------------
Candidates are de-duplicated by location, then at most :data:`MAX_CANDIDATES` are
analysed (a warning names how many were left), each within :data:`BUDGET` seconds, files
over :data:`MAX_FILE` bytes analysed on their first :data:`MAX_FILE` bytes. Each distinct
file (by SHA-256) is stored once as ``binaries/<sha256>.json`` (the whole
:class:`BinaryReport`); ``binaries/index.json`` maps every candidate to its SHA-256 and
verdict. A suspicious verdict becomes a Finding per subject (rule ``binary.suspicious``),
and the suspicious file's bytes are kept as ``binaries/<sha256>.sample`` (up to
:data:`MAX_SAMPLE` bytes), hashed by the sink like every other file. The step stops
taking new candidates shortly before its own timeout, so what it did is never lost.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from forensics.binary.analyze import Options, analyse_fd, open_host_file
from forensics.binary.candidates import CANDIDATES, BinaryCandidate
from forensics.binary.records import BinaryReport
from forensics.errors import ForensicsError
from forensics.findings import Finding, Severity
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable, display_path
from forensics.steps import Phase, Step, StepContext, register

PHASE = Phase.SCANS
MAX_CANDIDATES = 200
MAX_FILE = 64 * 1024 * 1024
MAX_SAMPLE = 64 * 1024 * 1024
BUDGET = 30.0
"""Seconds of native analysis per file."""
R2_TIMEOUT = 60.0
"""Seconds radare2 gets per file (when present)."""
STEP_TIMEOUT = 1800.0
RESERVE = 120.0
"""Seconds kept free before the step's timeout: no new candidate is started inside them."""


@dataclasses.dataclass(frozen=True)
class Analysed:
    """One candidate's outcome, as ``binaries/index.json`` lists it."""

    source: str
    subject: str
    reason: str
    sha256: str | NotAvailable
    verdict: str
    report: str | NotAvailable
    """Archive path of the report."""


def _location(candidate: BinaryCandidate) -> tuple[str | None, bytes]:
    return candidate.root, os.fsencode(candidate.path)


def _analyse(candidate: BinaryCandidate, options: Options) -> BinaryReport:
    if candidate.root is None:
        fd = open_host_file(candidate.path)
        try:
            return analyse_fd(fd, candidate.source, options)
        finally:
            os.close(fd)
    with RootFS(candidate.root).open_regular(candidate.path) as (fd, _st):
        return analyse_fd(fd, candidate.source, options)


def _keep_sample(ctx: StepContext, candidate: BinaryCandidate, name: str) -> str | None:
    try:
        if candidate.root is None:
            fd = open_host_file(candidate.path)
            try:
                ctx.sink.add_fd(name, fd, limit=MAX_SAMPLE)
            finally:
                os.close(fd)
        else:
            with RootFS(candidate.root).open_regular(candidate.path) as (fd, _st):
                ctx.sink.add_fd(name, fd, limit=MAX_SAMPLE)
    except (ForensicsError, OSError) as exc:
        ctx.warn(
            f"could not keep a copy of {candidate.source}: {exc}",
            path=display_path(os.fsencode(candidate.path)),
        )
        return None
    return name


def binary_triage(ctx: StepContext) -> None:
    started = time.monotonic()
    raw: list[Any] = list(ctx.state.get(CANDIDATES, []))
    seen: set[tuple[str | None, bytes]] = set()
    candidates: list[BinaryCandidate] = []
    for item in raw:
        if not isinstance(item, BinaryCandidate):
            ctx.warn(f"ignored a binary candidate that is not a BinaryCandidate: {type(item).__name__}")
            continue
        if _location(item) not in seen:
            seen.add(_location(item))
            candidates.append(item)
    if len(candidates) > MAX_CANDIDATES:
        ctx.warn(f"{len(candidates)} binary candidates; only the first {MAX_CANDIDATES} are analysed")
    forbidden = str(ctx.host.root) if str(ctx.host.root) != "/" else None
    options = Options(max_bytes=MAX_FILE, budget=BUDGET, r2_timeout=R2_TIMEOUT, forbidden_root=forbidden)
    index: list[Analysed] = []
    stored: dict[str, BinaryReport] = {}
    samples: set[str] = set()
    for number, candidate in enumerate(candidates[:MAX_CANDIDATES]):
        if time.monotonic() - started > STEP_TIMEOUT - RESERVE - BUDGET - R2_TIMEOUT:
            ctx.warn(
                f"time is short: {len(candidates[:MAX_CANDIDATES]) - number} binary candidates not analysed"
            )
            break
        try:
            report = _analyse(candidate, options)
        except (ForensicsError, OSError) as exc:
            ctx.warn(
                f"could not analyse {candidate.source}: {exc}", path=display_path(os.fsencode(candidate.path))
            )
            index.append(Analysed(candidate.source, candidate.subject, candidate.reason,
                                  NotAvailable(str(exc)), "not analysed", NotAvailable(str(exc))))  # fmt: skip
            continue
        sha = report.hashes.sha256
        if not isinstance(sha, str):
            ctx.warn(f"{candidate.source}: not fully hashed ({sha.reason}); report not stored")
            index.append(Analysed(candidate.source, candidate.subject, candidate.reason, sha,
                                  report.verdict.line, NotAvailable(sha.reason)))  # fmt: skip
            continue
        name = f"binaries/{sha}.json"
        if sha not in stored:
            ctx.sink.add_json(name, report)
            stored[sha] = report
            for problem in report.problems:
                ctx.warn(f"{candidate.source}: {problem.stage}: {problem.message}")
        index.append(
            Analysed(candidate.source, candidate.subject, candidate.reason, sha, report.verdict.line, name)
        )
        if report.verdict.suspicious:
            evidence = [name]
            sample = f"binaries/{sha}.sample"
            if sample not in samples and _keep_sample(ctx, candidate, sample):
                samples.add(sample)
            if sample in samples:
                evidence.append(sample)
            ctx.report(
                Finding(
                    rule="binary.suspicious",
                    severity=Severity.HIGH,
                    title=f"suspicious binary {display_path(os.fsencode(candidate.path))}: "
                    + ", ".join(report.verdict.reasons),
                    subject=candidate.subject,
                    source=ctx.step,
                    evidence=tuple(evidence),
                    details=f"{candidate.source}; flagged because {candidate.reason}; sha256 {sha}",
                )
            )
    ran = sorted({r.radare2.line for r in stored.values()})
    ctx.log.event(ctx.step, "info", message="binary triage", analysed=len(stored), radare2=ran)
    ctx.sink.add_json("binaries/index.json", {"count": len(index), "binaries": index})


__all__ = ["CANDIDATES", "PHASE", "BinaryCandidate", "binary_triage"]

register(Step("binary.triage", PHASE, binary_triage, timeout=STEP_TIMEOUT, after=(),
              description="static triage of flagged executables (native ELF; radare2 when on PATH)"))  # fmt: skip

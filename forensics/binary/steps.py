"""Triage step: static triage of the executables other steps flag.

The contract (for the container-diff, image-search and process steps)
---------------------------------------------------------------------
A step that finds a file worth a binary triage appends a :class:`BinaryCandidate` to
``ctx.state.setdefault(CANDIDATES, [])`` (``CANDIDATES == "binary_candidates"``). It
must run in an earlier phase than :data:`PHASE` (``Phase.SCANS``) or, in the same phase,
from a module listed before ``forensics.binary.steps`` in ``STEP_MODULES``. A candidate
says where the bytes are, never the bytes themselves:

* inside a container or image root: ``BinaryCandidate(source=..., subject=..., reason=...,
  root=<host path of the layer or root dir>, path=b"/usr/bin/x")``; the file is opened
  through :class:`RootFS` (links resolved inside that root, only regular files opened);
* on the host: ``root=None, path="/proc/<pid>/exe"`` (or another host path our own code
  chose, never one a suspect named). ``/proc/<pid>/exe`` keeps working while the process
  lives, even when its file was deleted; once it exits, the candidate becomes a warning.

``subject`` is the Finding subject (``container:<id>``, ``image:<id>``, ``process:<pid>``);
``source`` says in words where it was found (``container web: A /tmp/x``); ``reason``
why the producer flagged it.

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
from forensics.binary.records import BinaryReport
from forensics.errors import ForensicsError
from forensics.findings import Finding, Severity
from forensics.host.rootfs import RootFS
from forensics.records import NotAvailable, display_path
from forensics.steps import Phase, Step, StepContext, register

CANDIDATES = "binary_candidates"
"""The ``ctx.state`` key other steps append :class:`BinaryCandidate` records to."""
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
class BinaryCandidate:
    """A file another step wants triaged (see the module docstring for the contract)."""

    source: str
    """Where it was found, in words (``container web (3f2a…): A /tmp/x``)."""
    subject: str
    """The Finding subject: ``container:<id>``, ``image:<id>``, ``process:<pid>``."""
    reason: str
    """Why the producer flagged it."""
    path: bytes | str
    """The path inside ``root``, or a host path when ``root`` is None."""
    root: str | None = None
    """Host path of the container/image root (or layer dir) the path lives in."""


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


register(Step("binary.triage", PHASE, binary_triage, timeout=STEP_TIMEOUT,
              description="static triage of flagged executables (native ELF; radare2 when on PATH)"))  # fmt: skip

"""The orchestrator: plan the registered steps, run each with its timeout, seal the archive.

A failing step is one line in the acquisition log, never a lost triage. A step that
overruns its timeout is abandoned (its sink closed, so it cannot add files later) and the
run goes on. Ctrl-C or SIGTERM stops the run, and what was collected is still sealed,
marked incomplete in custody.json.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from forensics import __version__
from forensics.context import HostContext
from forensics.errors import EnvironmentProblem
from forensics.evidence.archive import SealedArchive, seal
from forensics.evidence.custody import Custody
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.names import segment
from forensics.evidence.writer import EvidenceWriter, StepSink
from forensics.findings import Finding, deduplicate, finding_record
from forensics.host.appliance import SelfView, look_at_self
from forensics.records import NotAvailable, iso_utc, to_jsonable, utc_now
from forensics.report import document, sarif
from forensics.report import view as report_view
from forensics.steps import REGISTRY, Step, StepContext, TriageOptions, unmet_need

STEP_MODULES = (
    "forensics.host.steps",
    "forensics.containers.steps",
    "forensics.process.steps",
    "forensics.memory.steps",
    "forensics.scan.steps",
    "forensics.binary.steps",
    "forensics.images.steps",
)
"""Every module that registers triage steps. A test fails when one is left out."""


def load_steps() -> list[Step]:
    for module in STEP_MODULES:
        importlib.import_module(module)
    return sorted(REGISTRY.values(), key=lambda s: s.phase)


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """How one step ended."""

    name: str
    status: str
    """ok, failed, skipped, timeout or not-run."""
    seconds: float
    message: str = ""


@dataclasses.dataclass(frozen=True)
class TriageResult:
    archive: SealedArchive
    complete: bool
    outcomes: list[StepOutcome]
    findings: list[Finding]


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop running steps, seal what there is."""


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run_step(step: Step, ctx: StepContext) -> tuple[str, str]:
    """Run in a worker thread; return (status, message) or ('timeout', ...)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            step.run(ctx)
            box["status"] = ("ok", "")
        except Exception as exc:
            box["status"] = ("failed", f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=target, name=f"step-{step.name}", daemon=True)
    worker.start()
    worker.join(step.timeout)
    ctx.sink.close()
    if worker.is_alive():
        return "timeout", f"no result after {step.timeout:.0f}s; abandoned"
    return box.get("status", ("failed", "the step ended without a status"))


def _hostname(host: HostContext) -> str:
    try:
        name = host.rootfs().read_bytes("/etc/hostname", 256).decode("utf-8", "replace").strip()
    except Exception:
        name = ""
    return segment(name or socket.gethostname() or "host")[:64]


def run_triage(
    host: HostContext,
    output: Path,
    options: TriageOptions,
    argv: list[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    steps: list[Step] | None = None,
) -> TriageResult:
    """Run every registered step against ``host`` and seal the archive into ``output``."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create output directory {output}: {exc}") from exc
    if not os.access(output, os.W_OK):
        raise EnvironmentProblem(f"output directory {output} is not writable")
    started = utc_now()
    stem = f"forensics-{_hostname(host)}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    writer = EvidenceWriter(output / stem)
    log = AcquisitionLog(writer)
    custody = Custody(
        case_id=options.case_id,
        examiner=options.examiner,
        tool="forensic-container",
        tool_version=__version__,
        command_line=list(argv if argv is not None else sys.argv),
        started_utc=iso_utc(started),
        options={
            "root": str(host.root),
            "docker_host": host.docker_host,
            "no_engine": host.no_engine,
            "containers": options.containers,
            "output": str(output),
        },
    )
    log.event("triage", "started", version=__version__, root=str(host.root), docker_host=host.docker_host)
    me = look_at_self(host.engine())
    if me.in_container:
        custody.appliance = {
            "container_id": me.container_id,
            "image_id": me.image_id,
            "pid_host": me.pid_host,
        }
    log.event("triage", "info", message="self view", appliance=me)
    state: dict[str, Any] = {"self": me}
    findings: list[Finding] = []
    outcomes: list[StepOutcome] = []
    plan = steps if steps is not None else load_steps()
    for step in plan:
        if not options.selects(step.name):
            log.event(step.name, "skipped", reason="left out by --only/--skip")
    plan = [s for s in plan if options.selects(s.name)]
    deadline = None if options.budget is None else time.monotonic() + options.budget
    interrupted = ""
    with _signals_interrupt():
        for index, step in enumerate(plan):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                log.event("triage", "budget-exhausted", budget=options.budget, during=step.name)
                outcomes.extend(
                    StepOutcome(s.name, "not-run", 0.0, f"time budget of {options.budget:.0f}s used up")
                    for s in plan[index:]
                )
                break
            if left is not None and left < step.timeout:
                step = dataclasses.replace(step, timeout=left)
            try:
                outcomes.append(_one(step, host, writer, log, options, state, findings, progress))
            except Interrupted as exc:
                interrupted = str(exc)
                log.event("triage", "interrupted", signal=interrupted, during=step.name)
                outcomes.extend(
                    StepOutcome(s.name, "not-run", 0.0, f"interrupted by {interrupted}") for s in plan[index:]
                )
                break
    not_done = [o.name for o in outcomes if o.status in ("timeout", "not-run")]
    custody.complete = not not_done
    custody.not_done = not_done
    final = [f for f in deduplicate(findings) if not _about_self(f, me)]
    writer.add_json("findings.json", {"count": len(final), "findings": [finding_record(f) for f in final]})
    writer.add_json("steps.json", outcomes)
    host_facts = state.get("host_facts")
    if host_facts is not None:
        custody.host = {
            "hostname": host_facts.hostname,
            "live_hostname": host_facts.live_hostname,
            "machine_id": host_facts.machine_id,
            "boot_id": host_facts.boot_id,
            "kernel": host_facts.kernel,
            "docker_daemon_id": host_facts.docker_daemon_id,
        }
        custody.clock = dataclasses.asdict(host_facts.clock)
    engine = host.engine()
    if not isinstance(engine, NotAvailable):
        log.event("triage", "info", message="engine API calls", count=len(engine.calls),
                  methods=sorted({c.method for c in engine.calls}))  # fmt: skip
    log.event("triage", "finished", complete=custody.complete, not_done=not_done)
    custody.ended_utc = iso_utc(utc_now())
    _write_reports(writer, custody, final, outcomes, state.get("containers") or [])
    writer.add_json("custody.json", custody)
    writer.write_manifest()
    archive = seal(writer.top, output)
    return TriageResult(archive, custody.complete, outcomes, final)


def _one(step: Step, host: HostContext, writer: EvidenceWriter, log: AcquisitionLog,
         options: TriageOptions, state: dict[str, Any], findings: list[Finding],
         progress: Callable[[str, str], None] | None) -> StepOutcome:  # fmt: skip
    reason = unmet_need(step, host)
    if reason is not None:
        log.event(step.name, "skipped", reason=reason)
        if progress:
            progress(step.name, f"skipped: {reason}")
        return StepOutcome(step.name, "skipped", 0.0, reason)
    if progress:
        progress(step.name, "running")
    log.event(step.name, "started", timeout=step.timeout)
    ctx = StepContext(step.name, host, StepSink(writer, step.name), log, options, state)
    began = time.monotonic()
    status, message = _run_step(step, ctx)
    seconds = time.monotonic() - began
    findings.extend(ctx.findings)
    log.event(
        step.name, status, seconds=round(seconds, 3), error=message or None,
        files=len(ctx.sink.written), findings=len(ctx.findings),
    )  # fmt: skip
    if progress:
        progress(step.name, status if not message else f"{status}: {message}")
    return StepOutcome(step.name, status, seconds, message)


def _write_reports(writer: EvidenceWriter, custody: Custody, findings: list[Finding],
                   outcomes: list[StepOutcome], containers: list[Any]) -> None:  # fmt: skip
    """report.md, report.html and findings.sarif, rendered from the same values the archive holds."""
    values = {
        "custody.json": to_jsonable(custody),
        "findings.json": {"findings": [finding_record(f) for f in findings]},
        "steps.json": to_jsonable(outcomes),
        "containers.json": to_jsonable(containers),
    }
    names = [f.path for f in writer.files()] + ["custody.json", "report.md", "report.html", "findings.sarif"]
    view = report_view.from_records(values, names)
    writer.add_text("report.md", document.markdown(view))
    writer.add_text("report.html", document.html_report(view))
    writer.add_json("findings.sarif", sarif.render(view))


def _about_self(finding: Finding, me: SelfView) -> bool:
    return isinstance(me.container_id, str) and finding.subject == f"container:{me.container_id}"

"""The orchestrator: plan the registered steps, run each with its timeout, seal the archive.

A failing step is one line in the acquisition log, never a lost triage. A step that
overruns its timeout is abandoned (its sink closed, so it cannot add files later) and the
run goes on. Ctrl-C or SIGTERM stops the run, and what was collected is still sealed,
marked incomplete in custody.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib
import json
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
from forensics.evidence.writer import EvidenceFile, EvidenceWriter, StepSink
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
    "forensics.timeline.steps",
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


_OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


class _TriageWriter(EvidenceWriter):
    """The evidence writer of one triage run, remembering every write that failed.

    A full or failing output file system must not yield an archive that claims to be
    complete: each failed write is kept, the acquisition log's own lost lines included
    (the log cannot record its own loss, so those are counted, not raised).
    """

    def __init__(self, top: Path) -> None:
        super().__init__(top)
        self.write_errors: list[str] = []

    def add_stream(self, name: str, chunks: Any, limit: int | None = None) -> EvidenceFile:
        try:
            return super().add_stream(name, chunks, limit)
        except OSError as exc:
            if exc.errno in _OUTPUT_FULL:
                self.write_errors.append(f"{name}: {exc}")
            raise

    def append_line(self, name: str, line: str) -> None:
        try:
            super().append_line(name, line)
        except OSError as exc:
            self.write_errors.append(f"{name}: {exc}")


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop running steps, seal what there is."""


@contextmanager
def _on_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGTERM and Ctrl-C go to ``handler`` while inside, then back to what they were; only
    the main thread can set handlers, so elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _defer(signum: int, _frame: FrameType | None) -> None:
    """While the archive is sealed, SIGTERM and Ctrl-C are not obeyed: stopping half-way
    would leave no archive at all, and sealing is bounded by what was collected. (Nothing is
    logged: the acquisition log may already be under the manifest.)"""
    os.write(2, f"{signal.Signals(signum).name}: sealing the archive first\n".encode())


class _Running:
    """One step running in its own thread."""

    def __init__(self, step: Step, ctx: StepContext, wake: threading.Event) -> None:
        self.step = step
        self.ctx = ctx
        self.status: tuple[str, str] | None = None
        self.began = time.monotonic()
        self.deadline = self.began + step.timeout

        def target() -> None:
            try:
                step.run(ctx)
                self.status = ("ok", "")
            except Exception as exc:
                self.status = ("failed", f"{type(exc).__name__}: {exc}")
            finally:
                wake.set()

        self.thread = threading.Thread(target=target, name=f"step-{step.name}", daemon=True)
        self.thread.start()

    def result(self, now: float) -> tuple[str, str] | None:
        """The outcome once the step ended or overran its timeout, else None."""
        if not self.thread.is_alive():
            self.ctx.sink.close()
            return self.status or ("failed", "the step ended without a status")
        if now >= self.deadline:
            self.ctx.sink.close()
            return "timeout", f"no result after {self.step.timeout:.0f}s; abandoned"
        return None


def _ready(step: Step, plan: list[Step], ended: set[str]) -> bool:
    earlier = plan[: plan.index(step)]
    if any(s.phase < step.phase and s.name not in ended for s in earlier):
        return False
    if step.after is None:
        return all(s.name in ended for s in earlier)
    names = {s.name for s in earlier}
    return all(dep in ended for dep in step.after if dep in names)


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
    try:
        writer = _TriageWriter(output / stem)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create the staging directory in {output}: {exc}") from exc
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
    findings: list[Finding] = []
    state: dict[str, Any] = {"self": me, "findings": findings}  # the timeline step places findings in time
    plan = steps if steps is not None else load_steps()
    for step in plan:
        if not options.selects(step.name):
            log.event(step.name, "skipped", reason="left out by --only/--skip")
    plan = [s for s in plan if options.selects(s.name)]
    run = _Run(host, writer, log, options, state, findings, progress)
    outcomes = run.execute(plan)
    not_done = [o.name for o in outcomes if o.status in ("timeout", "not-run")]
    custody.complete = not not_done and not writer.write_errors
    custody.not_done = not_done
    try:
        with _on_signals(_defer):
            return _seal_run(host, output, writer, log, custody, state, findings, outcomes, me)
    except OSError as exc:
        raise _sealing_failed(writer, output, custody, exc) from exc


def _seal_run(host: HostContext, output: Path, writer: _TriageWriter, log: AcquisitionLog, custody: Custody,
              state: dict[str, Any], findings: list[Finding], outcomes: list[StepOutcome],
              me: SelfView) -> TriageResult:  # fmt: skip
    not_done = custody.not_done
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
    _check_writes(writer, custody, log)
    log.event("triage", "finished", complete=custody.complete, not_done=not_done)
    custody.ended_utc = iso_utc(utc_now())
    _write_reports(writer, custody, final, outcomes, state.get("containers") or [])
    _check_writes(writer, custody, log)
    writer.add_json("custody.json", custody)
    if writer.write_errors:
        # A lost log line after custody.json was written: say so where it counts.
        raise OSError(errno.EIO, f"evidence writes failed: {writer.write_errors[0]}")
    writer.write_manifest()
    archive = seal(writer.top, output)
    return TriageResult(archive, custody.complete, outcomes, final)


def _check_writes(writer: _TriageWriter, custody: Custody, log: AcquisitionLog) -> None:
    if writer.write_errors:
        custody.complete = False
        if "evidence-writes" not in custody.not_done:
            custody.not_done.append("evidence-writes")
        log.event("triage", "failed", message="evidence writes failed", count=len(writer.write_errors),
                  first=writer.write_errors[:20])  # fmt: skip


def _sealing_failed(
    writer: _TriageWriter, output: Path, custody: Custody, exc: OSError
) -> EnvironmentProblem:
    """The output could not take the archive: keep the staging dir, marked incomplete, and say so.

    A half-written ``.tar.gz.partial`` is removed (it frees the space the custody record
    needs, and must never pass for an archive); custody.json in the staging dir is
    rewritten with ``complete: false`` when there is room for it.
    """
    partial = output / (writer.top.name + ".tar.gz.partial")
    with contextlib.suppress(OSError):
        partial.unlink()
    custody.complete = False
    if "evidence-writes" not in custody.not_done:
        custody.not_done.append("evidence-writes")
    custody.ended_utc = custody.ended_utc or iso_utc(utc_now())
    marked = "custody.json there says complete: false"
    try:
        target = writer.top / "custody.json"
        target.unlink(missing_ok=True)
        target.write_text(json.dumps(to_jsonable(custody), indent=2) + "\n", encoding="utf-8")
    except OSError as second:
        with contextlib.suppress(OSError):
            (writer.top / "custody.json").unlink()  # a cut-off custody.json says nothing true
        marked = f"custody.json could not be written ({second}): treat it as incomplete"
    return EnvironmentProblem(
        f"writing the evidence failed: {exc}. The collected files stay unsealed in {writer.top} "
        f"({marked}); no archive was sealed",
        hint="free space on the output file system (or choose another --output) and run the triage again",
    )


class _Run:
    """Runs a plan: independent steps side by side (as many as there are cores), each with
    its timeout, within the total budget, stopping cleanly on SIGTERM or Ctrl-C."""

    def __init__(self, host: HostContext, writer: EvidenceWriter, log: AcquisitionLog, options: TriageOptions,
                 state: dict[str, Any], findings: list[Finding],
                 progress: Callable[[str, str], None] | None) -> None:  # fmt: skip
        self.host, self.writer, self.log, self.options = host, writer, log, options
        self.state, self.findings, self.progress = state, findings, progress
        # At least two: most steps wait on disk, the daemon or a tool rather than a core.
        self.workers = max(2, os.cpu_count() or 1)
        self.wake = threading.Event()

    def _say(self, name: str, text: str) -> None:
        if self.progress:
            self.progress(name, text)

    def execute(self, plan: list[Step]) -> list[StepOutcome]:
        outcomes: dict[str, StepOutcome] = {}
        pending = list(plan)
        running: dict[str, _Running] = {}
        deadline = None if self.options.budget is None else time.monotonic() + self.options.budget
        with _on_signals(_interrupt):
            try:
                while pending or running:
                    now = time.monotonic()
                    for name, job in list(running.items()):
                        result = job.result(now)
                        if result is not None:
                            del running[name]
                            outcomes[name] = self._finish(job, *result)
                    if deadline is not None and now >= deadline and pending:
                        self.log.event("triage", "budget-exhausted", budget=self.options.budget)
                        for step in pending:
                            outcomes[step.name] = StepOutcome(
                                step.name,
                                "not-run",
                                0.0,
                                f"time budget of {self.options.budget:.0f}s used up",
                            )
                        pending = []
                    for step in list(pending):
                        if len(running) >= self.workers:
                            break
                        if not _ready(step, plan, set(outcomes)):
                            continue
                        pending.remove(step)
                        if deadline is not None:
                            step = dataclasses.replace(
                                step, timeout=max(0.0, min(step.timeout, deadline - now))
                            )
                        started = self._start(step)
                        if isinstance(started, StepOutcome):
                            outcomes[step.name] = started
                        else:
                            running[step.name] = started
                    if running:
                        wait = min(job.deadline for job in running.values()) - time.monotonic()
                        self.wake.wait(max(0.01, min(wait, 0.5)))
                        self.wake.clear()
                    elif pending and not any(_ready(s, plan, set(outcomes)) for s in pending):
                        # Cannot happen with a sound plan; never hang on one that is not.
                        for step in pending:
                            outcomes[step.name] = StepOutcome(
                                step.name, "not-run", 0.0, "dependencies never ended"
                            )
                        pending = []
            except Interrupted as exc:
                self.log.event("triage", "interrupted", signal=str(exc), running=sorted(running))
                for name, job in running.items():
                    job.ctx.sink.close()
                    outcomes[name] = StepOutcome(name, "not-run", time.monotonic() - job.began,
                                                 f"interrupted by {exc}")  # fmt: skip
                for step in pending:
                    outcomes[step.name] = StepOutcome(step.name, "not-run", 0.0, f"interrupted by {exc}")
        return [outcomes[s.name] for s in plan if s.name in outcomes]

    def _start(self, step: Step) -> _Running | StepOutcome:
        reason = unmet_need(step, self.host)
        if reason is not None:
            self.log.event(step.name, "skipped", reason=reason)
            self._say(step.name, f"skipped: {reason}")
            return StepOutcome(step.name, "skipped", 0.0, reason)
        self._say(step.name, "running")
        self.log.event(step.name, "started", timeout=step.timeout)
        ctx = StepContext(
            step.name, self.host, StepSink(self.writer, step.name), self.log, self.options, self.state
        )
        return _Running(step, ctx, self.wake)

    def _finish(self, job: _Running, status: str, message: str) -> StepOutcome:
        seconds = time.monotonic() - job.began
        self.findings.extend(job.ctx.findings)
        self.log.event(
            job.step.name, status, seconds=round(seconds, 3), error=message or None,
            files=len(job.ctx.sink.written), findings=len(job.ctx.findings),
        )  # fmt: skip
        self._say(job.step.name, status if not message else f"{status}: {message}")
        return StepOutcome(job.step.name, status, seconds, message)


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

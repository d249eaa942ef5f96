"""Triage steps of the scan area (Phase.SCANS): Docker Bench once for the host; dockle's
checkpoints and trivy for every image a container uses, each image on its own."""

from __future__ import annotations

from forensics.findings import Finding
from forensics.records import NotAvailable
from forensics.scan import bench
from forensics.scan.checks import BENCH
from forensics.scan.model import Status, finding_for
from forensics.steps import Phase, Step, StepContext, register

HOST_EVIDENCE = "scan/host.json"


def _self_id(ctx: StepContext) -> str | None:
    me = ctx.state.get("self")
    cid = getattr(me, "container_id", None)
    return cid if isinstance(cid, str) else None


def bench_findings(report: bench.BenchReport, source: str, evidence: tuple[str, ...]) -> list[Finding]:
    """Every WARN of Docker Bench's checks as a Finding."""
    out = []
    for res in report.results:
        finding = finding_for(res, BENCH[res.id], "bench", source, evidence, frozenset({Status.WARN}))
        if finding is not None:
            out.append(finding)
    return out


def scan_host(ctx: StepContext) -> None:
    inputs = bench.gather(ctx.host, _self_id(ctx), warn=ctx.warn)
    report = bench.run_bench(inputs)
    ctx.sink.add_json(HOST_EVIDENCE, report)
    for finding in bench_findings(report, ctx.step, (HOST_EVIDENCE,)):
        ctx.report(finding)
    if isinstance(inputs.containers, NotAvailable):
        ctx.warn(f"container runtime checks undecided: {inputs.containers.reason}")


register(Step("scan.host", Phase.SCANS, scan_host, timeout=600,
              description="Docker Bench for Security: host, daemon, files, images, runtime, swarm"))  # fmt: skip

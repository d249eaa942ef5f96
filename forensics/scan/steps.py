"""Triage steps of the scan area (Phase.SCANS): Docker Bench once for the host; dockle's
checkpoints and trivy for every image a container uses, each image on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forensics.errors import NotFound
from forensics.findings import Finding
from forensics.host.disk import is_digest
from forensics.records import NotAvailable
from forensics.scan import bench, lint, trivy
from forensics.scan.checks import BENCH, DOCKLE
from forensics.scan.model import Status, finding_for
from forensics.steps import Need, Phase, Step, StepContext, register

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


def used_images(ctx: StepContext) -> list[str]:
    """Image ids (``sha256:<hex>``) a container uses, the appliance's own left out."""
    me = ctx.state.get("self")
    own = getattr(me, "image_id", None)
    own_cid = _self_id(ctx)
    ids: set[str] = set()
    for c in ctx.state.get("api_containers") or []:
        if isinstance(c, dict) and c.get("Id") != own_cid and is_digest(c.get("ImageID")):
            ids.add(str(c["ImageID"]))
    inventory = ctx.state.get("disk_inventory")
    for dc in getattr(inventory, "containers", []) or []:
        if dc.id != own_cid and is_digest(dc.image_id):
            ids.add(dc.image_id)
    if isinstance(own, str):
        ids.discard(own)
    return sorted(ids)


def lint_findings(report: lint.LintReport, source: str, evidence: tuple[str, ...]) -> list[Finding]:
    """dockle's FATAL and WARN results as Findings."""
    out = []
    for res in report.results:
        finding = finding_for(
            res, DOCKLE[res.id], "dockle", source, evidence, frozenset({Status.FATAL, Status.WARN})
        )
        if finding is not None:
            out.append(finding)
    return out


def scan_lint(ctx: StepContext) -> None:
    images = used_images(ctx)
    if not images:
        ctx.warn("no image in use by a container (besides the appliance's): nothing to lint")
    for image in images:
        name = f"scan/lint/{image[7:]}.json"
        try:
            report = lint.lint_image(ctx.host, image)
        except Exception as exc:  # one image's trouble must not lose the others
            ctx.warn(f"lint of {image} failed: {exc}", image=image)
            continue
        ctx.sink.add_json(name, report)
        for problem in report.problems:
            ctx.warn(problem, image=image)
        for finding in lint_findings(report, ctx.step, (name,)):
            ctx.report(finding)


def container_upper(host: Any, name: str, cache: Path | None) -> trivy.TrivyReport:
    """trivy rootfs over one container's writable layer (a plain directory on disk)."""
    from forensics.binary.locate import find_container

    disk = host.disk()
    disk.require()
    found = find_container(disk, name)
    upper = disk.upper_dir(found)
    if isinstance(upper, NotAvailable):
        raise NotFound(f"container {name!r} has no writable layer on disk: {upper.reason}")
    return trivy.scan_dir(host, upper, f"container {found.name} ({found.id[:12]}) writable layer", cache)


def scan_trivy(ctx: StepContext) -> None:
    images = used_images(ctx)
    if not images:
        ctx.warn("no image in use by a container (besides the appliance's): nothing to scan")
    for image in images:
        name = f"scan/trivy/{image[7:]}.json"
        try:
            report = trivy.scan_image(ctx.host, image)
        except Exception as exc:  # one image's trouble must not lose the others
            ctx.warn(f"trivy on {image} failed: {exc}", image=image)
            continue
        ctx.sink.add_json(name, report)
        for scanner, state in report.scanners.items():
            if state != "ran":
                ctx.warn(f"trivy {scanner} on {image}: {state}", image=image)
        for finding in trivy.trivy_findings(report, f"image:{image}", ctx.step, (name,)):
            ctx.report(finding)


register(Step("scan.host", Phase.SCANS, scan_host, timeout=600,
              description="Docker Bench for Security: host, daemon, files, images, runtime, swarm"))  # fmt: skip
register(Step("scan.lint", Phase.SCANS, scan_lint, timeout=1200,
              description="dockle's checkpoints for every image a container uses"))  # fmt: skip
register(Step("scan.trivy", Phase.SCANS, scan_trivy, frozenset({Need.ENGINE}), tools=("trivy",), timeout=3600,
              description="trivy (offline) on every image a container uses: secrets, misconfig, vulns with a DB"))  # fmt: skip

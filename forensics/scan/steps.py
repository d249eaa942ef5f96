"""Triage steps of the scan area (Phase.SCANS): Docker Bench once for the host; dockle's
checkpoints and trivy for every image a container uses, each image on its own, and for each
container's merged root (reporting only what its image does not explain)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from forensics.containers import merged
from forensics.findings import Finding
from forensics.host.disk import is_digest
from forensics.records import NotAvailable
from forensics.scan import bench, lint, trivy
from forensics.scan.checks import BENCH, DOCKLE
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


def container_merged(
    host: Any, name: str, cache: Path | None, max_bytes: int = merged.MAX_BYTES
) -> trivy.TrivyReport:
    """trivy rootfs over one container's merged root, built from disk into a private temp dir."""
    return trivy.scan_container(host, name, cache, max_bytes)


def max_merged() -> int:
    """Bound on a merged root's content: ``FORENSICS_MERGED_MAX_MB``, else 4 GiB."""
    raw = os.environ.get("FORENSICS_MERGED_MAX_MB", "")
    return int(raw) << 20 if raw.isdigit() and int(raw) > 0 else merged.MAX_BYTES


def _store(ctx: StepContext, name: str, report: trivy.TrivyReport, what: str) -> None:
    ctx.sink.add_json(name, report)
    for scanner, state in report.scanners.items():
        if state != "ran":
            ctx.warn(f"trivy {scanner} on {what}: {state}", target=what)
    if report.merged is not None:
        for problem in report.merged.problems[:20]:
            ctx.warn(f"merged root of {what}: {problem}", target=what)
        if report.merged.skipped_count:
            ctx.log.event(ctx.step, "merged-root-skipped", target=what, count=report.merged.skipped_count)


def container_only(report: trivy.TrivyReport, image: trivy.TrivyReport | None) -> trivy.TrivyReport:
    """The items of a container's merged root that its image does not explain: files of the
    writable or init layer, and vulnerabilities the image's scan did not list."""
    known = {(i.id, i.package, i.installed) for i in (image.items if image else []) if i.kind == "vuln"}
    vuln_ok = image is not None and image.scanners.get("vuln") == report.scanners.get("vuln") == "ran"
    keep = [
        i for i in report.items
        if (i.kind != "vuln" and i.layer.startswith("container:"))
        or (i.kind == "vuln" and vuln_ok and (i.id, i.package, i.installed) not in known)
    ]  # fmt: skip
    return dataclasses.replace(report, items=keep)


def scan_trivy(ctx: StepContext) -> None:
    from forensics.containers.steps import selected

    containers = selected(ctx) if ctx.host.disk().exists() else []
    images = used_images(ctx)
    if ctx.options.containers:  # narrowed: the images of the containers named
        images = [i for i in images if i in {c.image_id for c in containers}]
    if not images:
        ctx.warn("no image in use by a container (besides the appliance's): nothing to scan")
    if isinstance(ctx.host.engine(), NotAvailable):
        ctx.warn(
            "no engine: images are scanned from their merged roots on disk (" + trivy.ROOTFS_ATTRIBUTION + ")"
        )
    by_image: dict[str, trivy.TrivyReport] = {}
    for image in images:
        name = f"scan/trivy/{image[7:]}.json"
        try:
            report = trivy.scan_image(ctx.host, image, max_bytes=max_merged())
        except Exception as exc:  # one image's trouble must not lose the others
            ctx.warn(f"trivy on {image} failed: {exc}", image=image)
            continue
        by_image[image] = report
        _store(ctx, name, report, image)
        for finding in trivy.trivy_findings(report, f"image:{image}", ctx.step, (name,)):
            ctx.report(finding)
    if not ctx.host.disk().exists():
        ctx.warn("no docker data root on disk: containers' merged roots not scanned")
    for container in containers:
        name = f"scan/trivy/container-{container.id}.json"
        try:
            report = container_merged(ctx.host, container.id, None, max_merged())
        except Exception as exc:  # one container's trouble must not lose the others
            ctx.warn(f"trivy on container {container.id[:12]} failed: {exc}", container=container.id)
            continue
        _store(ctx, name, report, f"container {container.id[:12]}")
        own = container_only(report, by_image.get(container.image_id))
        for finding in trivy.trivy_findings(own, f"container:{container.id}", ctx.step, (name,)):
            ctx.report(finding)


register(Step("scan.host", Phase.SCANS, scan_host, timeout=600, after=(),
              description="Docker Bench for Security: host, daemon, files, images, runtime, swarm"))  # fmt: skip
register(Step("scan.lint", Phase.SCANS, scan_lint, timeout=1200, after=(),
              description="dockle's checkpoints for every image a container uses"))  # fmt: skip
register(Step("scan.trivy", Phase.SCANS, scan_trivy, tools=("trivy",), timeout=3600, after=(),
              description="trivy (offline) on every image a container uses (engine export, else merged root from "
                          "disk) and on each container's merged root from disk: secrets, misconfig, vulns with a DB"))  # fmt: skip

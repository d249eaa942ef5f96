"""trivy, run offline from the appliance's own PATH, normalised into Findings.

``docker scan`` is retired; trivy serves that need. Scanners: secret and misconfig always;
vuln only when a vulnerability DB is there (``--trivy-cache DIR`` or ``$TRIVY_CACHE_DIR``
holding ``db/trivy.db``). No download is ever attempted (offline flags, version check and
telemetry off). Images are scanned from the engine's export stream (GET /images/{name}/get,
read-only) written to a temporary tar, or from a ``docker save`` tar given by path; without
the engine, from the image's merged root built from its layer dirs on disk (``trivy
rootfs``). A container is scanned as its merged root (image layers, init layer, writable
layer) built from disk into a private temp dir by :mod:`forensics.containers.merged`
(``trivy rootfs``, skipping /proc, /sys, /dev), never through a live mount of the suspect's
root. On the rootfs route trivy gives no layers: a secret's or misconfiguration's file is
placed by our own merged view (the layer that last wrote it); vulnerabilities stay without one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from forensics.containers import merged
from forensics.containers.merged import MergedRoot
from forensics.errors import EnvironmentProblem, NotFound
from forensics.findings import Finding, Severity
from forensics.records import NotAvailable
from forensics.tools import run, which

TIMEOUT = 1200.0
MAX_EXPORT = 32 << 30
"""Largest image export written to the temporary tar."""
OFFLINE = ["--skip-db-update", "--skip-java-db-update", "--offline-scan", "--skip-check-update",
           "--skip-version-check", "--disable-telemetry", "--no-progress", "--quiet", "--format", "json"]  # fmt: skip
SKIP_DIRS = ["--skip-dirs", "/proc,/sys,/dev"]
NO_DB = ("skipped: no vulnerability DB (pass --trivy-cache DIR, or set TRIVY_CACHE_DIR, to a directory "
         "holding db/trivy.db and db/metadata.json, e.g. copied from a machine that ran `trivy image --download-db-only`)")  # fmt: skip
SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}


@dataclasses.dataclass(frozen=True)
class TrivyItem:
    """One thing trivy found, normalised."""

    kind: str
    """vuln, secret or misconfig."""
    id: str
    """CVE id, secret rule id or check id."""
    severity: str
    title: str
    target: str
    """trivy's Target (a package DB, a file)."""
    where: str
    """Package and version, or file and line."""
    package: str = ""
    installed: str = ""
    fixed: str = ""
    layer: str = ""
    """The layer's diff id (or digest), when trivy says."""


@dataclasses.dataclass(frozen=True)
class TrivyReport:
    """One trivy run on one target."""

    target: str
    kind: str
    """image or rootfs."""
    trivy_version: str | NotAvailable
    scanners: dict[str, str]
    """Scanner -> ``ran`` or ``skipped: <why>``."""
    items: list[TrivyItem]
    argv: list[str]
    returncode: int | None
    stderr_tail: str
    raw: dict[str, Any] | None
    """trivy's JSON as it came."""
    attribution: str = "trivy"
    """Where item layers come from: ``trivy`` (image route) or what the rootfs route can say."""
    merged: MergedRoot | None = None
    """The merged root scanned on the rootfs route: layers, size, what was skipped."""


def db_dir(option: Path | None) -> Path | NotAvailable:
    cache = option or (Path(os.environ["TRIVY_CACHE_DIR"]) if os.environ.get("TRIVY_CACHE_DIR") else None)
    if cache is None:
        return NotAvailable(NO_DB)
    if not (cache / "db" / "trivy.db").is_file():
        return NotAvailable(f"skipped: no {cache}/db/trivy.db. " + NO_DB.removeprefix("skipped: "))
    return cache


def plan(trivy: str, kind: str, target: str, cache: Path, vuln: bool) -> list[str]:
    """The command line (a list, checked by tests without running it)."""
    scanners = "vuln,secret,misconfig" if vuln else "secret,misconfig"
    argv = [trivy, kind, "--scanners", scanners, "--cache-dir", str(cache), *OFFLINE]
    if kind == "image":
        return [*argv, "--input", target]
    return [*argv, *SKIP_DIRS, target]


def normalise(raw: dict[str, Any]) -> list[TrivyItem]:
    items: list[TrivyItem] = []
    for res in raw.get("Results") or []:
        if not isinstance(res, dict):
            continue
        target = str(res.get("Target") or "")
        for v in res.get("Vulnerabilities") or []:
            layer = v.get("Layer") or {}
            items.append(TrivyItem(
                "vuln", str(v.get("VulnerabilityID")), str(v.get("Severity") or "UNKNOWN"),
                str(v.get("Title") or v.get("VulnerabilityID")), target,
                f"{v.get('PkgName')} {v.get('InstalledVersion')}", str(v.get("PkgName") or ""),
                str(v.get("InstalledVersion") or ""), str(v.get("FixedVersion") or ""),
                str(layer.get("DiffID") or layer.get("Digest") or ""),
            ))  # fmt: skip
        for s in res.get("Secrets") or []:
            layer = s.get("Layer") or {}
            items.append(TrivyItem(
                "secret", str(s.get("RuleID")), str(s.get("Severity") or "UNKNOWN"),
                f"{s.get('Title') or s.get('RuleID')} in {target}", target,
                f"{target}:{s.get('StartLine')}", layer=str(layer.get("DiffID") or layer.get("Digest") or ""),
            ))  # fmt: skip
        for m in res.get("Misconfigurations") or []:
            if m.get("Status") != "FAIL":
                continue
            layer = m.get("Layer") or {}
            items.append(TrivyItem(
                "misconfig", str(m.get("ID") or m.get("AVDID")), str(m.get("Severity") or "UNKNOWN"),
                f"{m.get('Title')} ({target})", target, target,
                layer=str(layer.get("DiffID") or layer.get("Digest") or ""),
            ))  # fmt: skip
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
    return sorted(items, key=lambda i: (order.index(i.severity) if i.severity in order else 9, i.kind, i.id))


def run_trivy(
    kind: str, target: str, label: str, cache_option: Path | None, forbidden_root: str | None
) -> TrivyReport:
    found = which("trivy", forbidden_root)
    if isinstance(found, NotAvailable):
        raise EnvironmentProblem(
            found.reason, hint="trivy ships in the appliance image (/opt/forensics/bin/trivy)."
        )
    db = db_dir(cache_option)
    scanners = {"secret": "ran", "misconfig": "ran", "vuln": "ran" if isinstance(db, Path) else db.reason}
    with tempfile.TemporaryDirectory(prefix="forensics-trivy-") as scratch:
        cache = db if isinstance(db, Path) else Path(scratch)
        argv = plan(found, kind, target, cache, isinstance(db, Path))
        ran = run(argv, timeout=TIMEOUT, env={**os.environ, "TRIVY_NO_PROGRESS": "true"})
    tail = " | ".join(ran.stderr.decode("utf-8", "replace").strip().splitlines()[-5:])
    raw: dict[str, Any] | None = None
    if ran.ok:
        try:
            parsed = json.loads(ran.stdout)
            raw = parsed if isinstance(parsed, dict) else None
        except ValueError:
            raw = None
    if raw is None:
        scanners = {k: f"failed: {ran.describe()}" if v == "ran" else v for k, v in scanners.items()}
    version = str((raw or {}).get("Trivy", {}).get("Version") or "") or NotAvailable("not in its output")
    return TrivyReport(label, kind, version, scanners, normalise(raw or {}), argv, ran.returncode, tail, raw)


def export_image(engine: Any, ref: str, dest: Path) -> None:
    """The engine's ``docker save`` stream (GET /images/{name}/get) into ``dest``."""
    try:
        stream = engine.api.get_image(ref)
    except Exception as exc:
        raise NotFound(f"the engine cannot export image {ref!r}: {exc}") from None
    written = 0
    with open(dest, "wb") as out:
        for chunk in stream:
            written += len(chunk)
            if written > MAX_EXPORT:
                raise EnvironmentProblem(f"image {ref!r} is larger than {MAX_EXPORT} bytes")
            out.write(chunk)


ROOTFS_ATTRIBUTION = ("rootfs route: trivy gives no layers; secret and misconfig files are placed by the merged "
                      "view built from disk (the layer that last wrote the file), vulnerabilities have none")  # fmt: skip


def scan_image(
    host: Any, ref: str, cache_option: Path | None = None, max_bytes: int = merged.MAX_BYTES
) -> TrivyReport:
    """An image by name or id (through the engine's export, else from its layer dirs on disk),
    or a ``docker save`` tar by path."""
    forbidden = str(host.root) if str(host.root) != "/" else None
    if os.path.isfile(ref):
        return run_trivy("image", ref, ref, cache_option, forbidden)
    engine = host.engine()
    if isinstance(engine, NotAvailable):
        if not host.disk().exists():
            raise EnvironmentProblem(f"scanning image {ref!r} needs the engine's export or the docker data root "
                                     f"on disk: {engine.reason}", hint="Or pass a `docker save` tar file.")  # fmt: skip
        return scan_image_offline(host, ref, cache_option, max_bytes)
    with tempfile.TemporaryDirectory(prefix="forensics-export-") as scratch:
        tar = Path(scratch) / "image.tar"
        export_image(engine, ref, tar)
        return run_trivy("image", str(tar), ref, cache_option, forbidden)


def scan_merged(
    built: merged.Built, label: str, cache_option: Path | None, forbidden: str | None
) -> TrivyReport:
    """trivy rootfs over a merged root on disk; file items placed by the root's layer map."""
    report = run_trivy("rootfs", built.path, label, cache_option, forbidden)
    items = []
    for item in report.items:
        layer = item.layer
        if item.kind in ("secret", "misconfig") and not layer:
            path = b"/" + os.fsencode(_inside(item.target, built.path)).lstrip(b"/")
            layer = merged.describe_layer(built.summary, built.layer_of.get(path))
        items.append(dataclasses.replace(item, layer=layer))
    return dataclasses.replace(report, items=items, attribution=ROOTFS_ATTRIBUTION, merged=built.summary)


def _inside(target: str, root: str) -> str:
    """trivy's Target (relative to the scanned dir, or absolute under it) as a path in the root."""
    return target[len(root) :] if target.startswith(root + "/") else target


def scan_image_offline(
    host: Any, ref: str, cache_option: Path | None = None, max_bytes: int = merged.MAX_BYTES
) -> TrivyReport:
    """A local image from its layer dirs on disk (no engine): its merged root, ``trivy rootfs``."""
    forbidden = str(host.root) if str(host.root) != "/" else None
    with merged.image_root(host, ref, max_bytes) as built:
        return scan_merged(built, f"image {ref} (merged root from disk)", cache_option, forbidden)


def scan_container(
    host: Any, ref: str, cache_option: Path | None = None, max_bytes: int = merged.MAX_BYTES
) -> TrivyReport:
    """A container's merged root (image layers, init layer, writable layer) from disk."""
    forbidden = str(host.root) if str(host.root) != "/" else None
    with merged.container_root(host, ref, max_bytes) as built:
        cid = built.summary.subject.removeprefix("container:")
        return scan_merged(
            built, f"container {ref} ({cid[:12]}) merged root from disk", cache_option, forbidden
        )


def scan_dir(host: Any, path: str, label: str, cache_option: Path | None = None) -> TrivyReport:
    """A plain directory inside the host root (a container's writable layer) with trivy rootfs."""
    forbidden = str(host.root) if str(host.root) != "/" else None
    real = host.rootfs().host_path(path)
    return run_trivy("rootfs", str(real), label, cache_option, forbidden)


def trivy_findings(
    report: TrivyReport, subject: str, source: str, evidence: tuple[str, ...]
) -> list[Finding]:
    out = []
    for item in report.items:
        sev = SEVERITY.get(item.severity, Severity.INFO)
        if item.kind == "vuln":
            details = f"{item.package} {item.installed}" + (
                f", fixed in {item.fixed}" if item.fixed else ", no fix"
            )
            title = f"{item.id} in {item.package} {item.installed}"
        elif item.kind == "secret":
            details = f"rule {item.id} at {item.where}" + (f" (layer {item.layer})" if item.layer else "")
            title = item.title
        else:
            details = f"{item.id} in {item.target}"
            title = item.title
        out.append(Finding(f"trivy.{item.kind}.{item.id}", sev, title, subject, source, evidence, details))
    return out

"""trivy's command line (planned, not run), offline flags, DB detection, and normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.findings import Severity
from forensics.records import NotAvailable
from forensics.scan import trivy

RAW = {
    "SchemaVersion": 2,
    "Trivy": {"Version": "0.76.0"},
    "ArtifactName": "x.tar",
    "Results": [
        {"Target": "x (debian 12.5)", "Class": "os-pkgs", "Type": "debian",
         "Vulnerabilities": [{"VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl", "InstalledVersion": "3.0.1",
                              "FixedVersion": "3.0.2", "Severity": "HIGH", "Title": "bad",
                              "Layer": {"DiffID": "sha256:" + "1" * 64}},
                             {"VulnerabilityID": "CVE-2024-0002", "PkgName": "zlib", "InstalledVersion": "1",
                              "Severity": "UNKNOWN"}]},
        {"Target": "/app/creds", "Class": "secret",
         "Secrets": [{"RuleID": "aws-access-key-id", "Severity": "CRITICAL", "Title": "AWS Access Key ID",
                      "StartLine": 1, "Layer": {"DiffID": "sha256:" + "2" * 64}}]},
        {"Target": "Dockerfile", "Class": "config",
         "Misconfigurations": [{"ID": "DS002", "Severity": "HIGH", "Title": "root user", "Status": "FAIL"},
                               {"ID": "DS026", "Severity": "LOW", "Title": "ok", "Status": "PASS"}]},
    ],
}  # fmt: skip


def test_plan_is_offline_and_skips_pseudo_filesystems() -> None:
    argv = trivy.plan("/opt/trivy", "rootfs", "/host/var/lib/docker/overlay2/x/diff", Path("/c"), vuln=False)
    for flag in ("--skip-db-update", "--skip-java-db-update", "--offline-scan", "--skip-check-update"):
        assert flag in argv
    assert argv[argv.index("--scanners") + 1] == "secret,misconfig"
    assert argv[argv.index("--skip-dirs") + 1] == "/proc,/sys,/dev"
    image = trivy.plan("/opt/trivy", "image", "/tmp/x.tar", Path("/db"), vuln=True)
    assert image[-2:] == ["--input", "/tmp/x.tar"] and "vuln,secret,misconfig" in image


def test_db_found_only_with_trivy_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIVY_CACHE_DIR", raising=False)
    missing = trivy.db_dir(None)
    assert isinstance(missing, NotAvailable) and "--trivy-cache" in missing.reason
    assert isinstance(trivy.db_dir(tmp_path), NotAvailable)
    (tmp_path / "db").mkdir()
    (tmp_path / "db/trivy.db").write_bytes(b"x")
    assert trivy.db_dir(tmp_path) == tmp_path
    monkeypatch.setenv("TRIVY_CACHE_DIR", str(tmp_path))
    assert trivy.db_dir(None) == tmp_path


def test_normalise_and_findings() -> None:
    items = trivy.normalise(RAW)
    assert [(i.kind, i.id) for i in items] == [("secret", "aws-access-key-id"), ("misconfig", "DS002"),
                                               ("vuln", "CVE-2024-0001"), ("vuln", "CVE-2024-0002")]  # fmt: skip
    vuln = next(i for i in items if i.id == "CVE-2024-0001")
    assert (vuln.package, vuln.installed, vuln.fixed, vuln.layer) == (
        "openssl",
        "3.0.1",
        "3.0.2",
        "sha256:" + "1" * 64,
    )
    report = trivy.TrivyReport("x", "image", "0.76.0", {}, items, [], 0, "", RAW)
    findings = {
        f.rule: f for f in trivy.trivy_findings(report, "image:sha256:abc", "scan.trivy", ("e.json",))
    }
    assert findings["trivy.secret.aws-access-key-id"].severity is Severity.CRITICAL
    assert "/app/creds:1" in findings["trivy.secret.aws-access-key-id"].details
    assert "fixed in 3.0.2" in findings["trivy.vuln.CVE-2024-0001"].details
    assert findings["trivy.vuln.CVE-2024-0002"].severity is Severity.INFO
    assert "trivy.misconfig.DS026" not in findings


def test_hostile_json_shapes_do_not_crash() -> None:
    assert trivy.normalise({"Results": ["x", {"Target": 1, "Secrets": [{}]}]})[0].kind == "secret"

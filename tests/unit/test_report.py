"""Reports rendered in the triage and again from the sealed archive agree; values are escaped."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from forensics.cli import main
from forensics.context import HostContext
from forensics.findings import Finding, Severity
from forensics.records import NotAvailable
from forensics.steps import Phase, Step, StepContext, TriageOptions
from forensics.triage import run_triage
from tests.unit.fakehost import fake_host

HOSTILE = '<script>alert("x")</script> | pipe'


def _plant(ctx: StepContext) -> None:
    ctx.sink.add_bytes("containers/abc/evidence.txt", b"x")
    ctx.report(Finding("test.hostile", Severity.HIGH, HOSTILE, "container:abc", ctx.step,
                       evidence=("containers/abc/evidence.txt",)))  # fmt: skip
    ctx.report(Finding("test.low", Severity.LOW, "a low one", "host", ctx.step))


def _triage(tmp_path: Path) -> Path:
    host = HostContext(fake_host(tmp_path), NotAvailable("test"), no_engine=True)
    plan = [Step("t.plant", Phase.PROCESSES, _plant)]
    return run_triage(
        host, tmp_path / "out", TriageOptions(case_id="R-1"), argv=["x"], steps=plan
    ).archive.path


def _member(archive: Path, name: str) -> str:
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.name.split("/", 1)[-1] == name:
                return tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    raise AssertionError(name)


def test_reports_in_the_archive(tmp_path: Path) -> None:
    archive = _triage(tmp_path)
    page = _member(archive, "report.html")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.index("Findings") < page.index("Steps")
    assert 'href="containers/abc/evidence.txt"' in page
    assert "http://" not in page and "https://" not in page.replace("https://json", "")
    md = _member(archive, "report.md")
    assert "\\| pipe" in md and "R-1" in md
    sarif = json.loads(_member(archive, "findings.sarif"))
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"]: r["level"] for r in results} == {"test.hostile": "error", "test.low": "note"}
    assert (
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "containers/abc/evidence.txt"
    )


def test_report_command_rerenders_the_same(tmp_path: Path) -> None:
    archive = _triage(tmp_path)
    out = tmp_path / "again"
    assert main(["report", str(archive), "--output", str(out)]) == 0
    assert (out / "report.html").read_text() == _member(archive, "report.html")
    assert (out / "report.md").read_text() == _member(archive, "report.md")
    assert main(["report", str(archive), "--output", str(out)]) == 2  # never overwrites

"""`forensics triage`: the flags reach the steps (through FORENSICS_* variables), and the terminal
summary shows counts, top findings, the archive and its SHA-256 with suspect text escaped."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from forensics import triage
from forensics.cli import main
from forensics.findings import Finding, Severity
from forensics.steps import Phase, Step, StepContext
from forensics.triage import run_triage
from tests.unit.fakehost import fake_host

VARS = ("FORENSICS_ALL_IMAGES", "FORENSICS_MONITOR_SECONDS", "FORENSICS_DUMP", "FORENSICS_DUMP_BUDGET_MB")


def _seen(ctx: StepContext) -> None:
    ctx.sink.add_json("seen.json", {name: os.environ.get(name) for name in VARS})
    ctx.report(Finding("t.markup", Severity.HIGH, "[bold red]planted[/] :skull: title", "host", ctx.step))


@pytest.fixture()
def only_our_step(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)  # restored (unset) when the test ends

    def plan(*args: Any, **kwargs: Any) -> Any:
        return run_triage(*args, **kwargs, steps=[Step("t.seen", Phase.SCANS, _seen)])

    # The CLI imports run_triage when the command runs (not at start-up), from this module.
    monkeypatch.setattr(triage, "run_triage", plan)


def _seen_in(archive: str) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar if m.name.endswith("/seen.json"))
        return json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]


def test_flags_reach_the_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_our_step: None
) -> None:
    root = fake_host(tmp_path)
    argv = ["triage", "--json", "--root", str(root), "--no-engine", "-o", str(tmp_path / "out"), "--all-images",
            "--monitor-seconds", "2.5", "--dump", "1234", "--dump", "web", "--dump-budget-mb", "64"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert _seen_in(result["archive"]) == {
        "FORENSICS_ALL_IMAGES": "1", "FORENSICS_MONITOR_SECONDS": "2.5",
        "FORENSICS_DUMP": "1234,web", "FORENSICS_DUMP_BUDGET_MB": "64",
    }  # fmt: skip


def test_without_flags_nothing_is_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_our_step: None
) -> None:
    root = fake_host(tmp_path)
    assert main(["triage", "--json", "--root", str(root), "--no-engine", "-o", str(tmp_path / "out")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _seen_in(result["archive"]) == dict.fromkeys(VARS)


def test_terminal_summary_escapes_suspect_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_our_step: None
) -> None:
    root = fake_host(tmp_path)
    assert main(["triage", "--root", str(root), "--no-engine", "-o", str(tmp_path / "out"),
                 "--monitor-seconds", "0"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "[bold red]planted[/] :skull: title" in captured.out
    assert "1 high" in captured.out and "triage complete" in captured.out
    archive = next((tmp_path / "out").glob("*.tar.gz"))
    assert f"archive {archive}" in captured.out.replace("\n", "")
    assert any(
        line.startswith("sha256  ") and len(line.split()[1]) == 64 for line in captured.out.splitlines()
    )
    # not a terminal: plain lines, the settings among them
    assert "FORENSICS_MONITOR_SECONDS=0" in captured.err and "t.seen" in captured.err

"""Session fixtures: the appliance image, the staged lab, one triage of it.

The lab is staged once per session (scripts/lab up) and removed afterwards (scripts/lab
down; FORENSICS_E2E_KEEP_LAB=1 keeps it for a look). The appliance runs once, between a
snapshot of every victim before and after it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import lab

TIMINGS: dict[str, float] = {}
"""Seconds per phase, shown at the end of the run (CI's time budget is watched)."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in TIMINGS.items())
        terminalreporter.write_line(f"e2e timings: {parts}")


@pytest.fixture(scope="session")
def appliance_image() -> str:
    """The appliance image's ID; built (scripts/build-image --if-changed) when missing.
    scripts/test has built it already in CI; scripts/triage also rebuilds it when its
    inputs changed."""
    probe = subprocess.run(["docker", "image", "inspect", lab.APPLIANCE_IMAGE], capture_output=True)
    if probe.returncode != 0:
        TIMINGS["image build"] = lab.run_script(
            [str(lab.BUILD_IMAGE), "--if-changed", "--tag", lab.APPLIANCE_IMAGE], timeout=3600
        )
    return lab.inspect(lab.APPLIANCE_IMAGE)["Id"]


@pytest.fixture(scope="session")
def lab_up(busybox_image: str) -> Iterator[dict[str, str]]:
    """The staged lab: victim name -> container id. (The victims are built FROM
    ``busybox_image``, which must exist.)"""
    if os.geteuid() != 0:
        pytest.skip("the e2e tests read var/lib/docker and run the appliance: they need root")
    TIMINGS["lab up"] = lab.run_script([str(lab.LAB_SCRIPT), "up"], timeout=900)
    try:
        yield lab.lab_victims()
    finally:
        if os.environ.get("FORENSICS_E2E_KEEP_LAB") != "1":
            TIMINGS["lab down"] = lab.run_script([str(lab.LAB_SCRIPT), "down"], timeout=300)


@dataclasses.dataclass(frozen=True)
class Triage:
    """One appliance run against the staged lab, and what it left."""

    run: lab.ApplianceRun
    image_id: str
    """The appliance image's ID (``docker image inspect``) right after the run
    (scripts/triage rebuilds the image first when its inputs changed)."""
    victims: dict[str, str]
    before: dict[str, lab.VictimSnapshot]
    after: dict[str, lab.VictimSnapshot]
    archive: Path
    top: Path
    """The archive unpacked: its one top directory."""


@pytest.fixture(scope="session")
def triage(appliance_image: str, lab_up: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Triage:
    output = tmp_path_factory.mktemp("e2e-evidence")
    before = lab.snapshot(lab_up)
    began = time.monotonic()
    run = lab.run_appliance(output, case_id="e2e-lab", timeout=1800)
    TIMINGS[f"appliance triage ({run.how})"] = time.monotonic() - began
    after = lab.snapshot(lab_up)
    image_id = lab.inspect(lab.APPLIANCE_IMAGE)["Id"]
    archives = sorted(output.glob("*.tar.gz"))
    assert len(archives) == 1, f"expected one archive in {output}: {sorted(p.name for p in output.iterdir())}"
    unpacked = tmp_path_factory.mktemp("e2e-unpacked")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(unpacked, filter="data")
    tops = list(unpacked.iterdir())
    assert len(tops) == 1 and tops[0].is_dir(), f"the archive must hold one top directory: {tops}"
    return Triage(run, image_id, lab_up, before, after, archives[0], tops[0])

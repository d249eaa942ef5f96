"""Containers that come and go while the triage runs: one removed after the engine listed
it, one removed while its file system is being read, one created half-way. The run ends,
the archive verifies, and churn is reported as such, not as a hidden container."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from forensics.context import HostContext
from forensics.evidence.verify import verify
from forensics.steps import Phase, Step, StepContext, TriageOptions
from forensics.triage import REGISTRY, load_steps, run_triage

pytestmark = [pytest.mark.docker, pytest.mark.root]


def _run(busybox: str, name: str) -> str:
    return subprocess.check_output(
        ["docker", "run", "-d", "--name", name, busybox, "sh", "-c", "echo x > /planted; sleep 600"],
        text=True,
    ).strip()


def _rm(cid: str) -> None:
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def test_containers_removed_and_added_during_triage(busybox_image: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("reading var/lib/docker needs root")
    early = _run(busybox_image, f"churn-early-{os.getpid()}")
    late = _run(busybox_image, f"churn-late-{os.getpid()}")
    born: list[str] = []

    def remove_early(ctx: StepContext) -> None:
        _rm(early)  # the engine has listed it; the disk will not have it

    def remove_late_and_add(ctx: StepContext) -> None:
        _rm(late)  # listed on both sides; gone before its files are read
        born.append(_run(busybox_image, f"churn-born-{os.getpid()}"))

    load_steps()

    def in_turn(name: str) -> Step:
        # The per-container steps may start as soon as containers.list ends; here each must
        # wait for every step before it in the plan, the churn step included.
        return dataclasses.replace(REGISTRY[name], after=None)

    plan = [
        REGISTRY["engine.info"],
        REGISTRY["engine.inventory"],
        Step("churn.remove-early", Phase.LIVE_STATE, remove_early),
        REGISTRY["disk.inventory"],
        REGISTRY["containers.list"],
        Step("churn.remove-late", Phase.FILESYSTEMS, remove_late_and_add),
        in_turn("containers.inspect"),
        in_turn("containers.logs"),
        in_turn("containers.diff"),
        in_turn("containers.extract"),
        in_turn("containers.compare"),
    ]
    try:
        host = HostContext.build(Path("/"), None, False)
        options = TriageOptions(containers=[early[:12], late[:12]])
        result = run_triage(host, tmp_path / "out", options, argv=["churn"], steps=plan)
    finally:
        for cid in (early, late, *born):
            _rm(cid)
    status = {o.name: o.status for o in result.outcomes}
    assert all(s == "ok" for s in status.values()), status
    assert verify(result.archive.path).intact
    by_subject = {f.subject: f for f in result.findings}
    churned = by_subject.get(f"container:{early}")
    assert churned is not None and churned.rule == "inventory.changed-during-triage", churned
    assert churned.severity.value == "info"
    assert not any(f.rule == "inventory.hidden-container" for f in result.findings)
    with tarfile.open(result.archive.path) as tar:
        log = next(m for m in tar if m.name.endswith("/acquisition.log"))
        events = [json.loads(line) for line in tar.extractfile(log).read().splitlines()]  # type: ignore[union-attr]
    warnings = [e for e in events if e["status"] == "warning" and late[:12] in json.dumps(e)]
    assert warnings, "reading the removed container's files should have left warnings"

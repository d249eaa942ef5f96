"""The process inventory against the real engine: a victim container with a dropped
binary and a miner-like argv is attributed, hashed and flagged; the triage step stores it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.context import HostContext
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.writer import EvidenceWriter, StepSink
from forensics.process.steps import process_list
from forensics.steps import StepContext, TriageOptions

pytestmark = [pytest.mark.docker, pytest.mark.root]

MINER_SCRIPT = (
    "cp /bin/busybox /tmp/sh && exec /tmp/sh -c 'sleep 600; true' x "
    "-o stratum+tcp://pool.invalid:3333 -u wallet --donate-level 1"
)


@pytest.fixture()
def miner(busybox_image: str) -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("reading var/lib/docker and /proc/<pid>/exe of other users needs root")
    name = f"fx-proc-miner-{os.getpid()}"
    cid = subprocess.check_output(["docker", "run", "-d", "--name", name, busybox_image, "sh", "-c",
                                   MINER_SCRIPT], text=True).strip()  # fmt: skip
    try:
        for _ in range(100):
            top = subprocess.run(["docker", "top", cid], capture_output=True, text=True).stdout
            if "stratum" in top:
                break
            time.sleep(0.1)
        yield cid, name
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def _victim(processes: list[dict], cid: str) -> dict:
    return next(p for p in processes if p["container"] and p["container"]["id"] == cid and "stratum" in
                " ".join(p["cmdline"]))  # fmt: skip


def test_list_attributes_hashes_and_flags(miner: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    cid, name = miner
    assert main(["process", "list", "--json", "--root", "/"]) == 0
    data = json.loads(capsys.readouterr().out)
    victim = _victim(data["processes"], cid)
    assert victim["container"] == {"id": cid, "name": name, "matched_by": "cgroup+namespaces"}
    assert victim["exe"] == "/tmp/sh" and victim["exe_origin"] == {"layer": "upper", "from_image": False}
    assert victim["exe_size"] > 100_000
    pid = victim["pid"]
    with open(f"/proc/{pid}/exe", "rb") as exe:
        assert hashlib.sha256(exe.read()).hexdigest() == victim["exe_sha256"]
    rules = {f["rule"] for f in data["findings"] if f["subject"] == f"process:{pid}"}
    assert {"process.exe-in-temp", "process.miner-argv", "process.exe-not-in-image"} <= rules
    assert os.getpid() in data["excluded"]
    assert all(p["pid"] != os.getpid() for p in data["processes"])


def test_step_stores_listing_and_registers_candidates(miner: tuple[str, str], tmp_path: Path) -> None:
    cid, _name = miner
    writer = EvidenceWriter(tmp_path / "ev")
    ctx = StepContext("process.list", HostContext.build(Path("/"), None, True), StepSink(writer, "process.list"),
                      AcquisitionLog(writer), TriageOptions(), {})  # fmt: skip
    process_list(ctx)
    stored = json.loads((tmp_path / "ev" / "processes" / "processes.json").read_text())
    pid = _victim(stored["processes"], cid)["pid"]
    assert any(f.rule == "process.miner-argv" and f.subject == f"process:{pid}" for f in ctx.findings)
    candidates = [c for c in ctx.state["binary_candidates"] if c.subject == f"process:{pid}"]
    assert [c.path for c in candidates] == [f"/proc/{pid}/exe"] and candidates[0].root is None
    assert pid in ctx.state["flagged_processes"]

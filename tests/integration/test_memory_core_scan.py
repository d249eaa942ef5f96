"""The triage's memory.dump step scans each core it stores: the shared secret rules and the
appliance's YARA rules, with offsets that point at the match in the stored core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from forensics.context import HostContext
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.writer import EvidenceWriter, StepSink
from forensics.memory.steps import memory_dump
from forensics.process.steps import process_list
from forensics.steps import StepContext, TriageOptions

pytestmark = [pytest.mark.docker, pytest.mark.root]

KEY = "AKIAFORENSICSCORE123"
POOL = "stratum+tcp://pool.invalid:3333"


@pytest.mark.skipif(os.geteuid() != 0, reason="gcore of another process needs ptrace rights; run as root")
def test_dumped_core_is_scanned_for_secrets_and_yara(busybox_image: str, tmp_path: Path) -> None:
    script = f"cp /bin/busybox /tmp/sh && exec /tmp/sh -c 'sleep 600; true' x -o {POOL} -u {KEY}"
    cid = subprocess.check_output(
        ["docker", "run", "-d", busybox_image, "sh", "-c", script], text=True
    ).strip()
    try:
        for _ in range(100):
            if "stratum" in subprocess.run(["docker", "top", cid], capture_output=True, text=True).stdout:
                break
            time.sleep(0.1)
        writer = EvidenceWriter(tmp_path / "ev")
        host = HostContext.build(Path("/"), None, True)
        state: dict = {}
        listing = StepContext("process.list", host, StepSink(writer, "process.list"), AcquisitionLog(writer),
                              TriageOptions(), state)  # fmt: skip
        process_list(listing)
        victim = next(p for p in state["processes"].processes if p.container and p.container.id == cid
                      and "stratum" in " ".join(p.cmdline))  # fmt: skip
        state["flagged_processes"] = {victim.pid: state["flagged_processes"][victim.pid]}
        ctx = StepContext("memory.dump", host, StepSink(writer, "memory.dump"), AcquisitionLog(writer),
                          TriageOptions(), state)  # fmt: skip
        memory_dump(ctx)
        pid = victim.pid
        base = tmp_path / "ev" / "memory" / str(pid)
        core = (base / f"core.{pid}").read_bytes()
        scan = json.loads((base / "scan.json").read_text())

        keys = [h for h in scan["secrets"] if h["rule"] == "aws-access-key-id"]
        assert keys and all(h["value"] == KEY for h in keys)
        for h in keys:  # the offset is where the stored core holds the value
            assert core[h["offset"] : h["offset"] + len(KEY)] == KEY.encode()
        assert any(h["mapping"] != "core metadata" and h["address"] for h in keys)

        by_rule = {f.rule: f for f in ctx.findings}
        secret = by_rule["memory.secret.aws-access-key-id"]
        assert secret.subject == f"process:{pid}" and KEY not in secret.title  # masked in findings
        assert f"memory/{pid}/core.{pid}" in secret.evidence

        if shutil.which("yara") is None:
            assert scan["yara_status"] == "skipped"
            return
        assert scan["yara_status"] == "ran", scan
        pools = [y for y in scan["yara"] if y["rule"] == "miner_stratum_pool"]
        assert pools
        for y in pools:
            assert core[y["offset"] : y["offset"] + len(POOL)] == POOL.encode()
        assert "memory.yara.miner_stratum_pool" in by_rule
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)

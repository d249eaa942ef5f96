"""The triage run natively as root against this host's real engine and disk."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from testcontainers.core.container import DockerContainer

from forensics.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.root]


def test_triage_collects_and_verifies(
    busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("reading var/lib/docker needs root")
    victim = DockerContainer(busybox_image).with_command("sleep 600")
    victim.start()
    try:
        cid = victim.get_wrapped_container().id
        before = json.loads(subprocess.check_output(["docker", "inspect", cid]))[0]["State"]
        code = main(["triage", "--root", "/", "--output", str(tmp_path), "--case-id", "IT-1",
                     "--examiner", "pytest", "--json"])  # fmt: skip
        summary = json.loads(capsys.readouterr().out)
        after = json.loads(subprocess.check_output(["docker", "inspect", cid]))[0]["State"]
    finally:
        victim.stop()
    assert code == 0 and summary["complete"] is True
    archive = Path(summary["archive"])
    assert archive.name.endswith(".tar.gz") and (archive.parent / (archive.name + ".sha256")).is_file()
    assert main(["evidence", "verify", str(archive)]) == 0
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    top = next(unpacked.iterdir())
    subprocess.run(["sha256sum", "-c", "--quiet", "--strict", "MANIFEST.sha256"], cwd=top, check=True)
    custody = json.loads((top / "custody.json").read_text())
    assert custody["case_id"] == "IT-1" and custody["examiner"] == "pytest"
    for key in ("hostname", "machine_id", "boot_id", "kernel", "docker_daemon_id"):
        assert isinstance(custody["host"][key], str) and custody["host"][key], key
    assert isinstance(custody["clock"]["offset_seconds"], float)
    assert (top / f"engine/containers/{cid}.json").is_file()
    assert (top / f"disk/containers/{cid}/config.v2.json").is_file()
    containers = {c["id"]: c for c in json.loads((top / "containers.json").read_text())}
    assert containers[cid]["source"] == "both"
    log = [json.loads(line) for line in (top / "acquisition.log").read_text().splitlines()]
    calls = next(e for e in log if e.get("message") == "engine API calls")
    assert calls["methods"] == ["GET"]
    # Read, don't touch: the victim ran on, undisturbed.
    assert before["Pid"] == after["Pid"] and after["Running"] and not after["Paused"]
    assert before["StartedAt"] == after["StartedAt"]

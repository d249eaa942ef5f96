"""containers.runtime on a real container: its processes and sockets, its volume's new files."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testcontainers.core.container import DockerContainer

from forensics.context import HostContext
from forensics.steps import REGISTRY, TriageOptions
from forensics.triage import load_steps, run_triage

pytestmark = [pytest.mark.docker, pytest.mark.root]

VOLUME = "forensics-test-runtime-volume"
SCRIPT = "echo planted > /data/new.txt; nc -l -p 8088 & echo READY; exec sleep 600"


@pytest.fixture()
def victim(busybox_image: str) -> Iterator[str]:
    container = DockerContainer(busybox_image).with_command(["sh", "-c", SCRIPT])
    container.with_volume_mapping(VOLUME, "/data", "rw")
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        deadline = time.monotonic() + 60
        while b"READY" not in wrapped.logs():
            if time.monotonic() > deadline:
                pytest.fail("victim did not get ready")
            time.sleep(0.2)
        time.sleep(0.5)  # nc is listening
        yield str(wrapped.id)
    finally:
        container.stop()
        subprocess.run(["docker", "volume", "rm", "-f", VOLUME], capture_output=True)


def test_runtime_view(victim: str, tmp_path: Path) -> None:
    load_steps()
    host = HostContext.build(Path("/"), None, False)
    steps = [REGISTRY[n] for n in ("process.list", "disk.inventory", "containers.runtime")]
    result = run_triage(
        host, tmp_path / "out", TriageOptions(containers=[victim[:12]]), argv=["t"], steps=steps
    )
    assert {o.name: o.status for o in result.outcomes}["containers.runtime"] == "ok"
    top = result.archive.path.name.removesuffix(".tar.gz")
    with tarfile.open(result.archive.path) as tar:
        member = tar.extractfile(f"{top}/containers/{victim}/runtime.json")
        assert member is not None
        runtime = json.load(member)
    argv = {" ".join(p["cmdline"]) for p in runtime["processes"]}
    assert "sleep 600" in argv and "nc -l -p 8088" in argv
    assert any(s["local"].endswith(":8088") and s["state"] == "LISTEN" for _pid, s in runtime["listening"])
    assert [m["destination"] for m in runtime["mounts"]] == ["/data"]
    (volume,) = runtime["volumes"]
    assert volume["volume"] == VOLUME and "/new.txt" in [f["path"] for f in volume["files"]]
    assert runtime["networks"][0]["name"] == "bridge" and runtime["networks"][0]["ip"]

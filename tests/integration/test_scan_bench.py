"""Docker Bench's runtime checks against real containers: a badly configured one, a hardened one."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from forensics.cli import app

pytestmark = pytest.mark.docker

BAD_FLAGS = ["-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "/etc:/host-etc:ro",
             "--cap-add", "NET_ADMIN", "--pid=host", "--ipc=host", "--uts=host", "--network=host",
             "--security-opt", "seccomp=unconfined", "--restart", "always"]  # fmt: skip
GOOD_FLAGS = ["--user", "1000:1000", "--memory", "64m", "--pids-limit", "50", "--read-only", "--cpu-shares", "512",
              "--security-opt", "no-new-privileges", "--restart", "on-failure:5", "--health-cmd", "true",
              "--health-interval", "30s"]  # fmt: skip
BAD_WARNS = {"5.3", "5.5", "5.9", "5.10", "5.12", "5.14", "5.15", "5.16", "5.20", "5.21", "5.25", "5.26",
             "5.28", "5.31", "4.1"}  # fmt: skip


def _run(image: str, flags: list[str]) -> str:
    name = f"fx-bench-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(["docker", "run", "-d", "--name", name, *flags, image, "sleep", "600"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture(scope="module")
def containers(busybox_image: str) -> Iterator[tuple[str, str]]:
    made: list[str] = []
    try:
        made.append(_run(busybox_image, BAD_FLAGS))
        made.append(_run(busybox_image, GOOD_FLAGS))
        yield made[0], made[1]
    finally:
        for cid in made:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def test_scan_host_flags_the_bad_container_only(containers: tuple[str, str]) -> None:
    bad, good = containers
    result = CliRunner().invoke(app, ["scan", "host", "--json", "--root", "/"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    statuses: dict[str, dict[str, str]] = {}
    for res in report["results"]:
        statuses.setdefault(res["subject"], {})[res["id"]] = res["status"]
    bad_s, good_s = statuses[f"container:{bad}"], statuses[f"container:{good}"]
    assert {k for k, v in bad_s.items() if v == "WARN"} >= BAD_WARNS
    assert all(good_s[k] == "PASS" for k in BAD_WARNS), {k: good_s[k] for k in BAD_WARNS}
    details = {r["id"]: r["details"] for r in report["results"] if r["subject"] == f"container:{bad}"}
    assert "NET_ADMIN" in details["5.3"]
    assert "/etc -> /host-etc (ro)" in details["5.5"]
    assert "docker.sock" in details["5.31"]
    host = statuses["host"]
    assert host["1.2.2"] == "INFO" and host["7.1"] in ("PASS", "WARN")

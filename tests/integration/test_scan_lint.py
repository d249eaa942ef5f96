"""dockle's checkpoints on real images built from busybox: one with every violation, one clean."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forensics.cli import app
from forensics.context import HostContext
from forensics.steps import REGISTRY, TriageOptions
from forensics.triage import load_steps, run_triage

pytestmark = [pytest.mark.docker, pytest.mark.root]

BAD = """FROM {base}
ENV PASSWORD=x GPG_KEY=allowed
ADD data.txt /app/data.txt
COPY id_rsa /root/.ssh/id_rsa
COPY sudo /usr/bin/sudo
RUN chmod 4755 /usr/bin/sudo && printf 'root:x:0:0::/root:/bin/sh\\nghost::0:0::/:/bin/sh\\n' > /etc/passwd \\
 && mkdir -p /var/lib/apt/lists && echo cache > /var/lib/apt/lists/deb_dists
"""
CLEAN = """FROM {base}
COPY data.txt /app/data.txt
USER 1000
HEALTHCHECK CMD ["true"]
"""
BAD_EXPECTED = {"CIS-DI-0001": "WARN", "CIS-DI-0008": "INFO", "CIS-DI-0009": "FATAL", "CIS-DI-0010": "FATAL",
                "DKL-DI-0001": "FATAL", "DKL-DI-0005": "FATAL", "DKL-DI-0006": "WARN", "DKL-LI-0001": "FATAL",
                "DKL-LI-0002": "FATAL", "CIS-DI-0006": "INFO"}  # fmt: skip


def _build(tmp: Path, dockerfile: str, tag: str) -> None:
    tmp.mkdir()
    (tmp / "Dockerfile").write_text(dockerfile)
    (tmp / "data.txt").write_text("data\n")
    (tmp / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n")
    (tmp / "sudo").write_text("#!/bin/sh\n")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run(["docker", "build", "-q", "-t", tag, str(tmp)], check=True, capture_output=True, env=env)


@pytest.fixture(scope="module")
def images(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    bad, clean = f"fx-lint-bad-{suffix}:latest", f"fx-lint-clean-{suffix}:1.0"
    base = tmp_path_factory.mktemp("lint")
    try:
        _build(base / "bad", BAD.format(base=busybox_image), bad)
        _build(base / "clean", CLEAN.format(base=busybox_image), clean)
        yield bad, clean
    finally:
        subprocess.run(["docker", "rmi", "-f", bad, clean], capture_output=True)


def _lint(image: str, *extra: str) -> dict[str, str]:
    result = CliRunner().invoke(app, ["scan", "lint", image, "--json", "--root", "/", *extra])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dockle"]["status"] == "skipped" and "not on PATH" in report["dockle"]["reason"]
    return {r["id"]: r["status"] for r in report["results"]}


def test_bad_image_flags_each_violation(images: tuple[str, str]) -> None:
    got = _lint(images[0])
    assert {k: got[k] for k in BAD_EXPECTED} == BAD_EXPECTED
    assert got["CIS-DI-0002"] == "SKIP"


def test_bad_image_from_disk_alone(images: tuple[str, str]) -> None:
    got = _lint(images[0], "--no-engine")
    assert {k: got[k] for k in BAD_EXPECTED} == BAD_EXPECTED


def test_clean_image_raises_none(images: tuple[str, str]) -> None:
    got = _lint(images[1])
    assert {k for k, v in got.items() if v in ("FATAL", "WARN")} == set()


def test_triage_step_lints_images_in_use(images: tuple[str, str], tmp_path: Path) -> None:
    name = f"fx-lint-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "create", "--name", name, images[0], "true"], check=True, capture_output=True)
    try:
        load_steps()
        steps = [REGISTRY["engine.inventory"], REGISTRY["scan.lint"]]
        host = HostContext.build(Path("/"), None, False)
        result = run_triage(host, tmp_path / "out", TriageOptions(), argv=["test"], steps=steps)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", images[0]], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    rules = {f.rule for f in result.findings if f.subject == f"image:{image_id}"}
    assert {"dockle.CIS-DI-0010", "dockle.DKL-LI-0001", "dockle.CIS-DI-0009"} <= rules
    evidence = {f.evidence for f in result.findings if f.rule == "dockle.CIS-DI-0010"}
    assert evidence == {(f"scan/lint/{image_id[7:]}.json",)}

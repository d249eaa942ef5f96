"""forensics image diff on two images the legacy builder made here: an added, a removed and a
modified file, an ENV change and a dpkg status entry change; A local, B local or a save tar."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.root]

DOCKERFILE = """FROM {busybox}
ENV MODE={mode}
RUN mkdir -p /var/lib/dpkg /etc/app && printf '{status}' > /var/lib/dpkg/status \\
 && echo keep > /etc/app/keep && {files}
"""
STATUS = "Package: foo\\nStatus: install ok installed\\nVersion: {v}\\n\\nPackage: bar\\nStatus: install ok installed\\nVersion: 2.0\\n"
FILES_A = "echo bye > /etc/app/gone && echo one > /etc/app/mod"
FILES_B = "echo twotwo > /etc/app/mod && echo new > /etc/app/new"


@pytest.fixture(scope="module")
def pair(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tags = (f"forensics-test/diff-a:{os.getpid()}", f"forensics-test/diff-b:{os.getpid()}")
    try:
        for tag, mode, version, files in ((tags[0], "a", "1.0", FILES_A), (tags[1], "b", "1.1", FILES_B)):
            context = tmp_path_factory.mktemp("diff")
            text = DOCKERFILE.format(
                busybox=busybox_image, mode=mode, status=STATUS.format(v=version), files=files
            )
            (context / "Dockerfile").write_text(text)
            subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True,
                           env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
        yield tags
    finally:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)


def _check(data: dict[str, object]) -> None:
    assert [e["path"] for e in data["added"]] == ["/etc/app/new"]  # type: ignore[index,union-attr]
    assert [e["path"] for e in data["deleted"]] == ["/etc/app/gone"]  # type: ignore[index,union-attr]
    mods = {m["path"]: m for m in data["modified"]}  # type: ignore[index,union-attr]
    assert set(mods) == {"/etc/app/mod", "/var/lib/dpkg/status"}
    assert (mods["/etc/app/mod"]["size1"], mods["/etc/app/mod"]["size2"]) == (4, 7)
    assert mods["/etc/app/mod"]["sha256_1"] != mods["/etc/app/mod"]["sha256_2"]
    env = next(f for f in data["metadata"] if f["field"] == "Env")  # type: ignore[union-attr,index]
    assert (env["added"], env["removed"]) == (["MODE=b"], ["MODE=a"])
    dpkg = next(p for p in data["packages"] if p["manager"] == "dpkg")  # type: ignore[union-attr,index]
    assert [(c["name"], c["version1"], c["version2"]) for c in dpkg["changed"]] == [("foo", "1.0", "1.1")]
    assert dpkg["added"] == [] and dpkg["removed"] == []
    assert len(data["history"]["adds"]) == 2 and len(data["history"]["dels"]) == 2  # type: ignore[index]
    layers = data["layers"]
    assert layers[0]["digest1"] == layers[0]["digest2"] and layers[1]["digest1"] != layers[1]["digest2"]  # type: ignore[index]


def test_two_local_images(pair: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "diff", pair[0], pair[1], "--json"]) == 0
    _check(json.loads(capsys.readouterr().out))


def test_local_baseline_against_a_saved_suspect(pair: tuple[str, str], capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    saved = tmp_path / "b.tar"
    subprocess.run(["docker", "save", "-o", str(saved), pair[1]], check=True)
    assert main(["image", "diff", pair[0], str(saved), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["image2"]["source"] == "docker-archive"
    _check(data)
    assert main(["image", "diff", pair[0], str(saved)]) == 0
    text = capsys.readouterr().out
    assert "  ~ /etc/app/mod  content  4B -> 7B" in text and "  Env: +MODE=b -MODE=a" in text

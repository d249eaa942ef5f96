"""forensics image dockerfile on images the legacy builder made here: FROM inferred from a
2-layer intermediate image, instructions as written, and unknown when no base is local."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.root]

BASE2 = """FROM {busybox}
RUN echo base > /base
"""
CHILD = """FROM {base2}
ARG VERSION=1.2
ENV APP=/app MODE=prod
WORKDIR /app
COPY a.txt /app/a.txt
RUN echo "$VERSION" > /v && mkdir -p /data && echo 'a && b' > /data/q
EXPOSE 8080
CMD ["-c", "sleep 1"]
"""


def _build(context: Path, tag: str, text: str) -> None:
    (context / "Dockerfile").write_text(text)
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip


@pytest.fixture(scope="module")
def images(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    context = tmp_path_factory.mktemp("dockerfile")
    (context / "a.txt").write_text("hello\n")
    tags = {
        "base2": f"forensics-test/df-base2:{os.getpid()}",
        "child": f"forensics-test/df-child:{os.getpid()}",
    }
    try:
        _build(context, tags["base2"], BASE2.format(busybox=busybox_image))
        _build(context, tags["child"], CHILD.format(base2=tags["base2"]))
        yield tags
    finally:
        subprocess.run(["docker", "rmi", "-f", tags["child"], tags["base2"]], capture_output=True)


def _dockerfile(ref: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["image", "dockerfile", ref, *extra]) == 0
    return capsys.readouterr().out


def test_child_is_from_the_two_layer_intermediate(
    images: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = _dockerfile(images["child"], capsys)
    body = text.split(f"FROM {images['base2']}\n", 1)[1]
    lines = [line for line in body.splitlines() if not line.startswith("#")]
    assert lines == ["ARG VERSION=1.2", "ENV APP=/app MODE=prod", "WORKDIR /app",
                     lines[3], 'RUN echo "$VERSION" > /v \\', "    && mkdir -p /data \\", "    && echo 'a && b' > /data/q",
                     "EXPOSE 8080", 'CMD ["-c", "sleep 1"]']  # fmt: skip
    assert lines[3].startswith("COPY file:") and lines[3].endswith(" /app/a.txt")
    assert "echo base" not in body  # the base's own RUN is left out
    data = json.loads(_dockerfile(images["child"], capsys, "--json"))
    copy = next(i for i in data["instructions"] if i["keyword"] == "COPY")
    assert f"# layer {copy['layer_index']}: {copy['layer_digest']}" in text
    assert copy["layer_index"] == 3  # busybox, base2's RUN, WORKDIR, then COPY
    assert data["base"]["layers"] == 2 and data["base"]["history_matches"]


def test_base2_is_from_busybox(
    images: dict[str, str], busybox_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _dockerfile(images["base2"], capsys)
    assert text.endswith(f"FROM {busybox_image}\nRUN echo base > /base\n")


def test_a_saved_tar_with_no_local_base_has_an_unknown_base(
    images: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saved = tmp_path / "busybox.tar"
    subprocess.run(["docker", "save", "-o", str(saved), "forensics-test/busybox:latest"], check=True)
    text = _dockerfile(str(saved), capsys)
    assert "# base image unknown" in text and "# FROM <unknown>" in text

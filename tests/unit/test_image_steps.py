"""The images.analyse triage step on a fake host: layer dirs built under tmp_path, what it
stores per image, its findings, our own image left out, and FORENSICS_ALL_IMAGES=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forensics.context import HostContext
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.writer import EvidenceWriter, StepSink
from forensics.host.appliance import SelfView
from forensics.host.disk import DockerDisk
from forensics.images import analysis
from forensics.images.steps import ALL_IMAGES_ENV, images_analyse
from forensics.records import NotAvailable
from forensics.steps import StepContext, TriageOptions
from tests.unit.fakehost import Layer, add_container, add_layered_image, fake_host, hexid

BASE: Layer = {"bin": None, "bin/sh": b"\x7fELF not really"}
VICTIM: list[Layer] = [
    BASE,
    {"app": None, "app/config": b"key_id = AKIAIOSFODNN7EXAMPLE\n",
     "root": None, "root/.ssh": None, "root/.ssh/id_rsa": b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"},
    {"app": None, "app/run.sh": b"#!/bin/sh\n"},
]  # fmt: skip


@pytest.fixture
def host(tmp_path: Path) -> dict[str, object]:
    root = fake_host(tmp_path)
    base = add_layered_image(root, "base", "base:1", [BASE], ["/bin/sh -c #(nop) ADD file:x in / "])
    victim = add_layered_image(root, "victim", "victim:2", VICTIM,
                               ["/bin/sh -c #(nop) ADD file:x in / ", "/bin/sh -c mkdir /app && echo k > /app/config",
                                "COPY run.sh /app/run.sh # buildkit"])  # fmt: skip
    own = add_layered_image(root, "appliance", "forensic-container:latest", [BASE, {"opt": None}],
                            ["/bin/sh -c #(nop) ADD file:x in / ", "RUN /bin/sh -c mkdir /opt # buildkit"])  # fmt: skip
    unused = add_layered_image(root, "unused", "unused:1", [BASE, {"u": b"u"}],
                               ["/bin/sh -c #(nop) ADD file:x in / ", "/bin/sh -c echo u > /u"])  # fmt: skip
    add_container(root, "web", "web", Image=victim)
    me = add_container(root, "me", "forensics", Image=own)
    return {"root": root, "base": base, "victim": victim, "own": own, "unused": unused, "me": me}


def _run(tmp_path: Path, host: dict[str, object]) -> tuple[StepContext, EvidenceWriter]:
    root = host["root"]
    assert isinstance(root, Path)
    writer = EvidenceWriter(tmp_path / "out")
    context = HostContext(root, NotAvailable("test: no engine"), no_engine=True)
    state: dict[str, object] = {
        "disk_inventory": DockerDisk(str(root)).inventory(),
        "self": SelfView(True, str(host["me"]), str(host["own"]), True),
    }
    ctx = StepContext("images.analyse", context, StepSink(writer, "images.analyse"), AcquisitionLog(writer),
                      TriageOptions(), state)  # fmt: skip
    images_analyse(ctx)
    return ctx, writer


def _stored(writer: EvidenceWriter) -> set[str]:
    return {f.path.split("/")[1] for f in writer.files() if f.path.startswith("images/")}


def test_used_images_are_analysed_and_ours_is_left_out(
    tmp_path: Path, host: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALL_IMAGES_ENV, raising=False)
    ctx, writer = _run(tmp_path, host)
    victim = str(host["victim"])[7:]
    # fake_host's own "victim:latest" image is used by no container; the appliance's is ours.
    assert _stored(writer) == {victim}
    names = {f.path for f in writer.files()}
    base = f"images/{victim}"
    assert {f"{base}/{n}" for n in ("config.json", "history.json", "Dockerfile", "dockerfile.json", "layers.json",
                                    "efficiency.json", "checks.json", "search.json")} <= names  # fmt: skip
    dockerfile = (writer.top / base / "Dockerfile").read_text()
    assert "FROM base:1\n" in dockerfile and "RUN mkdir /app \\\n    && echo k > /app/config" in dockerfile
    assert "COPY run.sh /app/run.sh" in dockerfile
    layers = json.loads((writer.top / base / "layers.json").read_text())
    assert [sorted(p["path"] for p in layer["added"]) for layer in layers][2] == ["/app/run.sh"]
    checks = json.loads((writer.top / base / "checks.json").read_text())
    assert len(checks) == 4 and all(c["actual"] == c["expected"] for c in checks)
    search = json.loads((writer.top / base / "search.json").read_text())
    assert {(h["kind"], h["path"]) for h in search} >= {
        ("name", "/root/.ssh/id_rsa"),
        ("content", "/app/config"),
    }
    subjects = {f.subject for f in ctx.findings}
    assert subjects == {f"image:{victim}"}
    assert any(f.rule == "image.secret-content" for f in ctx.findings)
    assert all(f.evidence == (f"{base}/search.json",) for f in ctx.findings)


def test_all_images_from_the_environment(
    tmp_path: Path, host: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALL_IMAGES_ENV, "1")
    ctx, writer = _run(tmp_path, host)
    stored = _stored(writer)
    assert {str(host[k])[7:] for k in ("victim", "base", "unused")} <= stored
    assert str(host["own"])[7:] not in stored
    # fake_host's plain image has a diff_id but no layer dirs: a warning, and the run goes on.
    assert hexid("image") in stored
    warnings = [e["message"] for e in ctx.log.events if e["status"] == "warning"]
    assert any("no valid cache-id" in w for w in warnings)
    unused = (writer.top / f"images/{str(host['unused'])[7:]}" / "Dockerfile").read_text()
    assert "FROM base:1\nRUN echo u > /u\n" in unused
    assert os.environ[ALL_IMAGES_ENV] == "1"


def test_a_shared_layer_is_read_once_and_stored_as_if_read_for_each_image(
    tmp_path: Path, host: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALL_IMAGES_ENV, "1")
    ctx, writer = _run(tmp_path / "shared", host)
    [event] = [e for e in ctx.log.events if e.get("message") == "image layers"]
    # base, victim and unused share BASE's layer dir: read for the first, reused by the others.
    assert event["layers_shared"] == 2
    # BASE, victim's two, unused's one (fake_host's plain image has no layer dirs)
    assert event["layers_read"] == 1 + 2 + 1

    class NoSharing(analysis.LayerCache):
        def keep(self, identity: str, options: analysis.ScanOptions, value: analysis._LayerRead) -> None:
            pass

    monkeypatch.setattr(analysis, "LayerCache", NoSharing)
    alone, alone_writer = _run(tmp_path / "alone", host)
    [event] = [e for e in alone.log.events if e.get("message") == "image layers"]
    assert (event["layers_shared"], event["layers_read"]) == (0, 6)
    stored = {f.path: f.sha256 for f in writer.files() if f.path.startswith("images/")}
    assert stored == {f.path: f.sha256 for f in alone_writer.files() if f.path.startswith("images/")}
    assert len(stored) >= 4 * 8


def test_layer_cache_keeps_a_layer_only_while_a_later_scan_wants_it() -> None:
    options = analysis.ScanOptions()
    cache = analysis.LayerCache(["a", "a", "a", "b"])
    read: analysis._LayerRead = ([], [], "sha256:x")
    assert cache.take("b", options) is None
    cache.keep("b", options, read)  # no later use: not kept
    assert cache.take("a", options) is None
    cache.keep("a", options, read)
    other = analysis.ScanOptions(search=False)
    assert cache.take("a", other) is None  # read with other options: not the same
    assert cache.take("a", options) is read
    assert cache._kept == {}  # its last use took it
    assert (cache.read, cache.reused) == (3, 1)

"""The container triage steps on a fake host: per-container isolation, selection, evidence paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forensics.containers import steps
from forensics.context import HostContext
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.writer import EvidenceWriter, StepSink
from forensics.host.appliance import SelfView
from forensics.records import NotAvailable
from forensics.steps import StepContext, TriageOptions
from tests.unit.test_container_diff import DOCKER, Overlay, build, same_meta

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: overlay fixtures")


@pytest.fixture()
def two(tmp_path: Path) -> tuple[Overlay, Overlay]:
    good = build(tmp_path, "good", "good")
    (good.upper / "etc").mkdir()
    same_meta(good.init / "etc", good.upper / "etc")
    (good.upper / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nx:x:0:0::/:/bin/sh\n")
    (good.upper / "dropped").write_bytes(b"\x7fELF" + b"\0" * 12)
    log_dir = good.root / DOCKER / "containers" / good.cid
    (log_dir / f"{good.cid}-json.log").write_text('{"log":"hello\\n","stream":"stdout"}\n')
    bad = build(tmp_path, "bad", "bad")
    (bad.root / DOCKER / "image/overlay2/layerdb/mounts" / bad.cid / "mount-id").write_text("../../../../etc")
    return good, bad


class Run:
    def __init__(self, tmp_path: Path, root: Path, options: TriageOptions, me: str | None = None) -> None:
        self.writer = EvidenceWriter(tmp_path / "evidence")
        self.log = AcquisitionLog(self.writer)
        self.host = HostContext(root, NotAvailable("test: no engine"), no_engine=True)
        self.options = options
        view = SelfView(me is not None, me or NotAvailable("not in a container"), NotAvailable("x"), True)
        self.state: dict[str, object] = {"self": view}
        self.findings: list = []

    def step(self, name: str, fn: object) -> StepContext:
        ctx = StepContext(name, self.host, StepSink(self.writer, name), self.log, self.options, self.state)
        fn(ctx)  # type: ignore[operator]
        self.findings += ctx.findings
        return ctx

    def all(self) -> None:
        for name in ("containers.inspect", "containers.logs", "containers.diff", "containers.extract",
                     "containers.compare"):  # fmt: skip
            self.step(name, getattr(steps, name.replace("containers.", "containers_")))

    def warnings(self) -> list[str]:
        return [e["message"] for e in self.log.events if e["status"] == "warning"]

    def json(self, name: str) -> dict:
        return json.loads((self.writer.top / name).read_text())


def test_one_bad_container_is_a_warning_and_the_rest_go_on(
    two: tuple[Overlay, Overlay], tmp_path: Path
) -> None:
    good, bad = two
    run = Run(tmp_path, good.root, TriageOptions())
    run.all()
    base = f"containers/{good.cid}"
    diff = run.json(f"{base}/diff.json")
    assert {(c["kind"], c["path"]) for c in diff["changes"]} == {("C", "/etc"), ("C", "/etc/passwd"),
                                                                ("A", "/dropped")}  # fmt: skip
    files = {f["path"]: f for f in run.json(f"{base}/files.json")["files"]}
    assert (run.writer.top / files["/dropped"]["archive_name"]).read_bytes().startswith(b"\x7fELF")
    assert (run.writer.top / f"{base}/compare/etc/passwd.json").is_file()
    assert (run.writer.top / f"{base}/compare/etc/passwd.diff").read_text().count("+x:x:0:0") == 1
    assert (run.writer.top / f"{base}/{good.cid}-json.log").read_text().startswith('{"log":"hello')
    inspect = run.json(f"{base}/inspect.json")
    assert inspect["api"] == {"not_available": "test: no engine"}
    assert not (run.writer.top / f"containers/{bad.cid}/diff.json").exists()
    assert any(bad.cid[:12] in w and "diff" in w for w in run.warnings())
    rules = {f.rule for f in run.findings}
    assert {"container.accounts.uid-0", "container.accounts.files", "container.exec.elf"} <= rules


def test_selection_by_name_and_our_own_container_left_out(
    two: tuple[Overlay, Overlay], tmp_path: Path
) -> None:
    good, bad = two
    run = Run(tmp_path, good.root, TriageOptions(containers=["good", "bad", "ghost"]), me=bad.cid)
    assert [c.id for c in steps.selected(run.step("containers.list", lambda ctx: None))] == [good.cid]
    assert any("'ghost'" in w for w in run.warnings())


def test_inspect_differences_name_the_setting() -> None:
    disk = {"Config": {"Image": "nginx", "Cmd": ["nginx"]}}
    host = {"Privileged": False, "CapAdd": None}
    api = {"Config": {"Image": "nginx", "Cmd": ["nginx"]}, "HostConfig": {"Privileged": True, "CapAdd": None}}
    assert steps.inspect_differences(disk, host, api) == ["HostConfig.Privileged: disk 'False', API 'True'"]
    api["HostConfig"]["Privileged"] = False  # type: ignore[index]
    assert steps.inspect_differences(disk, host, api) == []

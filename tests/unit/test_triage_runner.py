"""The runner: needs checked as data, failures and timeouts recorded, the run goes on."""

from __future__ import annotations

import json
import pkgutil
import tarfile
import threading
import time
from pathlib import Path

import pytest

import forensics
from forensics.context import HostContext
from forensics.evidence.verify import verify
from forensics.findings import Finding, Severity
from forensics.records import NotAvailable
from forensics.steps import REGISTRY, Need, Phase, Step, StepContext, TriageOptions, register
from forensics.triage import STEP_MODULES, load_steps, run_triage
from tests.unit.fakehost import add_container, fake_host


def _host(root: Path) -> HostContext:
    return HostContext(root, NotAvailable("test: no engine"), no_engine=True)


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar
            if m.isfile()
        }


def test_every_step_module_is_loaded() -> None:
    on_disk = {
        m.name
        for m in pkgutil.walk_packages(forensics.__path__, "forensics.")
        if m.name.endswith(".steps") and m.name != "forensics.steps"
    }
    assert on_disk == set(STEP_MODULES)
    steps = load_steps()
    assert [s.phase for s in steps] == sorted(s.phase for s in steps)


def test_duplicate_step_is_refused() -> None:
    load_steps()
    with pytest.raises(ValueError):
        register(REGISTRY["host.facts"])


def test_failure_timeout_and_skip_are_recorded(tmp_path: Path) -> None:
    root = fake_host(tmp_path)

    def boom(ctx: StepContext) -> None:
        ctx.sink.add_bytes("boom/partial.txt", b"written before the failure")
        raise RuntimeError("broken host")

    def slow(ctx: StepContext) -> None:
        time.sleep(3)
        ctx.sink.add_bytes("slow/late.txt", b"too late")

    def fine(ctx: StepContext) -> None:
        ctx.report(Finding("test.rule", Severity.MEDIUM, "a finding", "host", ctx.step))
        ctx.sink.add_json("fine/out.json", {"ok": True})

    plan = [
        Step("t.boom", Phase.PROCESSES, boom),
        Step("t.slow", Phase.MEMORY, slow, timeout=0.5),
        Step("t.engine", Phase.LIVE_STATE, fine, frozenset({Need.ENGINE})),
        Step("t.fine", Phase.IMAGES, fine),
    ]
    result = run_triage(_host(root), tmp_path / "out", TriageOptions(case_id="C-1"), argv=["x"], steps=plan)
    status = {o.name: o.status for o in result.outcomes}
    assert status == {"t.boom": "failed", "t.slow": "timeout", "t.engine": "skipped", "t.fine": "ok"}
    assert not result.complete
    time.sleep(3)  # let the abandoned step try to write
    assert verify(result.archive.path).intact
    files = _members(result.archive.path)
    assert "boom/partial.txt" in files and "slow/late.txt" not in files
    custody = json.loads(files["custody.json"])
    assert custody["complete"] is False and custody["not_done"] == ["t.slow"]
    assert custody["case_id"] == "C-1"
    log = [json.loads(line) for line in files["acquisition.log"].splitlines()]
    skipped = next(e for e in log if e["step"] == "t.engine" and e["status"] == "skipped")
    assert "no Engine API" in skipped["reason"]
    failed = next(e for e in log if e["step"] == "t.boom" and e["status"] == "failed")
    assert "broken host" in failed["error"]
    findings = json.loads(files["findings.json"])
    assert findings["count"] == 1 and findings["findings"][0]["severity"] == "medium"


def test_offline_triage_of_a_disk_image(tmp_path: Path) -> None:
    """--root on a mounted image with no engine: the real steps run from disk alone."""
    root = fake_host(tmp_path)
    cid = add_container(root, "web", "web")
    result = run_triage(_host(root), tmp_path / "out", TriageOptions(), argv=["x"])
    status = {o.name: o.status for o in result.outcomes}
    assert status["engine.info"] == "skipped" and status["engine.inventory"] == "skipped"
    assert status["disk.inventory"] == "ok" and status["containers.list"] == "ok"
    assert result.complete
    assert result.archive.path.name.startswith("forensics-victim-host-")
    files = _members(result.archive.path)
    containers = json.loads(files["containers.json"])
    assert [(c["id"], c["source"]) for c in containers] == [(cid, "disk")]
    assert f"disk/containers/{cid}/config.v2.json" in files
    custody = json.loads(files["custody.json"])
    assert custody["host"]["machine_id"] == "0123456789abcdef0123456789abcdef"
    assert custody["host"]["boot_id"] == {
        "not_available": f"{root} is not the running system: no live processes"
    }


def test_only_skip_and_budget(tmp_path: Path) -> None:
    root = fake_host(tmp_path)

    def nap(ctx: StepContext) -> None:
        time.sleep(1.5)

    def fine(ctx: StepContext) -> None:
        pass

    plan = [
        Step("a.one", Phase.PROCESSES, fine),
        Step("a.two", Phase.PROCESSES, nap),
        Step("b.one", Phase.MEMORY, fine),
        Step("c.one", Phase.IMAGES, fine),
    ]
    options = TriageOptions(only=["a", "c.one"], skip=["a.one"])
    result = run_triage(_host(root), tmp_path / "o1", options, argv=["x"], steps=plan)
    assert [o.name for o in result.outcomes] == ["a.two", "c.one"] and result.complete

    options = TriageOptions(budget=0.5)
    result = run_triage(_host(root), tmp_path / "o2", options, argv=["x"], steps=plan)
    status = {o.name: o.status for o in result.outcomes}
    assert status == {"a.one": "ok", "a.two": "timeout", "b.one": "not-run", "c.one": "not-run"}
    assert not result.complete and verify(result.archive.path).intact


def test_independent_steps_run_side_by_side(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    handshake = threading.Event()
    order: list[str] = []

    def waiter(ctx: StepContext) -> None:
        # Only a step running at the same time can set this; run alone, it fails.
        if not handshake.wait(10):
            raise RuntimeError("ran alone")
        order.append("waiter")

    def setter(ctx: StepContext) -> None:
        handshake.set()
        order.append("setter")

    def last(ctx: StepContext) -> None:
        order.append("last")

    plan = [
        Step("p.waiter", Phase.FILESYSTEMS, waiter, after=()),
        Step("p.setter", Phase.FILESYSTEMS, setter, after=()),
        Step("p.last", Phase.FILESYSTEMS, last),
    ]
    result = run_triage(_host(root), tmp_path / "out", TriageOptions(), argv=["x"], steps=plan)
    assert {o.name: o.status for o in result.outcomes} == {"p.waiter": "ok", "p.setter": "ok", "p.last": "ok"}
    assert order[-1] == "last"


def test_signals_wait_while_the_archive_is_sealed() -> None:
    import os
    import signal

    from forensics.triage import _defer, _on_signals

    before = signal.getsignal(signal.SIGTERM)
    with _on_signals(_defer):
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process if obeyed
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt if obeyed
        time.sleep(0.1)
    assert signal.getsignal(signal.SIGTERM) is before

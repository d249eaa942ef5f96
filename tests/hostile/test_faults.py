"""Faults around a triage: a full output file system, SIGTERM, a dead engine, a hanging tool,
FIFOs where files should be. Each ends in a recorded error and an archive that never claims
more than it holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from forensics import tools, triage
from forensics.cli import main
from forensics.context import HostContext
from forensics.errors import EnvironmentProblem
from forensics.records import NotAvailable
from forensics.steps import Phase, Step, StepContext, TriageOptions
from forensics.triage import REGISTRY, load_steps, run_triage
from tests.hostile.harness import guarded
from tests.unit.fakehost import add_container, fake_host

FORENSICS = str(Path(sys.executable).with_name("forensics"))


def _real(*names: str) -> list[Step]:
    load_steps()
    return [REGISTRY[n] for n in names]


def _filler(size: int, incompressible: bool) -> Step:
    def run(ctx: StepContext) -> None:
        chunk = os.urandom(1 << 16) if incompressible else b"\0" * (1 << 16)
        ctx.sink.add_stream("filler/blob", (chunk for _ in range(size >> 16)))

    return Step("test.filler", Phase.FILESYSTEMS, run, description="writes filler evidence")


def _archive_custody(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/custody.json"))
        handle = tar.extractfile(member)
        assert handle is not None
        return json.loads(handle.read())


@pytest.fixture
def small_fs(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.root
@pytest.mark.parametrize("fill", ["during-steps", "while-sealing"])
def test_a_full_output_fs_leaves_an_incomplete_staging_dir_never_a_complete_archive(
    tmp_path: Path, small_fs: Path, fill: str
) -> None:
    root = fake_host(tmp_path)
    host = HostContext(root, NotAvailable("test: no engine"), no_engine=True)
    # 4 MiB of zeros fill nothing once compressed but overflow the staging dir; 1.2 MiB of
    # random bytes fit the staging dir, and then the archive beside it does not.
    filler = _filler(4 << 20, False) if fill == "during-steps" else _filler(1200 << 10, True)
    with pytest.raises(EnvironmentProblem) as caught:
        guarded(lambda: run_triage(host, small_fs, TriageOptions(), argv=["test"],
                                   steps=[*_real("host.facts"), filler]), fill)  # fmt: skip
    message = str(caught.value)
    assert "writing the evidence failed" in message and "No space left" in message
    assert not list(small_fs.glob("*.tar.gz")) and not list(small_fs.glob("*.partial"))
    staging = [p for p in small_fs.iterdir() if p.is_dir()]
    assert len(staging) == 1, list(small_fs.iterdir())
    custody = staging[0] / "custody.json"
    if custody.exists():
        record = json.loads(custody.read_text())
        assert record["complete"] is False and "evidence-writes" in record["not_done"]
    else:
        assert "could not be written" in message


@pytest.mark.root
def test_the_cli_exits_3_with_a_message_when_the_output_fills(
    tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fake_host(tmp_path)
    monkeypatch.setattr(triage, "load_steps", lambda: [*_real("host.facts"), _filler(4 << 20, False)])
    code = main(["triage", "--root", str(root), "--no-engine", "-o", str(small_fs)])
    assert code == 3
    err = capsys.readouterr().err
    assert "writing the evidence failed" in err and "hint:" in err


@pytest.mark.root
def test_sigterm_mid_run_seals_an_incomplete_archive(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "FORENSICS_MONITOR_SECONDS": "30"}
    proc = subprocess.Popen([FORENSICS, "triage", "--root", "/", "--no-engine", "--only", "process.monitor",
                             "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        for _ in range(600):
            logs = list(out.glob("forensics-*/acquisition.log"))
            if logs and '"step": "process.monitor", "status": "started"' in logs[0].read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("process.monitor never started")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err.decode(errors="replace")
    archives = list(out.glob("*.tar.gz"))
    assert len(archives) == 1
    custody = _archive_custody(archives[0])
    assert custody["complete"] is False and "process.monitor" in custody["not_done"]
    assert main(["evidence", "verify", str(archives[0])]) == 0


def test_a_dead_engine_socket_is_recorded_and_the_disk_is_still_read(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    add_container(root, "web", "web")
    dead = tmp_path / "dead.sock"
    host = HostContext(root, f"unix://{dead}")
    result = guarded(lambda: run_triage(host, tmp_path / "out", TriageOptions(), argv=["test"],
                                        steps=_real("engine.info", "host.facts", "disk.inventory",
                                                    "containers.list")), "dead engine")  # fmt: skip
    assert result.complete
    status = {o.name: o.status for o in result.outcomes}
    assert status["engine.info"] == "skipped" and status["containers.list"] == "ok"
    assert "no Engine API" in next(o.message for o in result.outcomes if o.name == "engine.info")
    custody = _archive_custody(result.archive.path)
    assert custody["options"]["docker_host"] == f"unix://{dead}"
    with tarfile.open(result.archive.path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/acquisition.log"))
        handle = tar.extractfile(member)
        assert handle is not None
        log = [json.loads(line) for line in handle.read().splitlines()]
    assert any(
        e["step"] == "engine.info" and e["status"] == "skipped" and "dead.sock" in e["reason"] for e in log
    )


def test_a_hanging_tool_is_killed_at_its_timeout_with_its_children(tmp_path: Path) -> None:
    tool = tmp_path / "bin/hang"
    tool.parent.mkdir()
    # A child in its own session keeps stdout open after the group is killed.
    pidfile = tmp_path / "child.pid"
    tool.write_text(f"#!/bin/sh\nsetsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &\nsleep 1000\n")
    tool.chmod(0o755)
    run = guarded(lambda: tools.run([str(tool)], timeout=1), "hanging tool")
    assert run.timed_out and run.returncode is None and "timed out" in run.describe()
    os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the escaped child this test started


def test_a_missing_tool_is_an_error_not_an_exception(tmp_path: Path) -> None:
    run = tools.run([str(tmp_path / "nope")], timeout=5)
    assert run.returncode is None and "could not start" in run.error


def test_fifos_where_files_should_be_never_block(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    cid = add_container(root, "web", "web")
    for rel in ("etc/hostname", "etc/machine-id", "etc/os-release"):
        (root / rel).unlink()
        os.mkfifo(root / rel)
    config = root / "var/lib/docker/containers" / cid / "hostconfig.json"
    config.unlink()
    os.mkfifo(config)
    host = HostContext(root, NotAvailable("test: no engine"), no_engine=True)
    result = guarded(lambda: run_triage(host, tmp_path / "out", TriageOptions(), argv=["test"],
                                        steps=_real("host.facts", "disk.inventory", "containers.list",
                                                    "containers.inspect")), "fifos")  # fmt: skip
    assert result.complete
    assert main(["evidence", "verify", str(result.archive.path)]) == 0

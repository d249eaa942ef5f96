"""strace capture of a test child: sealed into an archive, detached cleanly, the child unharmed."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.process.trace import ptrace_problem

pytestmark = [pytest.mark.root]


def test_trace_captures_and_detaches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("ptrace of a child works as any user, but the host's scope may forbid it; run as root")
    child = subprocess.Popen(["sh", "-c", "while :; do sleep 0.2; done"])
    try:
        assert main(["process", "trace", str(child.pid), "--duration", "2", "--output", str(tmp_path),
                     "--json", "--root", "/"]) == 0  # fmt: skip
        answer = json.loads(capsys.readouterr().out)
        assert answer["trace"]["ended_by"] == "duration"
        assert child.poll() is None  # still running after the detach
        status = Path(f"/proc/{child.pid}/status").read_text()
        assert "TracerPid:\t0" in status
        with tarfile.open(answer["archive"]["path"]) as tar:
            names = tar.getnames()
            member = next(n for n in names if n.endswith(f"strace/{child.pid}.txt"))
            text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
            assert any(n.endswith("MANIFEST.sha256") for n in names)
        assert "wait4" in text or "clone" in text or "execve" in text
    finally:
        child.kill()
        child.wait()


def test_missing_process_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(["process", "trace", "999999999", "--duration", "1", "--output", str(tmp_path), "--root", "/"])
        == 2
    )
    assert "no process" in capsys.readouterr().err


def test_ptrace_problems_on_a_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text("Name:\tx\nTracerPid:\t55\nUid:\t0\t0\t0\t0\n")
    assert "already traced by pid 55" in (ptrace_problem(str(tmp_path), 7) or "")
    (tmp_path / "7" / "status").write_text("Name:\tx\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n")
    (tmp_path / "sys" / "kernel" / "yama").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "yama" / "ptrace_scope").write_text("3\n")
    assert "ptrace_scope=3" in (ptrace_problem(str(tmp_path), 7) or "")

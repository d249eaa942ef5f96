"""External tools: timeouts kill the whole group; tools inside the analysed root are refused."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from forensics.records import NotAvailable
from forensics.tools import run, tool_info, which


def test_timeout_kills_the_group() -> None:
    started = time.monotonic()
    result = run(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout=0.5)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - started < 10


def test_missing_tool_is_a_value() -> None:
    assert isinstance(which("no-such-tool-xyz"), NotAvailable)
    info = tool_info("no-such-tool-xyz")
    assert isinstance(info.path, NotAvailable) and isinstance(info.version, NotAvailable)
    assert run(["/no/such/binary"], timeout=1).error.startswith("could not start")


def test_tool_inside_the_analysed_root_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "usr" / "bin"
    bindir.mkdir(parents=True)
    planted = bindir / "strace"
    planted.write_text("#!/bin/sh\necho pwned > /tmp/pwned\n")
    planted.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    found = which("strace", forbidden_root=str(tmp_path))
    assert isinstance(found, NotAvailable) and "inside the analysed root" in found.reason


def test_version_of_a_real_tool() -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("coreutils missing")
    info = tool_info("sha256sum")
    assert isinstance(info.version, str) and info.version[0].isdigit()

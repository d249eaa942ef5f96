"""radare2 beside the native triage.

r2 is not installed on the development machine and no fake r2 is put on PATH: these tests
cover what can be checked without it (the skip, our worker process and its protocol, the
time-limit path). ``test_radare2_agrees_with_native`` compares the two for real and runs
only where an ``r2`` binary is on PATH.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from forensics.binary.analyze import Options, analyse_bytes
from forensics.binary.r2 import locate, parse_worker_output, run_radare2
from forensics.binary.r2worker import COMMANDS
from forensics.records import NotAvailable
from forensics.tools import run
from tests.unit.test_binary_fixtures import BENIGN_C, gcc


def test_without_r2_the_report_says_native_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no r2 whatever the machine has
    report = analyse_bytes(b"\x7fELF" + b"\x00" * 60, "x", options=Options(file_tool=False))
    assert report.analyses == ("native",)
    assert report.radare2.status == "skipped" and report.radare2.reason == "r2 not on PATH"
    assert report.radare2.line == "radare2: skipped (r2 not on PATH)"
    assert isinstance(locate(), NotAvailable)


def test_no_r2_option_skips_it_and_says_why() -> None:
    report = analyse_bytes(b"hello world", "x", options=Options(radare2=False, file_tool=False))
    assert report.radare2.line == "radare2: skipped (not asked for (--no-r2))"


def test_worker_without_radare2_reports_a_clean_failure(tmp_path: Path) -> None:
    """Our worker process for real, pointed at a directory without radare2 in it."""
    sample = tmp_path / "sample"
    sample.write_bytes(b"\x7fELF")
    done = run(
        [sys.executable, "-m", "forensics.binary.r2worker", str(tmp_path), str(sample), "10"], timeout=60
    )
    assert done.returncode == 1
    result = parse_worker_output(done.stdout, "r2", done.duration, done.timed_out, done.describe())
    assert result.status == "failed"
    assert "open" in result.errors and "radare2" in result.errors["open"].lower()


def test_worker_usage_error_is_a_record_too() -> None:
    done = run([sys.executable, "-m", "forensics.binary.r2worker"], timeout=60)
    assert done.returncode == 2
    assert json.loads(done.stdout)["cmd"] == "usage"


def test_a_killed_session_keeps_what_had_answered() -> None:
    """Our protocol: one JSON line per command; a line cut by the kill is ignored."""
    lines = [
        json.dumps({"cmd": "?V", "value": "5.9.8"}),
        json.dumps({"cmd": "ij", "value": {"bin": {}}}),
        json.dumps({"cmd": "iij", "value": [1, 2], "truncated": True}),
        '{"cmd": "iEj", "val',
    ]
    result = parse_worker_output("\n".join(lines).encode(), "/usr/bin/r2", 60.0, True, "timed out")
    assert result.status == "partial"
    assert set(result.commands) == {"ij", "iij"}
    assert result.path == "/usr/bin/r2 5.9.8"
    assert "time limit" in result.reason and "aflj" in result.reason
    assert "iij" in result.errors  # the cut list is said to be cut


def test_all_commands_answered_is_ran() -> None:
    lines = [json.dumps({"cmd": c, "value": []}) for c in COMMANDS]
    result = parse_worker_output("\n".join(lines).encode(), "r2", 1.0, False, "exit 0")
    assert result.status == "ran" and result.line.startswith("radare2: ran ij, iij")


@pytest.mark.skipif(
    shutil.which("r2") is None, reason="r2 not on PATH: radare2 is compared only where present"
)
def test_radare2_agrees_with_native(tmp_path: Path) -> None:
    binary = gcc(tmp_path, "benign", BENIGN_C)
    native = analyse_bytes(binary.read_bytes(), "x", options=Options(file_tool=False))
    assert native.analyses == ("native", "radare2"), native.radare2.reason
    result = run_radare2(str(binary))
    assert result.status == "ran", result.reason
    r2_imports = {i.get("name") for i in result.commands["iij"]}  # type: ignore[union-attr]
    assert not isinstance(native.elf, NotAvailable)
    assert set(native.elf.imports) - {"__gmon_start__", "_ITM_deregisterTMCloneTable",
                                      "_ITM_registerTMCloneTable", "__cxa_finalize"} <= r2_imports  # fmt: skip
    info = result.commands["ij"]["bin"]  # type: ignore[index]
    assert info["pic"] == native.elf.pie and info["static"] == native.elf.static
    assert info["stripped"] == native.elf.stripped
    functions = {f["name"] for f in result.commands["aflj"]}  # type: ignore[union-attr]
    assert "main" in functions or "sym.main" in functions

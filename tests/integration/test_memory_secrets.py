"""A planted secret found in a test child's memory: live through /proc/<pid>/mem and in its
gcore dump, with the mapping it lies in; reports show it masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.evidence.writer import EvidenceWriter
from forensics.memory.dump import dump
from forensics.memory.secrets import MEMORY_RULES, RULES, scan_core, scan_pid

pytestmark = [pytest.mark.root]

# Built at run time, so the whole key appears only in the child's heap, not in its argv.
PLANT = "import sys,time; k='AKIA'+'QZ7PLANTED0TEST9'; u='postgres://app:'+'s3cretpw@db.internal'; print('ok', flush=True); time.sleep(300)"


@pytest.fixture()
def holder() -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        pytest.skip("reading another process's memory needs ptrace rights")
    child = subprocess.Popen([sys.executable, "-c", PLANT], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ok"
    yield child
    child.kill()
    child.wait()


def test_live_pid_scan_finds_planted_key(holder: subprocess.Popen[bytes]) -> None:
    hits = scan_pid("/proc", holder.pid)
    keys = [h for h in hits if h.rule == "aws-access-key-id" and h.value == "AKIAQZ7PLANTED0TEST9"]
    assert keys and all(h.masked != h.value and h.masked.startswith("AKIA") for h in keys)
    assert any(h.rule == "url-password" and "s3cretpw" in h.value for h in hits)


def test_core_scan_has_offsets_and_mappings(holder: subprocess.Popen[bytes], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    writer = EvidenceWriter(tmp_path / "ev")
    result = dump(writer, "/proc", holder.pid, "gcore")
    core = str(tmp_path / "ev" / result.core.path)
    hits = [h for h in scan_core(core) if h.value == "AKIAQZ7PLANTED0TEST9"]
    assert hits
    with open(core, "rb") as f:
        f.seek(hits[0].offset)
        assert f.read(20) == b"AKIAQZ7PLANTED0TEST9"
    assert hits[0].address is not None and hits[0].mapping  # heap: anonymous or a named region
    assert main(["memory", "secrets", core, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any(h["value"] == "AKIAQZ7PLANTED0TEST9" for h in data["hits"])


def test_every_rule_matches_its_sample() -> None:
    for rule in MEMORY_RULES:
        assert rule.pattern.search(rule.sample), rule.id
    assert len({r.id for r in RULES}) == len(RULES)

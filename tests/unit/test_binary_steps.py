"""The binary.triage step and its contract: other steps put BinaryCandidate records into
ctx.state["binary_candidates"]; this step stores one report per distinct file, an index,
the suspicious files' bytes, and a Finding per suspicious subject."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.binary.candidates import CANDIDATES, BinaryCandidate
from forensics.binary.steps import binary_triage
from forensics.context import HostContext
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.verify import verify
from forensics.evidence.writer import EvidenceWriter, StepSink
from forensics.records import NotAvailable
from forensics.steps import REGISTRY, Phase, Step, StepContext, TriageOptions
from forensics.triage import load_steps, run_triage
from tests.unit.fakehost import fake_host
from tests.unit.test_binary_fixtures import BENIGN_C, PLANTED_C, gcc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("steps")
    return {"planted": gcc(tmp, "planted", PLANTED_C), "benign": gcc(tmp, "benign", BENIGN_C)}


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process of our own (coreutils sleep), for a /proc/<pid>/exe candidate."""
    proc = subprocess.Popen(["sleep", "120"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _layer(tmp_path: Path, name: str, binary: Path) -> Path:
    root = tmp_path / name
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy(binary, root / "usr/local/bin/miner")
    return root


def _context(tmp_path: Path, state: dict[str, object]) -> tuple[StepContext, EvidenceWriter]:
    writer = EvidenceWriter(tmp_path / "out")
    host = HostContext(tmp_path, NotAvailable("test: no engine"), no_engine=True)
    ctx = StepContext("binary.triage", host, StepSink(writer, "binary.triage"), AcquisitionLog(writer),
                      TriageOptions(), state)  # fmt: skip
    return ctx, writer


def test_candidates_are_analysed_stored_and_reported(
    tmp_path: Path, built: dict[str, Path], sleeper: int
) -> None:
    web = _layer(tmp_path, "web", built["planted"])
    api = _layer(tmp_path, "api", built["planted"])
    planted_sha = hashlib.sha256(built["planted"].read_bytes()).hexdigest()
    benign_sha = hashlib.sha256(built["benign"].read_bytes()).hexdigest()
    candidates = [
        BinaryCandidate("container web: A /usr/local/bin/miner", "container:web", "added", b"/usr/local/bin/miner",
                        str(web)),
        BinaryCandidate("container web again", "container:web", "added", "/usr/local/bin/miner", str(web)),
        BinaryCandidate("container api: A /usr/local/bin/miner", "container:api", "added", b"/usr/local/bin/miner",
                        str(api)),
        BinaryCandidate("host file", "host", "test", str(built["benign"])),
        BinaryCandidate(f"process {sleeper} exe", f"process:{sleeper}", "flagged", f"/proc/{sleeper}/exe"),
        BinaryCandidate("container web: gone", "container:web", "added", b"/tmp/gone", str(web)),
        "not a candidate",
    ]  # fmt: skip
    ctx, writer = _context(tmp_path, {CANDIDATES: candidates})
    binary_triage(ctx)
    names = {f.path for f in writer.files()}
    assert {
        f"binaries/{planted_sha}.json",
        f"binaries/{benign_sha}.json",
        f"binaries/{planted_sha}.sample",
    } <= names
    assert (writer.top / f"binaries/{planted_sha}.sample").read_bytes() == built["planted"].read_bytes()
    assert f"binaries/{benign_sha}.sample" not in names
    index = json.loads((writer.top / "binaries/index.json").read_text())
    assert index["count"] == 5  # the duplicate location and the non-candidate are left out
    by_source = {b["source"]: b for b in index["binaries"]}
    assert by_source["container web: gone"]["verdict"] == "not analysed"
    assert by_source[f"process {sleeper} exe"]["verdict"] == "no indicators"
    report = json.loads((writer.top / f"binaries/{planted_sha}.json").read_text())
    assert report["verdict"]["level"] == "suspicious" and report["source"].startswith("container web")
    assert sorted(f.subject for f in ctx.findings) == ["container:api", "container:web"]
    finding = ctx.findings[0]
    assert finding.rule == "binary.suspicious" and finding.severity.value == "high"
    assert "mining pool URL or host" in finding.title
    assert finding.evidence == (f"binaries/{planted_sha}.json", f"binaries/{planted_sha}.sample")
    warnings = [e["message"] for e in ctx.log.events if e["status"] == "warning"]
    assert any("could not analyse container web: gone" in w for w in warnings)
    assert any("not a BinaryCandidate" in w for w in warnings)


def test_no_candidates_is_an_empty_index(tmp_path: Path) -> None:
    ctx, writer = _context(tmp_path, {})
    binary_triage(ctx)
    assert json.loads((writer.top / "binaries/index.json").read_text()) == {"count": 0, "binaries": []}
    assert not ctx.findings


def test_the_contract_through_the_runner(tmp_path: Path, built: dict[str, Path]) -> None:
    """A producer step in an earlier phase feeds the registered binary.triage step."""
    load_steps()
    layer = _layer(tmp_path, "layer", built["planted"])

    def producer(ctx: StepContext) -> None:
        ctx.state.setdefault(CANDIDATES, []).append(
            BinaryCandidate(
                "container c: A /usr/local/bin/miner",
                "container:c",
                "new executable",
                b"/usr/local/bin/miner",
                str(layer),
            )
        )

    root = fake_host(tmp_path)
    host = HostContext(root, NotAvailable("test: no engine"), no_engine=True)
    plan = [Step("t.producer", Phase.FILESYSTEMS, producer), REGISTRY["binary.triage"]]
    result = run_triage(host, tmp_path / "out", TriageOptions(), argv=["x"], steps=plan)
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    assert [f.rule for f in result.findings] == ["binary.suspicious"]
    assert verify(result.archive.path).intact
    with tarfile.open(result.archive.path) as tar:
        names = {m.name.split("/", 1)[1] for m in tar if m.isfile()}
    assert "binaries/index.json" in names and any(n.endswith(".sample") for n in names)
    assert REGISTRY["binary.triage"].phase > Phase.IMAGES

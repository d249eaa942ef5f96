"""The README's main job end to end: the built appliance triages the staged lab.

What must hold whatever analyses exist: a sealed, verifiable archive; custody naming the
appliance's own container and image; every victim listed from both sides; well-formed
findings with nothing about the appliance or the untouched control; and victims exactly
as they were. Each planted compromise is checked to be really staged, and to be collected
as far as today's steps collect it; PLANTED says which issue's analysis must report it,
and ANALYSES_LANDED turns that assertion on.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import lab
from tests.e2e.conftest import Triage
from tests.e2e.lab import CONTROL, Kind, Planted

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root]

PLANTED = (
    Planted("web shell in the uploads folder", "lab-wordpress", Kind.FILE,
            "/var/www/html/wp-content/uploads/2024/05/wp-cache.php",
            "eval(base64_decode($_POST['x']))", issue=4, mention="wp-cache.php"),
    Planted("second uid-0 account", "lab-bastion", Kind.FILE, "/etc/passwd",
            "backdoor:x:0:0:", issue=4, mention="/etc/passwd"),
    Planted("its password hash", "lab-bastion", Kind.FILE, "/etc/shadow",
            "backdoor:$6$", issue=4, mention="/etc/shadow"),
    Planted("cron job piping a download to sh (busybox crontab)", "lab-bastion", Kind.FILE,
            "/etc/crontabs/root", "x.sh | sh", issue=4, mention="/etc/crontabs/root"),
    Planted("cron job piping a download to sh (cron.d)", "lab-bastion", Kind.FILE,
            "/etc/cron.d/sysupdate", "x.sh | sh", issue=4, mention="/etc/cron.d/sysupdate"),
    Planted("intruder's SSH key", "lab-bastion", Kind.FILE, "/root/.ssh/authorized_keys",
            "root@kali", issue=4, mention="/root/.ssh/authorized_keys"),
    Planted("dropped miner executable", "lab-miner", Kind.FILE, "/var/tmp/.x/xmrig",
            "\x7fELF", issue=4, mention="/var/tmp/.x/xmrig"),
    Planted("crypto miner pointed at a pool", "lab-miner", Kind.PROCESS, "xmrig",
            "stratum+tcp://pool.example.invalid:3333", issue=7, mention="stratum+tcp://"),
    Planted("Docker socket mounted", "lab-ci-runner", Kind.RUNTIME_CONFIG, "Binds",
            ":/var/run/docker.sock", issue=6, mention="docker.sock"),
    Planted("SYS_ADMIN added", "lab-ci-runner", Kind.RUNTIME_CONFIG, "CapAdd",
            "SYS_ADMIN", issue=6, mention="SYS_ADMIN"),
    Planted("NET_ADMIN added", "lab-ci-runner", Kind.RUNTIME_CONFIG, "CapAdd",
            "NET_ADMIN", issue=6, mention="NET_ADMIN"),
    Planted("private key added by one layer, deleted by a later one", "lab-leaky-app",
            Kind.IMAGE_HISTORY, "/root/.ssh/id_rsa", "PRIVATE KEY", issue=5, mention="id_rsa"),
)  # fmt: skip

ANALYSES_LANDED: frozenset[int] = frozenset({4, 5, 6, 7})
"""Issues whose analysis has landed: their rows in PLANTED must show up in findings.json.
4: container diff (files); 5: image history and secrets; 6: runtime configuration;
7: processes. Add a number here in the change that lands that analysis."""

HARDENING = ("bench.", "lint.", "dockle.")
"""Rule families that advise on configuration rather than claim a compromise."""

VICTIMS = frozenset(p.container for p in PLANTED) | {CONTROL}
SEVERITIES = {"critical", "high", "medium", "low", "info"}


def _json(top: Path, name: str) -> Any:
    return json.loads((top / name).read_text())


def _findings(t: Triage) -> list[dict[str, Any]]:
    return _json(t.top, "findings.json")["findings"]


def _text(finding: dict[str, Any]) -> str:
    return " ".join([finding["title"], finding.get("details", ""), *finding.get("evidence", [])])


# --- the archive ---------------------------------------------------------------------


def test_archive_and_its_checksum_file(triage: Triage) -> None:
    checksum = triage.archive.with_name(triage.archive.name + ".sha256")
    assert checksum.is_file()
    digest = hashlib.sha256(triage.archive.read_bytes()).hexdigest()
    assert checksum.read_text().split() == [digest, triage.archive.name]
    subprocess.run(["sha256sum", "-c", "--strict", checksum.name], cwd=checksum.parent, check=True)


def test_forensics_evidence_verify_passes(triage: Triage) -> None:
    # The console script beside this interpreter: `forensics evidence verify` as a user runs it.
    cli = Path(sys.executable).with_name("forensics")
    command = [str(cli)] if cli.is_file() else [sys.executable, "-c", "from forensics.cli import run; run()"]
    done = subprocess.run([*command, "evidence", "verify", str(triage.archive)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifest_checks_with_sha256sum_and_covers_every_file(triage: Triage) -> None:
    subprocess.run(["sha256sum", "-c", "--strict", "--quiet", "MANIFEST.sha256"], cwd=triage.top, check=True)
    manifest = (triage.top / "MANIFEST.sha256").read_text().splitlines()
    listed = {line.split(maxsplit=1)[1].lstrip("*") for line in manifest}
    present = {str(p.relative_to(triage.top)) for p in triage.top.rglob("*") if p.is_file()}
    assert present - {"MANIFEST.sha256"} == listed


def test_reports_and_timelines_are_in_the_manifest(triage: Triage) -> None:
    manifest = (triage.top / "MANIFEST.sha256").read_text().splitlines()
    listed = {line.split(maxsplit=1)[1].lstrip("*") for line in manifest}
    wanted = {
        "report.html",
        "report.md",
        "findings.sarif",
        "timeline/bodyfile.txt",
        "timeline/timesketch.jsonl",
    }
    assert wanted <= listed
    page = (triage.top / "report.html").read_text()
    for finding in _json(triage.top, "findings.json")["findings"][:20]:
        assert html.escape(finding["title"], quote=True) in page
    assert _json(triage.top, "findings.sarif")["version"] == "2.1.0"
    body = (triage.top / "timeline/bodyfile.txt").read_text()
    assert "/var/www/html/wp-content/uploads/2024/05/wp-cache.php" in body


def test_triage_is_complete_and_no_step_failed(triage: Triage) -> None:
    custody = _json(triage.top, "custody.json")
    assert custody["complete"] is True and custody["not_done"] == []
    if triage.run.case_id is not None:
        assert custody["case_id"] == triage.run.case_id and custody["examiner"] == lab.EXAMINER
    bad = [s for s in _json(triage.top, "steps.json") if s["status"] in ("failed", "timeout", "not-run")]
    assert bad == []


def test_engine_api_used_read_only(triage: Triage) -> None:
    log = [json.loads(line) for line in (triage.top / "acquisition.log").read_text().splitlines()]
    calls = next(e for e in log if e.get("message") == "engine API calls")
    assert calls["methods"] == ["GET"]


# --- the appliance knows itself -----------------------------------------------------------


def test_custody_names_the_appliance_container_and_image(triage: Triage) -> None:
    appliance = _json(triage.top, "custody.json")["appliance"]
    assert isinstance(appliance, dict), f"custody.json has no appliance record: {appliance}"
    assert appliance["container_id"] in triage.run.started_containers, (
        f"custody names {appliance['container_id']}, but the containers started during the run were "
        f"{triage.run.started_containers}"
    )
    assert appliance["container_id"] not in triage.victims.values()
    assert appliance["image_id"] == triage.image_id
    assert appliance["pid_host"] is True


def test_appliance_leaves_itself_out_of_findings(triage: Triage) -> None:
    cid = _json(triage.top, "custody.json")["appliance"]["container_id"]
    about_self = [f for f in _findings(triage) if cid in f["subject"] or cid[:12] in _text(f)]
    assert about_self == []


# --- inventory and findings ---------------------------------------------------------------


def test_every_victim_is_listed_from_both_sides(triage: Triage) -> None:
    assert set(triage.victims) == VICTIMS
    listed = {c["id"]: c for c in _json(triage.top, "containers.json")}
    for name, cid in triage.victims.items():
        assert cid in listed, f"{name} is missing from containers.json"
        assert listed[cid]["source"] == "both", (name, listed[cid])
        assert listed[cid]["state"] == "running", (name, listed[cid])
        assert (triage.top / f"engine/containers/{cid}.json").is_file(), name
        assert (triage.top / f"disk/containers/{cid}/config.v2.json").is_file(), name


def test_findings_json_is_well_formed(triage: Triage) -> None:
    document = _json(triage.top, "findings.json")
    findings = document["findings"]
    assert document["count"] == len(findings)
    assert len({f["id"] for f in findings}) == len(findings)
    for f in findings:
        assert set(f) >= {"id", "rule", "severity", "title", "subject", "source", "evidence", "details"}, f
        assert f["severity"] in SEVERITIES, f
        assert re.fullmatch(r"[0-9a-f]{16}", f["id"]), f
        assert f["rule"] and f["title"] and f["source"], f
        assert re.fullmatch(r"(host|(container|image|process):\S+)", f["subject"]), f
        for path in f["evidence"]:
            assert (triage.top / path).is_file(), f"finding {f['id']} cites {path}, which the archive lacks"


def test_nothing_is_found_wrong_with_the_untouched_control(triage: Triage) -> None:
    """A note (info) about it may be fine; a claim of compromise is a false positive.

    Hardening advice (docker-bench's ``bench.*``, dockle's ``dockle.*``) is expected: the
    control runs as root with no limits, like most containers, and saying so is right.
    """
    cid = triage.victims[CONTROL]
    image = lab.inspect(cid)["Image"].removeprefix("sha256:")
    subjects = {f"container:{cid}", f"image:{image}", f"image:sha256:{image}"}
    about = [
        f
        for f in _findings(triage)
        if f["subject"] in subjects and f["severity"] != "info" and not f["rule"].startswith(HARDENING)
    ]
    assert about == []
    hardening = [f for f in _findings(triage) if f["subject"] in subjects and f["rule"].startswith(HARDENING)]
    assert hardening, (
        "docker-bench's checks should have something to say about a root container without limits"
    )


# --- read, don't touch ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VICTIMS))
def test_victim_state_is_unchanged(triage: Triage, name: str) -> None:
    before, after = triage.before[name], triage.after[name]
    assert before.state["Running"] is True
    assert after.state == before.state


@pytest.mark.parametrize("name", sorted(VICTIMS))
def test_victim_writable_layer_is_unchanged(triage: Triage, name: str) -> None:
    before, after = triage.before[name], triage.after[name]
    assert lab.layer_changes(before.layer, after.layer) == []


# --- the planted compromises ------------------------------------------------------------


def _ids(plant: Planted) -> str:
    return f"{plant.container}:{plant.what}"


def _layer_file(t: Triage, plant: Planted) -> bytes:
    snap = t.before[plant.container]
    entry = snap.layer.get(plant.where.lstrip("/"))
    assert entry is not None, f"{plant.where} is not in {plant.container}'s writable layer"
    assert stat.S_ISREG(entry["mode"]), entry
    return (lab.writable_layer(snap.id) / plant.where.lstrip("/")).read_bytes()


def _runtime_config(hostconfig: dict[str, Any], plant: Planted) -> str:
    return json.dumps(hostconfig.get(plant.where))


@pytest.mark.parametrize("plant", PLANTED, ids=_ids)
def test_planted_item_is_staged(triage: Triage, plant: Planted) -> None:
    """The lab really holds it, seen from outside (so a later detection test means something)."""
    cid = triage.victims[plant.container]
    if plant.kind is Kind.FILE:
        assert plant.marker.encode() in _layer_file(triage, plant)
    elif plant.kind is Kind.PROCESS:
        pid = triage.before[plant.container].state["Pid"]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert os.path.basename(argv[0].decode()) == plant.where
        assert Path(f"/proc/{pid}/comm").read_text().strip() == plant.where
        assert plant.marker.encode() in b" ".join(argv)
    elif plant.kind is Kind.RUNTIME_CONFIG:
        assert plant.marker in _runtime_config(lab.inspect(cid)["HostConfig"], plant)
    elif plant.kind is Kind.IMAGE_HISTORY:
        rel = plant.where.lstrip("/")
        layers = lab.image_layer_dirs(lab.inspect(cid)["Image"])
        added = [
            i
            for i, d in enumerate(layers)
            if (d / rel).is_file() and plant.marker.encode() in (d / rel).read_bytes()
        ]
        deleted = [
            i for i, d in enumerate(layers)
            if (d / rel).is_char_device() and os.lstat(d / rel).st_rdev == 0  # an overlay whiteout
        ]  # fmt: skip
        assert added and deleted and min(deleted) > min(added), (added, deleted)
    else:  # pragma: no cover
        raise AssertionError(plant.kind)


@pytest.mark.parametrize("plant", PLANTED, ids=_ids)
def test_planted_item_is_collected(triage: Triage, plant: Planted) -> None:
    """What today's inventory steps keep of it: the container, and its configuration and
    image history as raw evidence for the analyses to come."""
    cid = triage.victims[plant.container]
    engine = _json(triage.top, f"engine/containers/{cid}.json")
    assert engine["Id"] == cid
    if plant.kind is Kind.RUNTIME_CONFIG:
        assert plant.marker in _runtime_config(engine["HostConfig"], plant)
        on_disk = _json(triage.top, f"disk/containers/{cid}/hostconfig.json")
        assert plant.marker in _runtime_config(on_disk, plant)
    elif plant.kind is Kind.IMAGE_HISTORY:
        history = _json(triage.top, f"engine/image-history/{engine['Image'].removeprefix('sha256:')}.json")
        steps = [(h["CreatedBy"], h["Size"]) for h in reversed(history)]  # oldest first
        adds = [
            i for i, (cmd, size) in enumerate(steps) if plant.where in cmd and "rm -f" not in cmd and size > 0
        ]
        removes = [i for i, (cmd, _) in enumerate(steps) if f"rm -f {plant.where}" in cmd]
        assert adds and removes and removes[0] > adds[0], steps


@pytest.mark.parametrize("plant", PLANTED, ids=_ids)
def test_planted_item_is_found(triage: Triage, plant: Planted) -> None:
    """Once the analysis of ``plant.issue`` has landed: a finding about its container, its
    image or its process names it."""
    if plant.issue not in ANALYSES_LANDED:
        pytest.skip(f"the analysis of issue {plant.issue} has not landed ({plant.kind.value})")
    cid = triage.victims[plant.container]
    state = triage.before[plant.container].state
    image = lab.inspect(cid)["Image"]
    subjects = {
        f"container:{cid}",
        f"image:{image}",
        f"image:{image.removeprefix('sha256:')}",
        f"process:{state['Pid']}",
    }
    hits = [f for f in _findings(triage) if f["subject"] in subjects and plant.mention in _text(f)]
    assert hits, f"no finding about {plant.container} mentions {plant.mention!r}"

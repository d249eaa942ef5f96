"""Merging the Engine's and the disk's container lists."""

from __future__ import annotations

from pathlib import Path

from forensics.containers.listing import merge, recheck
from forensics.findings import Severity
from forensics.host.disk import DockerDisk
from forensics.records import NotAvailable
from tests.unit.fakehost import add_container, fake_host, hexid


def _api(*ids: str) -> list[dict[str, object]]:
    return [
        {"Id": i, "Names": [f"/n{i[:4]}"], "Image": "victim", "ImageID": "", "State": "running"} for i in ids
    ]


def test_both_sides_agree(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    a = add_container(root, "a", "a")
    entries, findings = merge(_api(a), DockerDisk(str(root)).inventory().containers)
    assert [e.source for e in entries] == ["both"] and findings == []


def test_hidden_and_api_only(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    a = add_container(root, "a", "a")
    hidden = add_container(root, "hidden", "hidden")
    ghost = hexid("ghost")
    entries, findings = merge(_api(a, ghost), DockerDisk(str(root)).inventory().containers)
    sources = {e.id: e.source for e in entries}
    assert sources == {a: "both", hidden: "disk", ghost: "api"}
    rules = {f.subject.removeprefix("container:"): f.rule for f in findings}
    assert rules == {hidden: "inventory.hidden-container", ghost: "inventory.api-only-container"}
    assert all(f.severity is Severity.HIGH for f in findings)


def test_no_engine_means_no_mismatch_findings(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    add_container(root, "a", "a")
    entries, findings = merge(NotAvailable("--no-engine"), DockerDisk(str(root)).inventory().containers)
    assert [e.source for e in entries] == ["disk"] and findings == []


def test_recheck_downgrades_changes_during_triage(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    hidden = add_container(root, "hidden", "hidden")
    ghost = hexid("ghost")
    _, findings = merge(_api(ghost), DockerDisk(str(root)).inventory().containers)
    # The ghost is gone from the API now (removed during triage); the hidden one is still hidden.
    after = recheck(findings, api_knows=lambda cid: False, disk_knows=lambda cid: cid == hidden)
    by_subject = {f.subject.removeprefix("container:"): f for f in after}
    assert by_subject[ghost].rule == "inventory.changed-during-triage"
    assert by_subject[ghost].severity is Severity.INFO
    assert by_subject[hidden].rule == "inventory.hidden-container"

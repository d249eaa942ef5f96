"""The CLI's conventions: --version, --json, and the exit codes README documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.cli import main
from tests.unit.fakehost import add_container, fake_host


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("forensics ")


def test_usage_error_is_2() -> None:
    assert main(["container", "list", "--no-such-option"]) == 2
    assert main(["no-such-command"]) == 2


def test_no_docker_data_is_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["container", "list", "--root", str(tmp_path), "--no-engine"]) == 3
    assert "no docker data" in capsys.readouterr().err


def test_container_list_json_from_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_host(tmp_path)
    cid = add_container(root, "web", "web")
    assert main(["container", "list", "--json", "--root", str(root), "--no-engine"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["id"], c["name"], c["source"]) for c in data["containers"]] == [(cid, "web", "disk")]


def test_offline_root_does_not_use_the_local_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("FORENSICS_APPLIANCE", raising=False)
    root = fake_host(tmp_path)
    add_container(root, "web", "web")
    assert main(["container", "list", "--json", "--root", str(root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "not that host's" in data["engine"]


def test_doctor_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_host(tmp_path)
    assert main(["doctor", "--json", "--root", str(root), "--no-engine"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["storage_driver"] == "overlay2"
    assert {t["name"] for t in report["tools"]} >= {"trivy", "dive", "gcore", "strace", "yara", "r2"}
    assert any("Engine API unavailable" in w for w in report["warnings"])
    assert isinstance(report["capabilities"], list)


def test_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_host(tmp_path)
    out = tmp_path / "out"
    assert main(["triage", "--root", str(root), "--no-engine", "--output", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    archive = Path(summary["archive"])
    assert main(["evidence", "verify", str(archive)]) == 0
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    assert main(["evidence", "verify", "--json", str(archive)]) == 1
    assert main(["evidence", "verify", str(tmp_path / "nothing")]) == 2

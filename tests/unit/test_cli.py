"""The CLI's conventions: --version, --json, and the exit codes README documents."""

from __future__ import annotations

import json
import subprocess
import sys
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


HEAVY = (
    "docker", "requests", "urllib3", "capstone", "elftools", "ppdeep", "forensics.binary.analyze",
    "forensics.containers.diff", "forensics.containers.extract", "forensics.images.analysis",
    "forensics.images.source", "forensics.rules.secrets", "forensics.triage", "forensics.report.document",
    "forensics.evidence.verify",
)  # fmt: skip
"""Modules a command imports when it runs; the CLI's start must not (about 0.5 s in all)."""


def _loaded_after(argv: list[str], modules: tuple[str, ...] = HEAVY) -> set[str]:
    """Those of ``modules`` that a fresh interpreter holds after ``forensics ARGV``."""
    code = (
        "import json, sys\nfrom forensics.cli import main\ncode = main(json.loads(sys.argv[1]))\n"
        "print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))\n"
        "sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(argv), json.dumps(modules)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["image", "layers", "--help"], ["container", "--help"]]
)
def test_start_imports_no_command_module(argv: list[str]) -> None:
    assert _loaded_after(argv) == set()


def test_a_command_wires_only_its_own_group() -> None:
    others = tuple(f"forensics.cli.{n}" for n in ("binary", "container", "process", "scan", "triage"))
    assert _loaded_after(["image", "layers", "--help"], others) == set()
    assert _loaded_after(["--help"], others) == set(others)


def test_image_layers_from_disk_never_loads_the_docker_sdk(tmp_path: Path) -> None:
    # An engine address is given: still, a disk source needs no engine, so none is built.
    root = fake_host(tmp_path)
    loaded = _loaded_after(["image", "layers", "victim:latest", "--json", "--root", str(root),
                            "--docker-host", f"unix://{tmp_path}/no.sock"])  # fmt: skip
    assert loaded == {"forensics.images.analysis", "forensics.images.source"}


def test_limits_the_cli_shows_are_the_analyses_own() -> None:
    from forensics.binary import analyze
    from forensics.binary.limits import BUDGET, MAX_BYTES
    from forensics.containers import diff, extract, limits

    assert (analyze.BUDGET, analyze.MAX_BYTES) == (BUDGET, MAX_BYTES)
    assert diff.MAX_HASH == limits.MAX_HASH
    assert extract.MAX_FILE == limits.MAX_FILE


def test_the_command_raises_its_open_file_limit_up_to_the_hard_one() -> None:
    """In a child process (the limit is the process's): started with a soft limit of 256,
    the console entry's helper asks for more, and never for more than the hard limit."""
    code = (
        "import resource; from forensics.cli import OPEN_FILES, more_open_files\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "want = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)\n"
        "assert more_open_files() == want == resource.getrlimit(resource.RLIMIT_NOFILE)[0], (want, hard)\n"
        "assert more_open_files(64) == want  # never lowered\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr

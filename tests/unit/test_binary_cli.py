"""`forensics binary analyze`: host files, files inside a container read from disk, exit codes,
and a terminal that shows the suspect's text without obeying it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from forensics.cli import main
from tests.unit.fakehost import add_container, fake_host, hexid
from tests.unit.test_binary_fixtures import BENIGN_C, PLANTED_C, POOL_URL, gcc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    return {"planted": gcc(tmp, "planted", PLANTED_C), "benign": gcc(tmp, "benign", BENIGN_C)}


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["binary", "analyze", *argv, "--json", "--no-r2"]) == 0
    return json.loads(capsys.readouterr().out)


def test_analyze_json(built: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys, str(built["planted"]))
    assert report["verdict"]["level"] == "suspicious"  # type: ignore[index]
    assert report["verdict"]["line"].startswith("suspicious: mining pool URL or host")  # type: ignore[index]
    assert report["analyses"] == ["native"]
    assert report["radare2"]["status"] == "skipped"  # type: ignore[index]
    assert any(i["value"] == POOL_URL for i in report["indicators"])  # type: ignore[union-attr]
    assert report["elf"]["pie"] is True and report["elf"]["needed"] == ["libc.so.6"]  # type: ignore[index]


def test_analyze_terminal(built: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["binary", "analyze", str(built["benign"]), "--no-r2", "--strings", "3"]) == 0
    out = capsys.readouterr().out
    assert "verdict     no indicators" in out
    assert "entry code" in out and "sha256" in out
    assert "radare2: skipped (not asked for (--no-r2))" in out


def test_the_suspects_text_is_shown_not_obeyed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil = tmp_path / "x\x1b]0;owned\x07[bold red]boom"
    evil.write_bytes(b"#!/bin/sh\n/bin/sh -i\n")
    assert main(["binary", "analyze", str(evil), "--no-r2"]) == 0
    out = capsys.readouterr().out.replace("\n", "")  # Rich wraps long lines
    assert "\x1b]0;" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07[bold red]boom" in out


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["binary", "analyze", str(tmp_path / "missing")]) == 2
    assert main(["binary", "analyze", str(tmp_path)]) == 2
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["binary", "analyze", str(fifo)]) == 2  # refused before any open: no hang
    assert "not a regular file" in capsys.readouterr().err


def _container_with_layers(tmp_path: Path, built: dict[str, Path]) -> Path:
    """A fake host: one image layer with /bin/ok and /usr/bin/gone, a container whose
    writable layer adds /usr/local/bin/miner, deletes /usr/bin/gone and plants a link out."""
    root = fake_host(tmp_path)
    add_container(root, "web", "web")
    docker = root / "var/lib/docker"
    diff_id = hexid("layerimage")
    cache = hexid("cache")
    (docker / "image/overlay2/layerdb/sha256" / diff_id).mkdir(parents=True)
    (docker / "image/overlay2/layerdb/sha256" / diff_id / "cache-id").write_text(cache)
    lower = docker / "overlay2" / cache / "diff"
    (lower / "bin").mkdir(parents=True)
    (lower / "usr/bin").mkdir(parents=True)
    shutil.copy(built["benign"], lower / "bin/ok")
    shutil.copy(built["benign"], lower / "usr/bin/gone")
    upper = docker / "overlay2" / hexid("mountweb") / "diff"
    (upper / "usr/local/bin").mkdir(parents=True)
    (upper / "usr/bin").mkdir(parents=True)
    shutil.copy(built["planted"], upper / "usr/local/bin/miner")
    os.symlink("../../../../../../../../etc/hostname", upper / "usr/local/bin/escape")
    try:
        os.mknod(upper / "usr/bin/gone", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    except PermissionError:
        pytest.skip("a whiteout (0/0 character device) needs root to create")
    return root


def test_container_file_from_the_writable_layer(
    tmp_path: Path, built: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _container_with_layers(tmp_path, built)
    report = _json(capsys, "/usr/local/bin/miner", "--container", "web", "--root", str(root), "--no-engine")
    assert report["verdict"]["level"] == "suspicious"  # type: ignore[index]
    assert "(web) /usr/local/bin/miner [upper]" in str(report["source"])
    lower = _json(capsys, "/bin/ok", "--container", "web", "--root", str(root), "--no-engine")
    assert str(lower["source"]).endswith("/bin/ok [image layer 0]")
    assert lower["verdict"]["line"] == "no indicators"  # type: ignore[index]


def test_container_whiteout_and_link_out(
    tmp_path: Path, built: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _container_with_layers(tmp_path, built)
    args = ["--container", "web", "--root", str(root), "--no-engine", "--no-r2"]
    assert main(["binary", "analyze", "/usr/bin/gone", *args]) == 2
    assert "deleted in the container" in capsys.readouterr().err
    # the link is resolved inside the layer, where etc/hostname does not exist: never the host's
    assert main(["binary", "analyze", "/usr/local/bin/escape", *args]) == 2
    assert main(["binary", "analyze", "/no/such", *args]) == 2
    assert main(["binary", "analyze", "/bin/ok", "--container", "nosuch", "--root", str(root)]) == 2

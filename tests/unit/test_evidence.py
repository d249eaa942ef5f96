"""The archive: every byte hashed, and every tampering caught by verify."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from forensics.errors import EvidenceError
from forensics.evidence.archive import seal
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.names import segment
from forensics.evidence.verify import verify
from forensics.evidence.writer import EvidenceWriter, StepSink


def _make(tmp_path: Path) -> Path:
    writer = EvidenceWriter(tmp_path / "stage" / "forensics-test-20260101T000000Z")
    writer.add_bytes("a/raw.bin", bytes(range(256)) * 10)
    writer.add_json("b/record.json", {"x": 1, "name": b"bad\xff"})
    writer.add_jsonl("c/events.jsonl", [{"n": i} for i in range(5)])
    log = AcquisitionLog(writer)
    log.event("step", "ok", seconds=1.0)
    writer.write_manifest()
    out = tmp_path / "out"
    out.mkdir()
    return seal(writer.top, out).path


def test_sealed_archive_verifies_and_sha256sum_agrees(tmp_path: Path) -> None:
    archive = _make(tmp_path)
    result = verify(archive)
    assert result.intact, result
    assert result.files_checked == 4
    assert result.archive_checksum_ok is True
    subprocess.run(["sha256sum", "-c", archive.name + ".sha256"], cwd=archive.parent, check=True)
    unpack = tmp_path / "unpacked"
    unpack.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpack, filter="data")
    top = next(unpack.iterdir())
    subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=top, check=True)
    assert verify(unpack).intact
    assert verify(top).intact


def _unpacked(tmp_path: Path) -> Path:
    archive = _make(tmp_path)
    unpack = tmp_path / "unpacked"
    unpack.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpack, filter="data")
    return next(unpack.iterdir())


def test_tampered_byte_is_caught(tmp_path: Path) -> None:
    top = _unpacked(tmp_path)
    target = top / "a" / "raw.bin"
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    target.write_bytes(bytes(data))
    result = verify(top)
    assert not result.intact and result.changed == ["a/raw.bin"]


def test_added_file_is_caught(tmp_path: Path) -> None:
    top = _unpacked(tmp_path)
    (top / "planted.txt").write_text("x")
    result = verify(top)
    assert not result.intact and result.extra == ["planted.txt"]


def test_dropped_file_is_caught(tmp_path: Path) -> None:
    top = _unpacked(tmp_path)
    (top / "b" / "record.json").unlink()
    result = verify(top)
    assert not result.intact and result.missing == ["b/record.json"]


def test_tampered_archive_is_caught(tmp_path: Path) -> None:
    archive = _make(tmp_path)
    # Rewrite the archive with one member changed: the manifest and the sidecar both catch it.
    members = []
    with tarfile.open(archive) as tar:
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("c/events.jsonl"):
                data = b'{"n": 99}\n'
                member.size = len(data)
            members.append((member, data))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    archive.write_bytes(buffer.getvalue())
    result = verify(archive)
    assert not result.intact
    assert result.changed == ["c/events.jsonl"]
    assert result.archive_checksum_ok is False


def test_truncated_archive_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    archive = _make(tmp_path)
    archive.write_bytes(archive.read_bytes()[:200])
    result = verify(archive)
    assert not result.intact and result.problems


def test_not_gzip_is_a_problem(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(gzip.compress(b"not a tar"))
    assert not verify(bogus).intact


def test_unsafe_names_are_refused(tmp_path: Path) -> None:
    writer = EvidenceWriter(tmp_path / "top")
    for bad in ("../x", "/abs", "a//b", "a/./b", "a\nb", "a\\b", ""):
        with pytest.raises(EvidenceError):
            writer.add_bytes(bad, b"")
    with pytest.raises(EvidenceError):
        writer.add_bytes("MANIFEST.sha256", b"")


def test_no_overwrite(tmp_path: Path) -> None:
    writer = EvidenceWriter(tmp_path / "top")
    writer.add_bytes("x", b"1")
    with pytest.raises(EvidenceError):
        writer.add_bytes("x", b"2")
    assert (tmp_path / "top" / "x").read_bytes() == b"1"


def test_segment_makes_hostile_names_safe() -> None:
    for hostile in ("..", ".", "", "a/b", "../../etc", "x\ny", b"\xff\xfe", "a" * 5000):
        made = segment(hostile)
        assert "/" not in made and made not in ("", ".", "..") and "\n" not in made
        assert len(made) <= 180
    assert segment("a/b") != segment("a%2Fb") or segment("a/b") == "a%2Fb"
    assert segment(b"\xff") != segment(b"\xfe")


def test_size_cap_marks_truncated(tmp_path: Path) -> None:
    writer = EvidenceWriter(tmp_path / "top")
    src = tmp_path / "src"
    src.write_bytes(b"y" * 5000)
    fd = os.open(src, os.O_RDONLY)
    try:
        record = writer.add_fd("copy", fd, limit=1000)
    finally:
        os.close(fd)
    assert record.truncated and record.size == 1000
    exact = writer.add_stream("exact", [b"z" * 1000], limit=1000)
    assert not exact.truncated


def test_closed_step_sink_refuses(tmp_path: Path) -> None:
    sink = StepSink(EvidenceWriter(tmp_path / "top"), "slow")
    sink.add_bytes("before", b"1")
    sink.close()
    with pytest.raises(EvidenceError):
        sink.add_bytes("after", b"2")


def test_collection_seals_even_when_the_command_fails(tmp_path: Path) -> None:
    import json

    from forensics.evidence.collection import collection

    with pytest.raises(RuntimeError), collection(tmp_path, "dump-42", argv=["forensics", "x"]) as writer:
        writer.add_bytes("memory/42/maps.txt", b"00400000-00401000 r-xp")
        raise RuntimeError("gcore died")
    archive = writer.sealed.path
    assert verify(archive).intact
    with tarfile.open(archive) as tar:
        names = {m.name.split("/", 1)[1]: m for m in tar if m.isfile()}
        custody = json.loads(tar.extractfile(names["custody.json"]).read())  # type: ignore[union-attr]
    assert "memory/42/maps.txt" in names
    assert custody["complete"] is False and "gcore died" in custody["not_done"][0]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")] == []

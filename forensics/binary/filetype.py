"""What a file is, from its first bytes; and what ``file`` says, when it is on our PATH.

``file`` is given our private copy of the sample (see :func:`forensics.binary.analyze.sample_copy`),
never a path inside a suspect's tree: a link swapped in there cannot redirect it. (Not
standard input: ``file`` cannot seek a pipe, and ELF section headers lie at the end.)
"""

from __future__ import annotations

from forensics.records import NotAvailable
from forensics.tools import run, which

HEAD_BYTES = 8192
"""Bytes our own sniffing looks at."""
FILE_TOOL_TIMEOUT = 15.0

_MACHO = {
    b"\xfe\xed\xfa\xce": "Mach-O 32-bit big-endian",
    b"\xce\xfa\xed\xfe": "Mach-O 32-bit little-endian",
    b"\xfe\xed\xfa\xcf": "Mach-O 64-bit big-endian",
    b"\xcf\xfa\xed\xfe": "Mach-O 64-bit little-endian",
}


def sniff(head: bytes) -> tuple[str, str]:
    """(kind, description) from the first bytes."""
    if head.startswith(b"\x7fELF"):
        if len(head) < 6:
            return "elf", "ELF (truncated header)"
        bits = {1: "32-bit", 2: "64-bit"}.get(head[4], f"class {head[4]}")
        order = {1: "LSB", 2: "MSB"}.get(head[5], f"data {head[5]}")
        return "elf", f"ELF {bits} {order}"
    if head.startswith(b"MZ"):
        return "pe", "DOS/PE executable (MZ)"
    if head[:4] in _MACHO:
        return "mach-o", _MACHO[head[:4]]
    if head.startswith(b"\xca\xfe\xba\xbe"):
        return "mach-o", "Mach-O universal binary or Java class"
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0][:200].strip()
        return "script", "script, interpreter " + line.decode("utf-8", "backslashreplace")
    if head.startswith(b"\x1f\x8b"):
        return "gzip", "gzip compressed data"
    if head.startswith(b"PK\x03\x04"):
        return "zip", "Zip archive (or jar, apk, wheel)"
    if head.startswith((b"BZh",)):
        return "bzip2", "bzip2 compressed data"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz", "XZ compressed data"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd", "Zstandard compressed data"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar", "POSIX tar archive"
    if not head:
        return "empty", "empty file"
    sample = head[:4096]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "text", "ASCII text"
    return "data", "data"


def file_tool(sample: str | NotAvailable, forbidden_root: str | None = None) -> str | NotAvailable:
    """``file -b`` on our copy of the sample, or why it could not say."""
    if isinstance(sample, NotAvailable):
        return sample
    path = which("file", forbidden_root)
    if isinstance(path, NotAvailable):
        return path
    result = run([path, "-b", "--", sample], timeout=FILE_TOOL_TIMEOUT, max_output=4096)
    if not result.ok:
        return NotAvailable(f"file: {result.describe()}")
    return result.stdout.decode("utf-8", "replace").strip()

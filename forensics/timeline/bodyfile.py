"""The Sleuth Kit's body file (TSK 3.x): ``MD5|name|inode|mode|uid|gid|size|atime|mtime|ctime|crtime``.

``mactime -b bodyfile`` sorts it into a timeline. mactime splits each line on ``|`` and
then turns every ``%XX`` in a field back into that byte (``tm_split`` in Debian's
mactime), so a name is written with ``%``, ``|``, control characters and bytes that are
not UTF-8 as ``%XX``: mactime shows the name exactly, and no crafted name can add a
field or a line. Times are whole epoch seconds; 0 means unknown (mactime skips it).
"""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Iterable

_TYPE_LETTER = {"-": "r", "d": "d", "l": "l", "c": "c", "b": "b", "p": "p", "s": "s"}
_ALWAYS = frozenset(b"%|\x7f") | frozenset(range(0x20))


@dataclasses.dataclass(frozen=True)
class BodyEntry:
    """One file's metadata, as one body-file line."""

    name: bytes
    """Full path as the timeline shows it, e.g. ``/<container>/etc/passwd`` (bytes, exact)."""
    mode: int
    """st_mode, type bits included."""
    uid: int
    gid: int
    size: int
    atime: int
    mtime: int
    ctime: int
    crtime: int = 0
    """Birth time; overlay2's upper dir does not give it to lstat, so mostly 0 (unknown)."""
    inode: str = "0"
    md5: str = "0"
    """TSK writes 0 when it did not hash; we hash with SHA-256 (in the Timesketch file)."""


def escape_name(raw: bytes) -> str:
    """A name for the body file: valid UTF-8 kept, everything mactime could misread as ``%XX``."""
    out: list[str] = []
    rest = raw
    while rest:
        try:
            text = rest.decode("utf-8")
            bad_at = len(rest)
        except UnicodeDecodeError as exc:
            text = rest[: exc.start].decode("utf-8")
            bad_at = exc.start
        for char in text:
            code = ord(char)
            if code < 0x80 and code in _ALWAYS:
                out.append(f"%{code:02X}")
            elif 0x80 <= code < 0xA0 or char in "\u2028\u2029":
                # C1 controls and line separators: some readers break lines on them.
                out.append("".join(f"%{b:02X}" for b in char.encode("utf-8")))
            else:
                out.append(char)
        if bad_at < len(rest):
            out.append(f"%{rest[bad_at]:02X}")
            rest = rest[bad_at + 1 :]
        else:
            rest = b""
    return "".join(out)


def mode_string(mode: int) -> str:
    """``r/rrwxr-xr-x`` as fls writes it: the name's type, ``/``, the metadata's type and bits."""
    text = stat.filemode(mode)
    letter = _TYPE_LETTER.get(text[0], "-")
    return f"{letter}/{letter}{text[1:]}"


def _epoch(value: int) -> str:
    return str(max(0, value))


def line(entry: BodyEntry) -> str:
    fields = (
        entry.md5, escape_name(entry.name), entry.inode, mode_string(entry.mode), str(entry.uid),
        str(entry.gid), str(max(0, entry.size)), _epoch(entry.atime), _epoch(entry.mtime),
        _epoch(entry.ctime), _epoch(entry.crtime),
    )  # fmt: skip
    return "|".join(fields)


def render(entries: Iterable[BodyEntry]) -> bytes:
    return "".join(line(e) + "\n" for e in entries).encode("utf-8")

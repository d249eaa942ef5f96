"""Names inside the evidence archive: our own, checked; the suspect's, made safe."""

from __future__ import annotations

import hashlib
import os
import re

from forensics.errors import EvidenceError

MAX_SEGMENT = 180
"""Longest segment kept as it is; a longer one is cut and given a hash suffix."""

_SAFE = re.compile(rb"[A-Za-z0-9._+@=,:-]")


def segment(untrusted: bytes | str) -> str:
    """Turn any name (a container's file name, an image tag) into one safe path segment.

    Bytes outside a small safe set become ``%XX``, so the result has no separator, no
    newline, no backslash and no non-ASCII, and distinct inputs stay distinct. A name
    that would be ``.`` or ``..`` or empty gets escaped too.
    """
    raw = os.fsencode(untrusted) if isinstance(untrusted, str) else untrusted
    out = "".join(chr(b) if _SAFE.fullmatch(bytes([b])) else f"%{b:02X}" for b in raw)
    if out in ("", ".", ".."):
        out = "".join(f"%{b:02X}" for b in raw) or "%"
    if len(out) > MAX_SEGMENT:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        out = f"{out[: MAX_SEGMENT - 18]}~{digest}"
    return out


def check_relpath(name: str) -> str:
    """Validate a relative archive path built by our own code; raise on anything odd."""
    if not name or name.startswith("/"):
        raise EvidenceError(f"evidence name must be relative: {name!r}")
    for part in name.split("/"):
        if part in ("", ".", "..") or len(part) > 255:
            raise EvidenceError(f"bad segment {part!r} in evidence name {name!r}")
        if any(c in part for c in "\0\n\r\\") or not part.isprintable():
            raise EvidenceError(f"unsafe character in evidence name {name!r}")
    return name


def join(*parts: str) -> str:
    """Join already-safe segments (our literals or :func:`segment` results)."""
    return check_relpath("/".join(parts))

"""ssdeep fuzzy hashes: the ssdeep project's own C library (libfuzzy, Debian's ``libfuzzy2``)
through ctypes when this system has it, else ppdeep (pure Python, same algorithm and same
hashes, about 1 MB/s: 2 s for a busybox binary here, where libfuzzy takes 10 ms).

The library is looked for on our own system (the appliance image, or the examiner's
machine), never under the analysed root.
"""

from __future__ import annotations

import ctypes
import functools

LIBRARY = "libfuzzy.so.2"
RESULT_SIZE = 2 * 64 + 20
"""FUZZY_MAX_RESULT of fuzzy.h: two signatures of SPAMSUM_LENGTH (64) and the block size."""
SECONDS_PER_BYTE = {"libfuzzy": 5e-8, "ppdeep": 2e-6}
"""Pessimistic speed of each, to leave out a hash that would overrun the time budget."""


@functools.cache
def _libfuzzy() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError:
        return None
    lib.fuzzy_hash_buf.argtypes = (ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p)
    lib.fuzzy_hash_buf.restype = ctypes.c_int
    return lib


def implementation() -> str:
    """``libfuzzy`` or ``ppdeep``: what :func:`fuzzy_hash` will use."""
    return "libfuzzy" if _libfuzzy() is not None else "ppdeep"


def fuzzy_hash(data: bytes) -> str:
    """The ssdeep hash of ``data`` (``blocksize:hash1:hash2``)."""
    lib = _libfuzzy()
    if lib is None or len(data) >= 1 << 32:
        import ppdeep

        return str(ppdeep.hash(data))
    out = ctypes.create_string_buffer(RESULT_SIZE)
    status = lib.fuzzy_hash_buf(data, len(data), out)
    if status != 0:
        raise OSError(f"libfuzzy's fuzzy_hash_buf returned {status}")
    return out.value.decode("ascii")

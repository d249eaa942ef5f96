"""Printable strings in a binary: ASCII and UTF-16LE runs, as ``strings -a`` and ``-el`` find them.

Bounded: at most :data:`MAX_STRINGS` are returned (the total is still counted, up to
:data:`MAX_COUNTED`), and a run longer than :data:`MAX_STRING` characters is cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from forensics.binary.records import FoundString

MIN_LENGTH = 5
"""Shortest run kept (radare2's ``izz`` default is 5; ``strings`` uses 4)."""
MAX_STRING = 1024
"""Longest text kept for one string; longer runs are cut to this."""
MAX_STRINGS = 20_000
"""Strings kept in the report."""
MAX_COUNTED = 200_000
"""Strings scanned (for indicators) and counted at most."""

_ASCII = re.compile(rb"[\x20-\x7e\t]{%d,}" % MIN_LENGTH)
_UTF16 = re.compile(rb"(?:[\x20-\x7e\t]\x00){%d,}" % MIN_LENGTH)


def iter_strings(data: bytes, expired: Callable[[], bool] = lambda: False) -> Iterator[FoundString]:
    """ASCII runs, then UTF-16LE runs, each in file order; stops early when ``expired()``."""
    count = 0
    for pattern, encoding, width in ((_ASCII, "ascii", 1), (_UTF16, "utf-16le", 2)):
        for match in pattern.finditer(data):
            count += 1
            if count > MAX_COUNTED or (count % 4096 == 0 and expired()):
                return
            start, raw = match.start(), match.group()
            if width == 2 and start > 0 and (32 <= data[start - 1] < 127 or data[start - 1] == 9):
                # The first "character" is the last byte of an ASCII string and its NUL
                # ("...A\0h\0t\0t\0p..."): in real UTF-16LE text a printable byte is followed by a NUL.
                start, raw = start + 2, raw[2:]
                if len(raw) < MIN_LENGTH * 2:
                    continue
            raw = raw[: MAX_STRING * width]
            text = raw.decode("ascii") if width == 1 else raw.decode("utf-16-le")
            yield FoundString(start, encoding, text)

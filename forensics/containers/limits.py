"""Defaults of the container commands' size options, apart so that the CLI can show them without
importing the analyses (``forensics --version`` and ``forensics image ...`` must not pay for the
container diff's rules, YARA and process modules).

:mod:`forensics.containers.diff` and :mod:`forensics.containers.extract` take their limits
from here.
"""

from __future__ import annotations

MAX_HASH = 100 * 1024 * 1024
"""Largest file the container diff hashes, in bytes (``--max-hash-size``); a larger one gets
NotAvailable (its first bytes are still checked)."""
MAX_FILE = 100 * 1024 * 1024
"""Default per-file cap of ``container extract``, in bytes."""

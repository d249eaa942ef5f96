"""Defaults of the container commands' size options, apart so that the CLI can show them without
importing the analyses (``forensics --version`` and ``forensics image ...`` must not pay for the
container diff's rules, YARA and process modules).

:data:`MAX_HASH` is also defined in :mod:`forensics.containers.diff`, which does not import it
from here yet; ``tests/unit/test_cli.py`` checks that the two agree.
"""

from __future__ import annotations

MAX_HASH = 100 * 1024 * 1024
"""Largest file the container diff hashes, in bytes (``--max-hash-size``)."""
MAX_FILE = 100 * 1024 * 1024
"""Default per-file cap of ``container extract``, in bytes."""

"""Default bounds of the native binary analysis, apart so that the CLI can show them as option
defaults without importing the analysis (pyelftools, capstone) at start-up."""

from __future__ import annotations

MAX_BYTES = 64 * 1024 * 1024
"""Bytes of a file the native analysis looks at (the whole file is still hashed)."""
BUDGET = 60.0
"""Seconds for the native analysis of one file."""

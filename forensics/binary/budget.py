"""A wall-clock budget for one analysis: each stage asks before it starts, long loops ask
as they go, and what was cut short is recorded as a problem instead of hanging the run."""

from __future__ import annotations

import math
import time
from collections import Counter

from forensics.binary.records import Problem


class Budget:
    """Seconds left for one file's analysis, and the problems met so far."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.problems: list[Problem] = []

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def expired(self) -> bool:
        return self.left() <= 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def problem(self, stage: str, message: str) -> None:
        self.problems.append(Problem(stage, message))

    def allows(self, stage: str) -> bool:
        """True when time is left for ``stage``; otherwise record that it was skipped."""
        if self.expired():
            self.problem(stage, f"skipped: the {self.seconds:.0f}s analysis budget was used up")
            return False
        return True


EXACT_ENTROPY = 4 * 1024 * 1024
"""Regions up to this size are counted byte by byte; larger ones from evenly spaced samples."""
SAMPLES = 256
SAMPLE = 16 * 1024


def entropy(data: bytes | memoryview) -> float:
    """Shannon entropy in bits per byte (0 for empty input).

    Over :data:`EXACT_ENTROPY` bytes it is estimated from :data:`SAMPLES` evenly spaced
    blocks of :data:`SAMPLE` bytes (4 MiB in all): counting every byte of a 50 MB binary
    in Python takes seconds per region, and a packed region's entropy shows in any sample.
    """
    size = len(data)
    if size == 0:
        return 0.0
    counts: Counter[int] = Counter()
    if size <= EXACT_ENTROPY:
        counts.update(data)
    else:
        view = memoryview(data)
        step = (size - SAMPLE) // (SAMPLES - 1)
        for i in range(SAMPLES):
            counts.update(view[i * step : i * step + SAMPLE])
    size = sum(counts.values())
    return -sum(n / size * math.log2(n / size) for n in counts.values())

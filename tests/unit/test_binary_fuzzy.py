"""ssdeep hashes: libfuzzy (through ctypes) and ppdeep give the same hash for the same bytes."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import ppdeep
import pytest

from forensics.binary import fuzzy


def _samples() -> list[bytes]:
    rng = random.Random(7)
    text = b"".join(rng.choice([b"alpha ", b"beta\n", b"gamma;", b"\x00\x01"]) for _ in range(40_000))
    return [b"", b"a", b"hello world" * 1000, rng.randbytes(300_000), text,
            Path(sys.executable).resolve().read_bytes()[: 1 << 20]]  # fmt: skip


def test_libfuzzy_and_ppdeep_agree() -> None:
    if fuzzy.implementation() != "libfuzzy":
        pytest.skip("libfuzzy2 is not installed (scripts/test installs it)")
    for data in _samples():
        assert fuzzy.fuzzy_hash(data) == ppdeep.hash(data), len(data)


def test_without_libfuzzy_ppdeep_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzzy, "LIBRARY", "libfuzzy-that-is-not-there.so.9")
    fuzzy._libfuzzy.cache_clear()
    try:
        assert fuzzy.implementation() == "ppdeep"
        data = os.urandom(20_000)
        assert fuzzy.fuzzy_hash(data) == ppdeep.hash(data)
    finally:
        fuzzy._libfuzzy.cache_clear()

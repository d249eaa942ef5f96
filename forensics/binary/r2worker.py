"""The radare2 session, run as its own process by :mod:`forensics.binary.r2`.

``python -m forensics.binary.r2worker RADARE2_DIR SAMPLE MAX_ITEMS`` opens SAMPLE with
r2pipe (which spawns ``RADARE2_DIR/radare2``) and prints one JSON line per command as
soon as it answers, so a run killed for its time limit still leaves what it had. The
parent runs this through :func:`forensics.tools.run`: one process group, killed whole
(radare2 included) when the time is up.

radare2 starts with ``-2`` (no stderr), ``-N`` (no user rc files or plugins' scripts),
``-S`` (sandbox: no shell, no network, no file writes) and never ``-d``: the sample is
analysed, never executed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

COMMANDS = ("ij", "iij", "iEj", "izj", "aa", "aflj")
"""Cheap table reads first, analysis last: a timeout in ``aa`` still leaves the tables."""
FLAGS = ["-2", "-N", "-S", "-e", "scr.color=0", "-e", "bin.cache=true"]


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        _emit({"cmd": "usage", "error": "usage: r2worker RADARE2_DIR SAMPLE MAX_ITEMS"})
        return 2
    home, sample, limit = argv[1], argv[2], int(argv[3])
    try:
        import r2pipe

        r2 = r2pipe.open(sample, flags=FLAGS, radare2home=home)
    except Exception as exc:
        _emit({"cmd": "open", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    try:
        _emit({"cmd": "?V", "value": (r2.cmd("?V") or "").strip()})
        for cmd in COMMANDS:
            try:
                if cmd == "aa":
                    r2.cmd("aa")
                    _emit({"cmd": cmd, "value": "done"})
                    continue
                value = r2.cmdj(cmd)
            except Exception as exc:
                _emit({"cmd": cmd, "error": f"{type(exc).__name__}: {exc}"})
                continue
            truncated = isinstance(value, list) and len(value) > limit
            if truncated:
                value = value[:limit]
            _emit({"cmd": cmd, "value": value, "truncated": truncated})
    finally:
        try:
            r2.quit()
        except Exception as exc:
            _emit({"cmd": "quit", "error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

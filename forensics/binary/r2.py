"""radare2 beside the native triage: run only when ``r2`` is on the appliance's PATH.

r2pipe talks to a radare2 process; the whole session runs in a worker process
(:mod:`forensics.binary.r2worker`) started through :func:`forensics.tools.run`, so the
time limit kills r2pipe and radare2 together and keeps whatever commands had answered.
radare2 reads our private copy of the sample (see :func:`forensics.binary.analyze.sample_copy`),
never a path inside the suspect's tree, so a link swapped in there cannot redirect it.
"""

from __future__ import annotations

import json
import os
import sys

from forensics.binary.r2worker import COMMANDS
from forensics.binary.records import R2Result
from forensics.records import NotAvailable
from forensics.tools import run, which

R2_TIMEOUT = 120.0
MAX_ITEMS = 20_000
"""Entries kept from each list radare2 returns (strings, functions, imports)."""
MAX_OUTPUT = 64 * 1024 * 1024


def skipped(reason: str, path: str | NotAvailable | None = None) -> R2Result:
    return R2Result("skipped", reason, path or NotAvailable(reason), 0.0, {}, {})


def locate(forbidden_root: str | None = None) -> tuple[str, str] | NotAvailable:
    """(r2, radare2) on our PATH; r2pipe spawns ``radare2`` from the directory given."""
    r2 = which("r2", forbidden_root)
    if isinstance(r2, NotAvailable):
        return NotAvailable("r2 not on PATH")
    radare2 = which("radare2", forbidden_root)
    if isinstance(radare2, NotAvailable):
        return NotAvailable(f"r2 at {r2} but radare2, which r2pipe runs, is not on PATH")
    return r2, radare2


def run_radare2(
    sample: str,
    forbidden_root: str | None = None,
    timeout: float = R2_TIMEOUT,
    max_items: int = MAX_ITEMS,
) -> R2Result:
    found = locate(forbidden_root)
    if isinstance(found, NotAvailable):
        return skipped(found.reason)
    r2, radare2 = found
    argv = [
        sys.executable,
        "-m",
        "forensics.binary.r2worker",
        os.path.dirname(radare2),
        sample,
        str(max_items),
    ]
    done = run(argv, timeout=timeout, max_output=MAX_OUTPUT)
    return parse_worker_output(done.stdout, r2, done.duration, done.timed_out, done.describe())


def parse_worker_output(stdout: bytes, r2: str, seconds: float, timed_out: bool, how: str) -> R2Result:
    """Turn the worker's JSON lines into an R2Result (lines cut by a kill are ignored)."""
    commands: dict[str, object] = {}
    errors: dict[str, str] = {}
    version = ""
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("cmd"), str):
            continue
        cmd = record["cmd"]
        if "error" in record:
            errors[cmd] = str(record["error"])
        elif cmd == "?V":
            version = str(record.get("value", ""))
        else:
            commands[cmd] = record.get("value")
            if record.get("truncated"):
                errors[cmd] = "output cut to its first entries (MAX_ITEMS)"
    missing = [c for c in COMMANDS if c not in commands]
    label = f"{r2} {version}".strip()
    if timed_out:
        reason = f"time limit {seconds:.0f}s reached; no answer to {', '.join(missing)}"
        return R2Result("partial" if commands else "failed", reason, label, seconds, commands, errors)
    if not commands:
        reason = "; ".join(f"{k}: {v}" for k, v in errors.items()) or f"no output ({how})"
        return R2Result("failed", reason, label, seconds, commands, errors)
    if missing:
        return R2Result("partial", f"no answer to {', '.join(missing)}", label, seconds, commands, errors)
    return R2Result("ran", "", label, seconds, commands, errors)

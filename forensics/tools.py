"""One way to run an external tool: from the appliance's own PATH, with a timeout,
its version known, its output captured and bounded, its exit status kept.

No binary from a suspect container or image is ever run: tools are looked up on this
process's PATH only, and a PATH entry below the analysed host root is refused.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence

from forensics.records import NotAvailable

MAX_OUTPUT = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ToolRun:
    """What one run of an external tool did."""

    argv: list[str]
    """The exact command line."""
    returncode: int | None
    """Exit status; None when it was killed for a timeout or could not start."""
    stdout: bytes
    """Captured standard output (bounded)."""
    stderr: bytes
    """Captured standard error (bounded)."""
    duration: float
    """Seconds it ran."""
    timed_out: bool = False
    """Killed because it overran its timeout."""
    error: str = ""
    """Why it could not start, if it did not."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration:.1f}s"
        tail = self.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return f"exit {self.returncode}" + (f": {' | '.join(tail)}" if tail else "")


@dataclasses.dataclass(frozen=True)
class ToolInfo:
    """An external tool as found (or not) on the appliance's PATH."""

    name: str
    """The command name."""
    purpose: str
    """What the product uses it for, and what its absence costs."""
    path: str | NotAvailable
    """Where it is, or why it is not usable."""
    version: str | NotAvailable
    """Its version as it reports it."""


KNOWN_TOOLS: dict[str, tuple[list[str], str]] = {
    "trivy": (["--version"], "vulnerability, secret and misconfiguration scans"),
    "dive": (["--version"], "layer efficiency figures, compared with our own"),
    "dockle": (["--version"], "image best-practice checks, compared with our own"),
    "container-diff": (["version"], "image diffs, compared with our own"),
    "pspy": (["--help"], "process monitoring, compared with our own monitor"),
    "r2": (["-v"], "radare2 binary analysis beside the native ELF triage"),
    "gcore": (["--version"], "process memory dumps (its version is gdb's)"),
    "gdb": (["--version"], "loading memory dumps (gcore needs it)"),
    "strace": (["-V"], "system call traces of live processes"),
    "ltrace": (["-V"], "library call traces"),
    "yara": (["--version"], "YARA rules over changed files and dumps"),
}

_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-+~.][0-9A-Za-z.]+)?")


def which(name: str, forbidden_root: str | None = None) -> str | NotAvailable:
    """Find ``name`` on PATH; refuse any hit inside the analysed root (never run suspect code)."""
    found = shutil.which(name)
    if found is None:
        return NotAvailable(f"{name} is not on PATH")
    real = os.path.realpath(found)
    if forbidden_root and os.path.realpath(forbidden_root) != "/":
        root = os.path.realpath(forbidden_root).rstrip("/") + "/"
        if real.startswith(root):
            return NotAvailable(f"{name} found at {real}, inside the analysed root: refused")
    return found


def run(
    argv: Sequence[str],
    timeout: float,
    stdin: bytes | None = None,
    max_output: int = MAX_OUTPUT,
    env: dict[str, str] | None = None,
) -> ToolRun:
    """Run a command in its own process group; on timeout kill the whole group."""
    started = time.monotonic()
    argv = list(argv)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        return ToolRun(argv, None, b"", b"", time.monotonic() - started, error=f"could not start: {exc}")
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # A descendant that left the process group (setsid) still holds the pipes open:
            # stop reading rather than wait for it.
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            out, err = b"", b""
        return ToolRun(argv, None, out[:max_output], err[:max_output], time.monotonic() - started, True)
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    return ToolRun(argv, proc.returncode, out[:max_output], err[:max_output], time.monotonic() - started)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def tool_info(name: str, forbidden_root: str | None = None, timeout: float = 10) -> ToolInfo:
    args, purpose = KNOWN_TOOLS.get(name, (["--version"], ""))
    path = which(name, forbidden_root)
    if isinstance(path, NotAvailable):
        return ToolInfo(name, purpose, path, NotAvailable("not found"))
    probe = path
    if name == "gcore":  # a gdb script with no version flag of its own
        gdb = which("gdb", forbidden_root)
        probe = gdb if isinstance(gdb, str) else path
    result = run([probe, *args], timeout=timeout)
    text = (result.stdout + b"\n" + result.stderr).decode("utf-8", "replace")
    match = _VERSION.search(text)
    version: str | NotAvailable = (
        match.group(0) if match else NotAvailable(f"no version in its output ({result.describe()})")
    )
    return ToolInfo(name, purpose, path, version)

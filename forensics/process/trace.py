"""strace of a live process for a while, detached cleanly at the end.

``strace -f -tt -s 256 -p PID -o FILE`` runs in its own session; when the duration is over
it gets SIGINT (strace detaches from every traced thread and exits), then SIGTERM, and
only as a last resort SIGKILL of its group (which also detaches: ptrace ends with the
tracer). The target is never signalled. Before starting, ptrace permission is checked
(another tracer, Yama's ptrace_scope, uid), and strace's own refusal becomes the same
clear error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import tempfile
import time

from forensics.errors import EnvironmentProblem, NotFound

STRACE_ARGS = ("-f", "-tt", "-s", "256")
DETACH_WAIT = 10.0


@dataclasses.dataclass(frozen=True)
class TraceRun:
    """What one strace capture did."""

    pid: int
    argv: list[str]
    seconds: float
    returncode: int | None
    ended_by: str
    """``duration`` (detached by SIGINT), ``sigterm``, ``sigkill`` or ``exit`` (strace ended
    first: the target exited, or strace failed)."""
    stderr: str
    """strace's messages (attach/detach lines), bounded."""


def ptrace_problem(proc: str, pid: int) -> str | None:
    """Why attaching to ``pid`` will not work, or None."""
    try:
        with open(f"{proc}/{pid}/status", "rb") as src:
            status = src.read(1 << 16).decode("utf-8", "replace")
    except FileNotFoundError:
        return f"no process {pid}"
    except OSError as exc:
        return f"cannot read /proc/{pid}/status: {exc.strerror}"
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    tracer = fields.get("TracerPid", "0").strip()
    if tracer not in ("", "0"):
        return f"process {pid} is already traced by pid {tracer} (one tracer at a time)"
    try:
        with open(f"{proc}/sys/kernel/yama/ptrace_scope") as src:
            scope = src.read().strip()
    except OSError:
        scope = "0"
    if scope == "3":
        return "ptrace is disabled on this host (kernel.yama.ptrace_scope=3)"
    uids = fields.get("Uid", "").split()
    if os.geteuid() != 0 and (not uids or int(uids[0]) != os.geteuid()):
        return f"process {pid} belongs to uid {uids[0] if uids else '?'}: ptrace needs root or the same uid"
    return None


def check_target(proc: str, pid: int) -> None:
    problem = ptrace_problem(proc, pid)
    if problem is None:
        return
    if problem.startswith("no process"):
        raise NotFound(problem)
    raise EnvironmentProblem(problem, hint="Run as root (the appliance needs --cap-add SYS_PTRACE).")


def strace_argv(strace: str, pid: int, output: str) -> list[str]:
    return [strace, *STRACE_ARGS, "-p", str(pid), "-o", output]


def _not_permitted(text: str) -> bool:
    return "Operation not permitted" in text or "EPERM" in text


def trace(strace: str, pid: int, duration: float, output: str) -> TraceRun:
    """Trace ``pid`` into ``output`` for ``duration`` seconds, then detach."""
    argv = strace_argv(strace, pid, output)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errfile:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile,
                                 start_new_session=True)  # fmt: skip
        ended_by = "exit"
        try:
            child.wait(duration)
        except subprocess.TimeoutExpired:
            ended_by = "duration"
            for sig, label in ((signal.SIGINT, "duration"), (signal.SIGTERM, "sigterm")):
                child.send_signal(sig)
                ended_by = label
                try:
                    child.wait(DETACH_WAIT)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                ended_by = "sigkill"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        except BaseException:
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
        errfile.seek(0)
        stderr = errfile.read(64 * 1024).decode("utf-8", "replace")
    run = TraceRun(pid, argv, time.monotonic() - started, child.returncode, ended_by, stderr)
    if ended_by == "exit" and child.returncode != 0 and _not_permitted(stderr):
        raise EnvironmentProblem(f"strace could not attach to {pid}: {stderr.strip()[-300:]}",
                                 hint="ptrace is not permitted: run as root with CAP_SYS_PTRACE.")  # fmt: skip
    return run

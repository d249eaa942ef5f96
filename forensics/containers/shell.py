"""``container shell``: a look inside a running container without running its code.

The shell is the appliance's own (``bash`` from our PATH), started by ``nsenter`` into the
container's pid, net, ipc and uts namespaces, but not its mount namespace: our tools, our
libraries, our file system. ``unshare --mount --mount-proc`` then gives the shell a private
copy of our mount namespace with a /proc of the container's pid namespace, so ``ps``,
``ss``, ``ip`` and ``hostname`` answer for the container, while its files are reached as
data under ``/proc/1/root`` (``$CROOT``). Nothing is mounted on the host (the mount is
private and vanishes with the shell).

The container's process is taken from disk (``config.v2.json`` State.Pid), checked against
the Engine API when it answers, and refused unless ``/proc/<pid>/cgroup`` names the
container (a pid reused by another process must not be entered).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from forensics import tools
from forensics.errors import EnvironmentProblem, UsageProblem
from forensics.host.disk import DiskContainer
from forensics.host.engine import Engine
from forensics.records import NotAvailable

BANNER = (
    "forensics shell in container {name} (pid {pid} on the host): the container's pid, net, ipc "
    "and uts namespaces; the appliance's own tools and files. The container's files are under "
    "$CROOT=/proc/1/root: read them, never run them. Leave with exit."
)


@dataclasses.dataclass(frozen=True)
class ShellPlan:
    """The command that will run, decided before anything runs."""

    container_id: str
    name: str
    pid: int
    argv: list[str]
    env: dict[str, str]
    banner: str


def container_pid(container: DiskContainer, proc: Path, engine: Engine | NotAvailable) -> int:
    """The container's init process on the host, checked three ways."""
    if not container.state.running:
        raise UsageProblem(f"container {container.name or container.id[:12]} is not running "
                           f"({container.state.status}): there are no namespaces to enter")  # fmt: skip
    pid = container.state.pid
    if not isinstance(engine, NotAvailable):
        try:
            live = engine.inspect_container(container.id).get("State", {}).get("Pid")
        except Exception as exc:  # the daemon's view is a cross-check, not a need
            live = None
            del exc
        if isinstance(live, int) and live > 0 and live != pid:
            pid = live  # the disk file lags behind a restart; the cgroup check below decides
    if pid <= 0:
        raise EnvironmentProblem(f"no process recorded for container {container.id[:12]}")
    try:
        cgroup = (proc / str(pid) / "cgroup").read_text(errors="replace")
    except OSError as exc:
        raise EnvironmentProblem(
            f"process {pid} of container {container.id[:12]} is not visible: {exc}"
        ) from exc
    if not re.search(rf"[/-]{container.id}(?:\.scope)?$", cgroup, re.MULTILINE):
        raise EnvironmentProblem(
            f"process {pid} is not in container {container.id[:12]}'s cgroup (a reused pid?): refused"
        )
    return pid


def plan_shell(
    container: DiskContainer, proc: Path, engine: Engine | NotAvailable, forbidden_root: str,
    command: str | None = None,
) -> ShellPlan:  # fmt: skip
    """Everything about the shell to run, with our own binaries, or an error saying what lacks."""
    pid = container_pid(container, proc, engine)
    found = {}
    for tool in ("nsenter", "unshare", "bash"):
        path = tools.which(tool, forbidden_root=forbidden_root)
        if isinstance(path, NotAvailable):
            raise EnvironmentProblem(f"container shell needs {tool}: {path.reason}")
        found[tool] = path
    name = container.name or container.id[:12]
    shell = [found["bash"], "--noprofile", "--norc"] + (["-c", command] if command else ["-i"])
    argv = [found["nsenter"], f"--target={pid}", "--pid", "--net", "--ipc", "--uts", "--",
            found["unshare"], "--mount", "--mount-proc", "--fork", "--propagation", "private", "--", *shell]  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "TERM": os.environ.get("TERM", "xterm"),
        "HOME": "/root",
        "CROOT": "/proc/1/root",
        "FORENSICS_CONTAINER": container.id,
        "PS1": f"[forensics {name[:32]}] \\w \\$ ",
    }
    return ShellPlan(container.id, name, pid, argv, env, BANNER.format(name=name, pid=pid))

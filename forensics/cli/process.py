"""``forensics process``: the live host's processes, a pspy-style monitor, strace capture."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.errors import EnvironmentProblem
from forensics.records import NotAvailable

if TYPE_CHECKING:
    from forensics.context import HostContext
    from forensics.evidence.collection import Collection

app = typer.Typer(help="Processes: inventory, pspy-style monitor, strace capture.", no_args_is_help=True)


def live_proc(ctx: HostContext) -> str:
    proc = ctx.live_proc()
    if isinstance(proc, NotAvailable):
        raise EnvironmentProblem(f"no live processes to look at: {proc.reason}",
                                 hint="Run on the live host (or in the appliance with --pid=host).")  # fmt: skip
    return str(proc)


def own_container() -> str | None:
    from forensics.host.appliance import in_container, own_container_id

    if not in_container():
        return None
    cid = own_container_id()
    return cid if isinstance(cid, str) else None


@app.command("list")
def list_(
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """Every process: ids, argv, exe (hashed, never run), cwd, start, container, sockets, flags."""
    from forensics.process.inventory import list_processes
    from forensics.process.rules import evaluate

    ctx = host_context(root, docker_host, no_engine)
    proc = live_proc(ctx)
    disk = ctx.disk()
    listing = list_processes(proc, disk if disk.exists() else None, exclude_container=own_container(),
                             exclude_tree=os.getpid())  # fmt: skip
    findings = [f for p in listing.processes for f in evaluate(p, "process.list")]
    if json:
        emit_json({"boot_time": listing.boot_time, "processes": listing.processes, "findings": findings,
                   "excluded": listing.excluded, "problems": listing.problems})  # fmt: skip
        return
    from forensics.report import terminal

    terminal.process_list(listing, findings)


@app.command("monitor")
def monitor(
    duration: Annotated[float, typer.Option("--duration", help="Seconds to watch.", min=0.1)] = 10.0,
    poll_only: Annotated[
        bool, typer.Option("--no-netlink", help="Use pspy's inotify+poll method even when netlink works.")
    ] = False,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """New processes as they start (netlink process connector, else inotify + 100 ms /proc scans).

    With --json: one JSON line per event (``"kind": "exec"``), then a ``"kind": "summary"``
    line naming the method that ran.
    """
    import json as jsonlib
    import sys

    from forensics.process.attribution import ContainerIndex
    from forensics.process.monitor import Monitor, ProcessEvent
    from forensics.records import to_jsonable

    ctx = host_context(root, docker_host, no_engine)
    proc = live_proc(ctx)
    disk = ctx.disk()
    index = ContainerIndex.build(proc, disk.inventory() if disk.exists() else None)

    def show(event: ProcessEvent) -> None:
        if json:
            sys.stdout.write(jsonlib.dumps({"kind": "exec", **to_jsonable(event)}, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            from forensics.report import terminal

            terminal.process_event(event)

    result = Monitor(
        proc, str(ctx.root), index, show, use_netlink=not poll_only, exclude_tree=os.getpid()
    ).run(duration)
    summary = {"kind": "summary", "method": result.method, "started": result.started, "ended": result.ended,
               "events": len(result.events), "watches": result.watches, "notes": result.notes}  # fmt: skip
    if json:
        sys.stdout.write(jsonlib.dumps(summary, ensure_ascii=False) + "\n")
    else:
        typer.echo(
            f"method: {result.method}; {len(result.events)} events; " + "; ".join(result.notes), err=True
        )


@app.command("trace")
def trace(
    pid: Annotated[int, typer.Argument(help="The process to trace (host pid).", min=1)],
    duration: Annotated[float, typer.Option("--duration", help="Seconds to trace.", min=0.1)] = 10.0,
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the sealed archive.", file_okay=False)
    ] = Path("."),
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """``strace -f -tt -s 256`` of PID for --duration seconds, detached cleanly, sealed as an archive."""
    from forensics.process.trace import check_target
    from forensics.process.trace import trace as run_trace
    from forensics.tools import which

    ctx = host_context(root, docker_host, no_engine)
    proc = live_proc(ctx)
    strace = which("strace", str(ctx.root))
    if isinstance(strace, NotAvailable):
        raise EnvironmentProblem(strace.reason, hint="Install strace (the appliance image has it).")
    check_target(proc, pid)
    stored = None
    with (
        sealed(output, f"strace-{pid}") as writer,
        tempfile.TemporaryDirectory(prefix="forensics-strace-") as tmp,
    ):
        out = os.path.join(tmp, "strace.txt")
        result = run_trace(strace, pid, duration, out)
        if os.path.exists(out):
            with open(out, "rb") as src:
                stored = writer.add_fd(f"strace/{pid}.txt", src.fileno())
        writer.add_json(f"strace/{pid}.json", result)
    archive = writer.sealed
    if json:
        emit_json({"trace": result, "archive": archive, "file": stored})
        return
    typer.echo(f"strace of {pid}: {result.ended_by}, {result.seconds:.1f}s; archive {archive.path}")
    typer.echo(f"sha256  {archive.sha256}")


@contextlib.contextmanager
def sealed(output: Path, stem: str) -> Iterator[Collection]:
    """A standalone archive for one command: custody.json, manifest, sealed at the end."""
    from forensics.evidence.collection import collection

    with collection(output, stem) as writer:
        yield writer

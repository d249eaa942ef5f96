"""``forensics process``: the live host's processes, a pspy-style monitor, strace capture."""

from __future__ import annotations

import os

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.context import HostContext
from forensics.errors import EnvironmentProblem
from forensics.records import NotAvailable

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

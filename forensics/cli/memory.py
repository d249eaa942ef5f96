"""``forensics memory``: gcore dumps of live processes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.errors import EnvironmentProblem
from forensics.records import NotAvailable

app = typer.Typer(help="Memory: gcore dumps of live processes.", no_args_is_help=True)


@app.command("dump")
def dump(
    pid: Annotated[int, typer.Argument(help="The process to dump (host pid).", min=1)],
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the sealed archive.", file_okay=False)
    ] = Path("."),
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """``gcore`` of PID with its maps and status, hashed and sealed into an archive."""
    from forensics.cli.process import live_proc, sealed
    from forensics.memory.dump import dump as run_dump
    from forensics.tools import which

    ctx = host_context(root, docker_host, no_engine)
    proc = live_proc(ctx)
    gcore = which("gcore", str(ctx.root))
    if isinstance(gcore, NotAvailable):
        raise EnvironmentProblem(gcore.reason, hint="Install gdb (gcore comes with it).")
    with sealed(output, f"memory-{pid}") as writer:
        result = run_dump(writer, proc, pid, gcore)
        writer.add_json(f"memory/{pid}/dump.json", result)
    if json:
        emit_json({"dump": result, "archive": writer.sealed})
        return
    typer.echo(f"core of {pid}: {result.core.size} bytes, sha256 {result.core.sha256}")
    typer.echo(f"archive {writer.sealed.path}\nsha256  {writer.sealed.sha256}")


@app.command("secrets")
def secrets(
    target: Annotated[str, typer.Argument(help="A core file, or the pid of a live process.")],
    show: Annotated[
        bool, typer.Option("--unmasked", help="Print whole values (the JSON always has both).")
    ] = False,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """Credentials in a core dump or a live process's memory, with offsets and mappings."""
    import os

    from forensics.errors import NotFound
    from forensics.memory.secrets import scan_core, scan_pid

    if target.isdigit() and not os.path.exists(target):
        from forensics.cli.process import live_proc

        proc = live_proc(host_context(root, docker_host, no_engine))
        if not os.path.exists(f"{proc}/{target}"):
            raise NotFound(f"no process {target}")
        try:
            hits = scan_pid(proc, int(target))
        except PermissionError as exc:
            raise EnvironmentProblem(f"cannot read the memory of {target}: {exc}") from exc
    else:
        if not os.path.isfile(target):
            raise NotFound(f"no core file {target}")
        hits = scan_core(target)
    if json:
        emit_json({"target": target, "hits": hits})
        return
    for h in hits:
        where = f"{h.address:#x}" if h.address is not None else "-"
        typer.echo(f"{h.severity.value:8} {h.rule:22} off {h.offset:#x} addr {where} {h.mapping}: "
                   f"{h.value if show else h.masked}")  # fmt: skip
    typer.echo(f"{len(hits)} hits", err=True)

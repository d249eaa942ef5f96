"""``forensics memory``: gcore dumps of live processes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.errors import EnvironmentProblem
from forensics.records import NotAvailable

app = typer.Typer(help="Memory: gcore dumps of live processes, secrets, volatility3.", no_args_is_help=True)


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


@app.command("analyze")
def analyze(
    image: Annotated[
        Path, typer.Argument(help="A full memory image: raw, or an ELF core (QEMU dump-guest-memory).")
    ],
    plugin: Annotated[
        list[str] | None,
        typer.Option("--plugin", help="volatility3 plugin to run (repeatable; default the Linux ones)."),
    ] = None,
    symbols: Annotated[
        list[Path] | None,
        typer.Option(
            "--symbols",
            help="Directory of ISF symbol tables (repeatable; also FORENSICS_VOL_SYMBOLS).",
            file_okay=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per plugin.", min=1)] = 600.0,
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the sealed archive.", file_okay=False)
    ] = Path("."),
    json: Json = False,
) -> None:
    """volatility3 plugins over a memory image, offline; results sealed into an archive.

    banners.Banners always runs; linux.pslist, linux.bash and linux.lsmod run by default
    when an ISF symbol table for the image's kernel is given, and are recorded as skipped
    (with the kernel banner and how to make the table) when not.
    """
    from forensics.cli.process import sealed
    from forensics.memory.volatility import analyze as run_analysis

    result = run_analysis(str(image), plugin or (), [str(s) for s in symbols or ()], timeout=timeout)
    with sealed(output, "volatility") as writer:
        writer.add_json("memory/volatility/analysis.json", result)
    if json:
        emit_json({"analysis": result, "archive": writer.sealed})
        return
    typer.echo(f"image {result.image.path} ({result.image.format}, {result.image.size} bytes, "
               f"sha256 {result.image.sha256})")  # fmt: skip
    typer.echo(f"volatility3 {result.volatility}; network: {result.isolation}")
    for banner in result.banners:
        typer.echo(f"banner  {banner}")
    if not result.banners:
        typer.echo("no Linux kernel banner found")
    for r in result.results:
        detail = f"{len(r.rows)} rows{' (truncated)' if r.truncated else ''}" if r.reason == "" else r.reason
        typer.echo(f"{r.status.value:8} {r.plugin:24} {r.seconds:6.1f}s  {detail}")
    typer.echo(f"archive {writer.sealed.path}\nsha256  {writer.sealed.sha256}")

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.containers.limits import MAX_FILE, MAX_HASH
from forensics.records import NotAvailable

if TYPE_CHECKING:
    from forensics.containers.layers import ContainerLayers
    from forensics.context import HostContext
    from forensics.host.disk import DiskContainer

app = typer.Typer(help="Containers: list, diff, extract, compare (read from disk).", no_args_is_help=True)


@app.command("list")
def list_(
    json: Json = False, root: Root = None, docker_host: DockerHost = None, no_engine: NoEngine = False
) -> None:
    """Every container, from the Engine API and from disk, with which side knows it."""
    from forensics.containers.listing import merge

    ctx = host_context(root, docker_host, no_engine)
    disk = ctx.disk()
    disk.require()
    inventory = disk.inventory()
    engine = ctx.engine()
    api = engine if isinstance(engine, NotAvailable) else engine.containers()
    entries, findings = merge(api, inventory.containers)
    if json:
        emit_json({"containers": entries, "findings": findings, "problems": inventory.problems,
                   "engine": api.reason if isinstance(api, NotAvailable) else "ok"})  # fmt: skip
        return
    from forensics.report import terminal

    terminal.containers(entries)
    if isinstance(api, NotAvailable):
        terminal.err.print(f"engine not used: {terminal.safe(api.reason)}")
    for finding in findings:
        terminal.out.print(f"[red]{finding.severity.value}[/] {terminal.safe(finding.title)}")
    for problem in inventory.problems:
        terminal.err.print(f"problem: {terminal.safe(problem.path)}: {terminal.safe(problem.message)}")


def _container(ctx: HostContext, ref: str) -> tuple[DiskContainer, ContainerLayers]:
    from forensics.containers.layers import container_layers, resolve_container

    disk = ctx.disk()
    disk.require()
    inventory = disk.inventory()
    container = resolve_container(inventory, ref)
    return container, container_layers(disk, inventory, container)


ContainerRef = Annotated[
    str, typer.Argument(help="Container name, id or unique id prefix.", show_default=False)
]
MaxHash = Annotated[int, typer.Option("--max-hash-size", help="Largest file hashed, in bytes.", min=0)]


@app.command("diff")
def diff_(
    container: ContainerRef,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
    max_hash_size: MaxHash = MAX_HASH,
    no_yara: Annotated[bool, typer.Option("--no-yara", help="Do not run the YARA rules.")] = False,
) -> None:
    """What a container changed (A/C/D, as docker diff), read from disk.

    Each change with its metadata, hash, the image layer of the original, and the flags of
    the suspicious-change rules and YARA.
    """
    from forensics.containers.diff import DiffOptions, analyse, diff_record

    ctx = host_context(root, docker_host, no_engine)
    found, layers = _container(ctx, container)
    options = DiffOptions(hash_limit=max_hash_size, yara=not no_yara, engine=ctx.engine())
    result = analyse(found, layers, str(ctx.root), options)
    if json:
        emit_json(diff_record(result))
        return
    from forensics.report import terminal

    terminal.container_diff(result)


@app.command("compare")
def compare_(
    container: ContainerRef,
    path: Annotated[str, typer.Argument(help="Absolute path inside the container.", show_default=False)],
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """A file now against its original in the image, read from disk.

    A unified diff for text, sizes and hashes otherwise; passwd, shadow, group and sudoers
    parsed into account findings.
    """
    from forensics.containers.compare import compare, comparison_record

    ctx = host_context(root, docker_host, no_engine)
    found, layers = _container(ctx, container)
    result = compare(found, layers, str(ctx.root), os.fsencode(path))
    if json:
        emit_json(comparison_record(result))
        return
    from forensics.report import terminal

    terminal.container_compare(result)


@app.command("extract")
def extract_(
    container: ContainerRef,
    paths: Annotated[
        list[str], typer.Argument(help="Files or directories inside the container.", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the evidence archive.")],
    max_file_size: Annotated[
        int,
        typer.Option(
            "--max-file-size", help="Per-file cap in bytes; larger files are copied up to it.", min=1
        ),
    ] = MAX_FILE,
    case_id: Annotated[str, typer.Option("--case-id", help="Case number or name for custody.json.")] = "",
    examiner: Annotated[str, typer.Option("--examiner", help="Who collects, for custody.json.")] = "",
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """Copy files out of a container, from disk, into a sealed evidence archive.

    Never docker cp: the files are read from the layers on disk and stored with an index of
    their metadata and layer, custody and a manifest.
    """
    from forensics.containers.extract import write_archive

    ctx = host_context(root, docker_host, no_engine)
    found, layers = _container(ctx, container)
    raw = [os.fsencode(p) for p in paths]
    archive, extraction = write_archive(
        output, found, layers, str(ctx.root), raw, max_file_size, sys.argv, case_id, examiner
    )
    if json:
        emit_json({"archive": str(archive.path), "sha256": archive.sha256, "counts": extraction.counts,
                   "problems": extraction.problems})  # fmt: skip
        return
    from forensics.report import terminal

    terminal.container_extract(extraction, archive)


@app.command("shell")
def shell_(
    container: ContainerRef,
    command: Annotated[
        str | None,
        typer.Option("--command", "-c", help="Run this one command instead of an interactive shell."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for --command.", min=1)] = 60,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """A safe look inside a running container, with the appliance's own tools.

    The appliance's bash in the container's pid, net, ipc and uts namespaces, with a /proc of
    its own; the container's files under $CROOT, to read, never to run.
    """
    from forensics.containers.layers import resolve_container
    from forensics.containers.shell import plan_shell
    from forensics.errors import EnvironmentProblem

    ctx = host_context(root, docker_host, no_engine)
    proc = ctx.live_proc()
    if isinstance(proc, NotAvailable):
        raise EnvironmentProblem(f"container shell needs the live host: {proc.reason}")
    if os.geteuid() != 0:
        raise EnvironmentProblem("container shell needs root (entering namespaces)")
    disk = ctx.disk()
    disk.require()
    found = resolve_container(disk.inventory(), container)
    plan = plan_shell(found, proc, ctx.engine(), str(ctx.root), command)
    if command is not None:
        from forensics.tools import run

        result = run(plan.argv, timeout=timeout, env=plan.env)
        sys.stdout.buffer.write(result.stdout)
        sys.stderr.buffer.write(result.stderr)
        if result.returncode != 0:
            if result.returncode is None:
                typer.echo(f"error: {result.describe()}", err=True)
            raise typer.Exit(1 if result.returncode is None else result.returncode)
        return
    typer.echo(plan.banner, err=True)
    # The one tool not run through forensics.tools.run: an interactive shell needs the
    # terminal itself, not captured output. The argv is our own binaries only (plan_shell).
    import subprocess

    raise typer.Exit(subprocess.call(plan.argv, env=plan.env))

from __future__ import annotations

import os
from typing import Annotated

import typer

from forensics.binary.limits import BUDGET, MAX_BYTES
from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context

app = typer.Typer(
    help="Static binary triage: native ELF analysis, radare2 beside it when r2 is on PATH. Never executes.",
    no_args_is_help=True,
)

Container = Annotated[
    str | None,
    typer.Option("--container", help="Read FILE as this container sees it (name or id prefix), from disk."),
]


@app.command("analyze")
def analyze(
    file: Annotated[str, typer.Argument(help="The file: a host path, or a path inside --container.")],
    container: Container = None,
    no_r2: Annotated[
        bool, typer.Option("--no-r2", help="Do not run radare2 even when it is on PATH.")
    ] = False,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds for the native analysis.", min=1)
    ] = BUDGET,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Bytes the native analysis reads.", min=4096)
    ] = MAX_BYTES,
    strings: Annotated[int, typer.Option("--strings", help="Strings to show (terminal only).", min=0)] = 0,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """Hashes, type, ELF structure, strings, indicators and a verdict for one file."""
    from forensics.binary.analyze import Options, analyse_fd, open_host_file
    from forensics.binary.locate import find_container, locate
    from forensics.errors import NotFound, UsageProblem
    from forensics.host.rootfs import NotRegularFile, PathNotFound
    from forensics.records import display_path

    ctx = host_context(root, docker_host, no_engine)  # files come from disk; the engine is never asked
    forbidden = str(ctx.root) if str(ctx.root) != "/" else None
    options = Options(max_bytes=max_bytes, budget=budget, radare2=not no_r2, forbidden_root=forbidden)
    if container is None:
        fd = open_host_file(file)
        try:
            report = analyse_fd(fd, os.path.abspath(file), options)
        finally:
            os.close(fd)
    else:
        disk = ctx.disk()
        disk.require()
        found = locate(disk, find_container(disk, container), file)
        source = f"container {found.container.id[:12]} ({found.container.name}) {display_path(found.path)} [{found.layer}]"
        try:
            with found.fs.open_regular(found.path) as (fd, _st):
                report = analyse_fd(fd, source, options)
        except PathNotFound as exc:
            raise NotFound(str(exc)) from None
        except NotRegularFile as exc:
            raise UsageProblem(str(exc)) from None
    if json:
        emit_json(report)
        return
    from forensics.report import terminal

    terminal.binary_report(report, strings=strings)

from __future__ import annotations

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.containers.listing import merge
from forensics.records import NotAvailable

app = typer.Typer(help="Containers: list, diff, extract, compare (read from disk).", no_args_is_help=True)


@app.command("list")
def list_(
    json: Json = False, root: Root = None, docker_host: DockerHost = None, no_engine: NoEngine = False
) -> None:
    """Every container, from the Engine API and from disk, with which side knows it."""
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
        terminal.err.print(f"engine not used: {api.reason}")
    for finding in findings:
        terminal.out.print(f"[red]{finding.severity.value}[/] {finding.title}")
    for problem in inventory.problems:
        terminal.err.print(f"problem: {problem.path}: {problem.message}")

"""``forensics scan``: Docker Bench host checks, dockle-style lint, trivy."""

from __future__ import annotations

from typing import Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context

app = typer.Typer(
    help="Vulnerability and hardening scans: docker-bench host checks, dockle-style lint, trivy.",
    no_args_is_help=True,
)


@app.callback()
def _scan() -> None:
    """Vulnerability and hardening scans."""


@app.command("host")
def host(
    json: Json = False, root: Root = None, docker_host: DockerHost = None, no_engine: NoEngine = False
) -> None:
    """Docker Bench for Security's checks (CIS Docker Benchmark numbering), read-only."""
    from forensics.host.appliance import look_at_self
    from forensics.scan import bench

    ctx = host_context(root, docker_host, no_engine)
    me = look_at_self(ctx.engine())
    own = me.container_id if isinstance(me.container_id, str) else None
    report = bench.run_bench(bench.gather(ctx, own))
    if json:
        emit_json(report)
        return
    from forensics.report import terminal

    terminal.bench_report(report)


@app.command("lint")
def lint(
    image: Annotated[str, typer.Argument(help="Image name, id or id prefix.")],
    no_dockle: Annotated[
        bool, typer.Option("--no-dockle", help="Do not run dockle even when on PATH.")
    ] = False,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """dockle's checkpoints (CIS-DI, DKL-DI, DKL-LI), natively; dockle itself beside them when on PATH."""
    from forensics.scan.lint import lint_image

    report = lint_image(host_context(root, docker_host, no_engine), image, use_dockle=not no_dockle)
    if json:
        emit_json(report)
        return
    from forensics.report import terminal

    terminal.lint_report(report)

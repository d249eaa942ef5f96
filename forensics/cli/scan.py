"""``forensics scan``: Docker Bench host checks, dockle-style lint, trivy."""

from __future__ import annotations

from pathlib import Path
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


TrivyCache = Annotated[
    Path | None,
    typer.Option("--trivy-cache", help="Directory holding db/trivy.db: enables the vuln scanner [default: $TRIVY_CACHE_DIR].",
                 file_okay=False),
]  # fmt: skip


MaxMb = Annotated[
    int,
    typer.Option("--max-mb", min=1, help="Bound on the file content of a merged root built from disk (temp space).")
]  # fmt: skip


@app.command("image")
def image(
    target: Annotated[
        str, typer.Argument(help="Image name or id (exported through the engine), or a `docker save` tar.")
    ],
    trivy_cache: TrivyCache = None,
    max_mb: MaxMb = 4096,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """trivy, offline: secrets and misconfigurations always, vulnerabilities when a DB is given.

    Through the engine's export (layers attributed); with --no-engine or no engine, the
    image's merged root is built from its layer dirs on disk and scanned with trivy rootfs."""
    from forensics.scan.trivy import scan_image

    report = scan_image(host_context(root, docker_host, no_engine), target, trivy_cache, max_mb << 20)
    _trivy_out(report, json)


@app.command("container")
def container(
    name: Annotated[str, typer.Argument(help="Container name or id prefix.")],
    trivy_cache: TrivyCache = None,
    max_mb: MaxMb = 4096,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """trivy rootfs over a container's merged root (image layers + writable layer), built from
    disk into a private temp dir (nothing mounted, nothing run) and deleted after."""
    from forensics.scan.steps import container_merged

    ctx = host_context(root, docker_host, no_engine)
    _trivy_out(container_merged(ctx, name, trivy_cache, max_mb << 20), json)


def _trivy_out(report: object, json: bool) -> None:
    if json:
        emit_json(report)
        return
    from forensics.report import terminal

    terminal.trivy_report(report)
    built = getattr(report, "merged", None)
    if built is not None:
        terminal.out.print(
            f"merged root from disk: {built.entries} entries, {built.bytes_written} bytes "
            f"(bound {built.limit_bytes}), {built.whiteouts_applied} whiteouts applied, "
            f"{built.skipped_count} entries skipped, {built.cleared_setid} setuid/setgid cleared, "
            f"{built.seconds} s (--json lists them)"
        )
        terminal.out.print(terminal.safe(getattr(report, "attribution", "")))
        for problem in built.problems:
            terminal.out.print(f"  problem: {terminal.safe(problem)}")

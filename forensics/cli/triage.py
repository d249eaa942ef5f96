from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.errors import EXIT_ENVIRONMENT

DEFAULT_OUTPUT = Path(os.environ.get("FORENSICS_OUTPUT", "evidence"))


def step_settings(
    all_images: bool, monitor_seconds: float | None, dump: list[str] | None, dump_budget_mb: int | None
) -> dict[str, str]:
    """The environment the steps read their settings from (the flags override it).

    The steps read ``FORENSICS_*`` variables so that the appliance can be configured with
    ``docker run -e`` too; custody.json's command line records the flags.
    """
    out = {}
    if all_images:
        out["FORENSICS_ALL_IMAGES"] = "1"
    if monitor_seconds is not None:
        out["FORENSICS_MONITOR_SECONDS"] = f"{monitor_seconds:g}"
    if dump:
        out["FORENSICS_DUMP"] = ",".join(d.strip() for d in dump if d.strip())
    if dump_budget_mb is not None:
        out["FORENSICS_DUMP_BUDGET_MB"] = str(dump_budget_mb)
    return out


def triage(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the archive.")
    ] = DEFAULT_OUTPUT,
    case_id: Annotated[str, typer.Option("--case-id", help="Case number or name for custody.json.")] = "",
    examiner: Annotated[str, typer.Option("--examiner", help="Who collects, for custody.json.")] = "",
    containers: Annotated[
        list[str] | None, typer.Option("--containers", help="Only these containers (name or id prefix).")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these steps (name or area).")
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="Leave out these steps (name or area).")
    ] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Total seconds for the whole run.")] = None,
    all_images: Annotated[
        bool, typer.Option("--all-images", help="Analyse every image on disk, not only those containers use.")
    ] = False,
    monitor_seconds: Annotated[
        float | None, typer.Option("--monitor-seconds", min=0, help="Watch new processes this long (0: not).")
    ] = None,
    dump: Annotated[
        list[str] | None,
        typer.Option("--dump", help="Also dump this PID or container's processes (repeatable)."),
    ] = None,
    dump_budget_mb: Annotated[
        int | None, typer.Option("--dump-budget-mb", min=0, help="Total MiB of memory dumps.")
    ] = None,
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """Collect everything into one evidence archive: <output>/forensics-<host>-<UTC>.tar.gz."""
    from forensics.report import terminal
    from forensics.steps import TriageOptions
    from forensics.triage import run_triage

    settings = step_settings(all_images, monitor_seconds, dump, dump_budget_mb)
    for name, value in settings.items():
        os.environ[name] = value
        if not json:
            terminal.progress("triage", f"{name}={value}")
    ctx = host_context(root, docker_host, no_engine)
    options = TriageOptions(
        case_id=case_id,
        examiner=examiner,
        containers=list(containers or []),
        only=list(only or []),
        skip=list(skip or []),
        budget=budget,
    )
    if json:
        result = run_triage(ctx, output, options, argv=sys.argv)
    elif sys.stderr.isatty():
        with terminal.TriageProgress() as live:
            result = run_triage(ctx, output, options, argv=sys.argv, progress=live.update)
    else:
        result = run_triage(ctx, output, options, argv=sys.argv, progress=terminal.progress)
    if json:
        emit_json(
            {
                "archive": str(result.archive.path),
                "sha256": result.archive.sha256,
                "complete": result.complete,
                "steps": result.outcomes,
                "findings": len(result.findings),
            }
        )
    else:
        terminal.triage(result)
    if not result.complete:
        raise typer.Exit(EXIT_ENVIRONMENT)

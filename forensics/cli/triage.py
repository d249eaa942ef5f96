from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context
from forensics.errors import EXIT_ENVIRONMENT
from forensics.steps import TriageOptions
from forensics.triage import run_triage

DEFAULT_OUTPUT = Path(os.environ.get("FORENSICS_OUTPUT", "evidence"))


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
    json: Json = False,
    root: Root = None,
    docker_host: DockerHost = None,
    no_engine: NoEngine = False,
) -> None:
    """Collect everything into one evidence archive: <output>/forensics-<host>-<UTC>.tar.gz."""
    from forensics.report import terminal

    ctx = host_context(root, docker_host, no_engine)
    options = TriageOptions(
        case_id=case_id,
        examiner=examiner,
        containers=list(containers or []),
        only=list(only or []),
        skip=list(skip or []),
        budget=budget,
    )
    result = run_triage(ctx, output, options, argv=sys.argv, progress=None if json else terminal.progress)
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

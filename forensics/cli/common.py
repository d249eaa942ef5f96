"""Options every command shares, and the two ways a command answers (JSON or terminal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from forensics.context import HostContext

Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
Root = Annotated[
    Path | None,
    typer.Option("--root", help="The host's root file system [default: /host if it exists, else /].",
                 file_okay=False),
]  # fmt: skip
DockerHost = Annotated[
    str | None,
    typer.Option(
        "--docker-host", help="Engine API URL [default: DOCKER_HOST, else the socket under the root]."
    ),
]
NoEngine = Annotated[bool, typer.Option("--no-engine", help="Work from disk alone; never ask the daemon.")]


def host_context(root: Path | None, docker_host: str | None, no_engine: bool) -> HostContext:
    from forensics.context import HostContext

    return HostContext.build(root, docker_host, no_engine)


def emit_json(value: Any) -> None:
    from forensics.records import to_jsonable

    # One write: json.dump writes each token on its own, and with PYTHONUNBUFFERED (set in
    # the appliance) each is a write(2): 34,000 of them for image layers of a Debian image.
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")

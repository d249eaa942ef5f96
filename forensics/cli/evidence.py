from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forensics.cli.common import Json, emit_json
from forensics.errors import EXIT_CHECK_FAILED

app = typer.Typer(help="Evidence archives: verify.", no_args_is_help=True)


@app.command("verify")
def verify_(
    target: Annotated[Path, typer.Argument(help="An archive (.tar.gz) or its unpacked directory.")],
    json: Json = False,
) -> None:
    """Recompute every hash; exit 1 with the changed, missing and extra files."""
    from forensics.evidence.verify import verify

    result = verify(target)
    if json:
        emit_json({**{k: v for k, v in vars(result).items()}, "intact": result.intact})
    else:
        from forensics.report import terminal

        terminal.verification(result)
    if not result.intact:
        raise typer.Exit(EXIT_CHECK_FAILED)

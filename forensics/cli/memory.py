"""``forensics memory``: gcore dumps of live processes, credential search in dumps."""

from __future__ import annotations

import typer

app = typer.Typer(help="Memory: gcore dumps, secret search.", no_args_is_help=True)

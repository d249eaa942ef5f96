"""The ``forensics`` command: one Typer sub-app per area, wired here; no logic."""

from __future__ import annotations

import sys

import typer

from forensics import __version__
from forensics.cli import (
    binary,
    container,
    doctor,
    evidence,
    image,
    memory,
    process,
    report,
    scan,
    triage,
)
from forensics.errors import EXIT_USAGE, ForensicsError

app = typer.Typer(
    name="forensics",
    help="Forensic triage of a Docker host: read, don't touch; every byte hashed.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forensics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Forensic triage of a Docker host."""


app.add_typer(container.app, name="container")
app.add_typer(evidence.app, name="evidence")
app.add_typer(binary.app, name="binary")
app.add_typer(scan.app, name="scan")
app.add_typer(process.app, name="process")
app.add_typer(memory.app, name="memory")
app.add_typer(image.app, name="image")
app.command("triage")(triage.triage)
app.command("doctor")(doctor.doctor)
app.command("report")(report.report)


def main(argv: list[str] | None = None) -> int:
    """Entry point: map our exceptions to a message, a hint and an exit code.

    Typer (standalone mode) handles usage errors (exit 2) and ``typer.Exit``; everything
    of ours arrives here as a :class:`ForensicsError`.
    """
    try:
        app(args=argv, prog_name="forensics")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_USAGE)
    except ForensicsError as exc:
        typer.echo(f"error: {exc}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

"""The ``forensics`` command: one Typer sub-app per area, wired here; no logic.

Typer turns every registered command into a click command (signature, type hints,
parameters) each time the program runs: for all of them about 70 ms, more than most
commands' own start. So :func:`main` wires only the group or command that its first
argument names, and the whole CLI (``app``, for ``--help``, an unknown name and tests)
is built on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import resource
import sys
from typing import Any

import typer

from forensics import __version__
from forensics.errors import EXIT_USAGE, ForensicsError

GROUPS = {
    "container": "forensics.cli.container",
    "evidence": "forensics.cli.evidence",
    "binary": "forensics.cli.binary",
    "scan": "forensics.cli.scan",
    "process": "forensics.cli.process",
    "memory": "forensics.cli.memory",
    "image": "forensics.cli.image",
}
"""Sub-app name -> the module whose ``app`` it is (in the order ``--help`` lists them)."""
COMMANDS = {
    "triage": ("forensics.cli.triage", "triage"),
    "doctor": ("forensics.cli.doctor", "doctor"),
    "report": ("forensics.cli.report", "report"),
}
"""Top-level command -> (module, function)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forensics {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Forensic triage of a Docker host."""


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI with every group and command, or with only the one named ``only``."""
    cli = typer.Typer(
        name="forensics",
        help="Forensic triage of a Docker host: read, don't touch; every byte hashed.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=False,
    )
    cli.callback()(_root)
    for name, module in GROUPS.items():
        if only in (None, name):
            cli.add_typer(importlib.import_module(module).app, name=name)
    for name, (module, function) in COMMANDS.items():
        if only in (None, name):
            cli.command(name)(getattr(importlib.import_module(module), function))
    return cli


_whole: list[typer.Typer] = []


def whole_app() -> typer.Typer:
    """The whole CLI, built once."""
    if not _whole:
        _whole.append(build_app())
    return _whole[0]


def __getattr__(name: str) -> Any:
    """``forensics.cli.app`` is :func:`whole_app`, built when first asked for (PEP 562)."""
    if name == "app":
        return whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: map our exceptions to a message, a hint and an exit code.

    Typer (standalone mode) handles usage errors (exit 2) and ``typer.Exit``; everything
    of ours arrives here as a :class:`ForensicsError`.
    """
    args = sys.argv[1:] if argv is None else argv
    first = args[0] if args else ""
    cli = build_app(first) if first in GROUPS or first in COMMANDS else whole_app()
    try:
        cli(args=args, prog_name="forensics")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_USAGE)
    except ForensicsError as exc:
        typer.echo(f"error: {exc}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    return 0


OPEN_FILES = 65536
"""The open-file soft limit the command asks for (up to the hard limit)."""


def more_open_files(want: int = OPEN_FILES) -> int:
    """Raise this process's open-file soft limit toward ``want`` (never past the hard
    limit); the soft limit after. A triage holds many fds at once: two YARA batches of
    memfds, layer directories, sockets. A shell's usual 1024 would cut YARA's batches to a
    few hundred files, each batch a yara run."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # else kept as it was: the batches adapt to it
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run() -> None:
    """Console-script entry point."""
    more_open_files()
    sys.exit(main())


if __name__ == "__main__":
    run()

"""Command groups whose analyses later issues add. Each says what it will hold."""

from __future__ import annotations

import typer

PLANNED: dict[str, str] = {}


def apps() -> dict[str, typer.Typer]:
    groups = {}
    for name, help_text in PLANNED.items():
        sub = typer.Typer(help=help_text + " (not built yet)", no_args_is_help=True)

        @sub.callback(invoke_without_command=True)
        def _planned() -> None:
            pass

        groups[name] = sub
    return groups

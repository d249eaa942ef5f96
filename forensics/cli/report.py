from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer

from forensics.cli.common import Json, emit_json
from forensics.errors import UsageProblem


def report(
    archive: Annotated[Path, typer.Argument(help="A sealed archive (.tar.gz) or its unpacked directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the reports.")] = Path("."),
    json: Json = False,
) -> None:
    """Re-render report.md, report.html and findings.sarif from an archive (the archive is not changed)."""
    from forensics.report import document, sarif
    from forensics.report.view import load

    view = load(archive)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("report.md", document.markdown(view)),
        ("report.html", document.html_report(view)),
    ):
        target = output / name
        if target.exists():
            raise UsageProblem(f"{target} exists; choose another --output")
        target.write_text(text, encoding="utf-8")
        written.append(str(target))
    target = output / "findings.sarif"
    if target.exists():
        raise UsageProblem(f"{target} exists; choose another --output")
    target.write_text(jsonlib.dumps(sarif.render(view), indent=2) + "\n", encoding="utf-8")
    written.append(str(target))
    if json:
        emit_json({"written": written, "findings": len(view.findings)})
    else:
        typer.echo("\n".join(written))

"""What a report is rendered from: the archive's own JSON files, nothing else.

The triage builds a :class:`ReportView` from its records just before sealing, and
``forensics report ARCHIVE`` loads the same view from a sealed archive, so both render the
same thing from the same data.
"""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path
from typing import Any

from forensics.errors import NotFound

VIEW_FILES = ("custody.json", "findings.json", "steps.json", "containers.json")
MAX_VIEW_FILE = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ReportView:
    custody: dict[str, Any]
    findings: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    containers: list[dict[str, Any]]
    files: list[str]
    """Every file path in the archive, for links."""


def from_records(values: dict[str, Any], files: list[str]) -> ReportView:
    """From the JSON-ready values the triage is about to store."""
    return ReportView(
        custody=values.get("custody.json") or {},
        findings=(values.get("findings.json") or {}).get("findings", []),
        steps=values.get("steps.json") or [],
        containers=values.get("containers.json") or [],
        files=sorted(files),
    )


def load(path: Path) -> ReportView:
    """From a sealed archive (.tar.gz) or its unpacked top directory."""
    values: dict[str, Any] = {}
    files: list[str] = []
    if path.is_dir():
        top = (
            path
            if (path / "MANIFEST.sha256").exists()
            else next((p for p in path.iterdir() if (p / "MANIFEST.sha256").exists()), path)
        )
        for file in top.rglob("*"):
            if file.is_file() and not file.is_symlink():
                files.append(file.relative_to(top).as_posix())
        for name in VIEW_FILES:
            if (top / name).is_file():
                values[name] = json.loads((top / name).read_text(encoding="utf-8"))
    elif path.is_file():
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                parts = member.name.split("/", 1)
                if len(parts) != 2 or not member.isfile():
                    continue
                files.append(parts[1])
                if parts[1] in VIEW_FILES and member.size <= MAX_VIEW_FILE:
                    src = tar.extractfile(member)
                    if src is not None:
                        values[parts[1]] = json.loads(src.read().decode("utf-8"))
    else:
        raise NotFound(f"{path} is neither an archive nor a directory")
    return from_records(values, files)

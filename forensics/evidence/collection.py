"""A standalone evidence archive for one command (a memory dump, a trace, an extraction).

Like a triage's archive, it holds custody.json and MANIFEST.sha256 and is sealed with its
``.sha256`` beside it. When the command fails half-way, what was collected is still
sealed, with custody marked incomplete and the error named: evidence is never left loose.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from forensics import __version__
from forensics.errors import EnvironmentProblem
from forensics.evidence.archive import SealedArchive, seal
from forensics.evidence.custody import Custody
from forensics.evidence.names import segment
from forensics.evidence.writer import EvidenceWriter
from forensics.records import iso_utc, utc_now


class Collection(EvidenceWriter):
    """An EvidenceWriter that knows the archive it was sealed into (after the ``with``)."""

    sealed: SealedArchive


@contextlib.contextmanager
def collection(
    output: Path, stem: str, argv: list[str] | None = None, options: dict[str, Any] | None = None
) -> Iterator[Collection]:
    """Stage under ``output``, seal into ``<output>/forensics-<stem>-<UTC>.tar.gz`` at the end."""
    started = utc_now()
    try:
        output.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write to {output}: {exc}") from exc
    top = staging / f"forensics-{segment(stem)[:80]}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    writer = Collection(top)
    custody = Custody(
        case_id="",
        examiner="",
        tool="forensic-container",
        tool_version=__version__,
        command_line=list(argv if argv is not None else sys.argv),
        started_utc=iso_utc(started),
        host={"live_hostname": socket.gethostname()},
        options=options or {},
    )
    try:
        try:
            yield writer
            custody.complete = True
        except BaseException as exc:
            custody.not_done = [f"{type(exc).__name__}: {exc}"]
            raise
        finally:
            custody.ended_utc = iso_utc(utc_now())
            writer.add_json("custody.json", custody)
            writer.write_manifest()
            writer.sealed = seal(top, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""The acquisition log: one JSON line per event, written as it happens."""

from __future__ import annotations

import json
import threading
from typing import Any

from forensics.evidence.writer import EvidenceWriter
from forensics.records import iso_utc, to_jsonable, utc_now

ACQUISITION_LOG = "acquisition.log"


class AcquisitionLog:
    """Appends events to ``acquisition.log`` in the archive and keeps them for the summary."""

    def __init__(self, writer: EvidenceWriter) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def event(self, step: str, status: str, **fields: Any) -> dict[str, Any]:
        """Record one event. ``status``: started, ok, failed, skipped, timeout, warning, info."""
        record = {"time": iso_utc(utc_now()), "step": step, "status": status, **to_jsonable(fields)}
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            self.events.append(record)
            self._writer.append_line(ACQUISITION_LOG, line)
        return record

    def warning(self, step: str, message: str, **fields: Any) -> None:
        self.event(step, "warning", message=message, **fields)

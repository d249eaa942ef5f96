"""The chain-of-custody record written as custody.json."""

from __future__ import annotations

import dataclasses
from typing import Any

from forensics.records import NotAvailable


@dataclasses.dataclass
class Custody:
    """Who collected what, with which tool, from which host, when. Filled during a run."""

    case_id: str
    """The examiner's case number or name."""
    examiner: str
    """Who ran the collection."""
    tool: str
    """Tool name."""
    tool_version: str
    """forensics package version."""
    command_line: list[str]
    """The full command line of this run."""
    started_utc: str
    """UTC time at start, ISO 8601."""
    ended_utc: str | None = None
    """UTC time at the end, ISO 8601 (None until sealed)."""
    complete: bool = False
    """True only when every planned step ran to its end (ok, failed or skipped)."""
    not_done: list[str] = dataclasses.field(default_factory=list)
    """Steps that did not run to their end (interrupted, out of budget)."""
    appliance: dict[str, Any] | NotAvailable = dataclasses.field(
        default_factory=lambda: NotAvailable("not running as the appliance container")
    )
    """The appliance's own container id and image id, when run in a container."""
    host: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Host identifiers: hostname, machine-id, boot-id, kernel, docker daemon id."""
    clock: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The appliance's clock next to the host's and the daemon's readings."""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Options the run was given: root, engine, output, limits."""

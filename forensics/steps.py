"""The triage step registry: what a step needs, declared as data; one line to register.

Each area module defines its steps and calls :func:`register` once per step at its end.
The runner (:mod:`forensics.triage`) checks each step's needs and records
``skipped: <reason>`` instead of running a step that cannot work here.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
from collections.abc import Callable
from typing import Any

from forensics.context import HostContext
from forensics.evidence.log import AcquisitionLog
from forensics.evidence.writer import StepSink
from forensics.findings import Finding
from forensics.records import NotAvailable
from forensics.tools import which


class Phase(enum.IntEnum):
    """Order of volatility (RFC 3227): most volatile first."""

    CONTEXT = 0
    PROCESSES = 10
    MEMORY = 20
    NETWORK = 30
    LIVE_STATE = 40
    FILESYSTEMS = 50
    IMAGES = 60
    SCANS = 70


class Need(enum.Enum):
    ENGINE = "engine"
    """The Engine API answers."""
    DOCKER_DATA = "docker-data"
    """A docker data root exists under the host root."""
    LIVE_HOST = "live-host"
    """The root is the running system (its /proc is visible)."""
    ROOT_USER = "root-user"
    """Effective uid 0."""


@dataclasses.dataclass
class TriageOptions:
    """What the triage was asked to do."""

    case_id: str = ""
    examiner: str = ""
    containers: list[str] = dataclasses.field(default_factory=list)
    """Narrow per-container steps to these names or id prefixes (empty: all)."""
    only: list[str] = dataclasses.field(default_factory=list)
    """Run only these steps: full names, or an area prefix such as ``containers``."""
    skip: list[str] = dataclasses.field(default_factory=list)
    """Leave these steps out (same matching as ``only``)."""
    budget: float | None = None
    """Total seconds for the run; steps that would start after it are not run."""

    def selects(self, step_name: str) -> bool:
        def match(patterns: list[str]) -> bool:
            return any(step_name == p or step_name.startswith(p.rstrip(".") + ".") for p in patterns)

        return (not self.only or match(self.only)) and not match(self.skip)


@dataclasses.dataclass
class StepContext:
    """What a running step gets: the host, its sink, the log, findings, shared state."""

    step: str
    host: HostContext
    sink: StepSink
    log: AcquisitionLog
    options: TriageOptions
    state: dict[str, Any]
    """Results earlier steps share with later ones (e.g. ``disk_inventory``)."""
    findings: list[Finding] = dataclasses.field(default_factory=list)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def warn(self, message: str, **fields: Any) -> None:
        """Recoverable trouble: logged with the step, and the step goes on."""
        if not self.sink.closed:
            self.log.warning(self.step, message, **fields)

    def report(self, finding: Finding) -> None:
        with self._lock:
            self.findings.append(finding)


@dataclasses.dataclass(frozen=True)
class Step:
    """One unit of a triage."""

    name: str
    phase: Phase
    run: Callable[[StepContext], None]
    needs: frozenset[Need] = frozenset()
    tools: tuple[str, ...] = ()
    """External tools it cannot do without (others it may use are optional)."""
    timeout: float = 300.0
    description: str = ""
    after: tuple[str, ...] | None = None
    """Steps of the same phase whose results this one needs. ``None`` (the default): all
    steps before it in the plan, i.e. it runs alone. A tuple lets it run beside the other
    steps of its phase. Every step waits for all steps of earlier phases either way."""


REGISTRY: dict[str, Step] = {}


def register(step: Step) -> Step:
    """Add a step; a second step of the same name is a bug and is refused."""
    if step.name in REGISTRY:
        raise ValueError(f"triage step {step.name!r} is registered twice")
    REGISTRY[step.name] = step
    return step


def unmet_need(step: Step, host: HostContext) -> str | None:
    """Why the step cannot run here, or None when it can."""
    for need in sorted(step.needs, key=lambda n: n.value):
        if need is Need.ENGINE:
            engine = host.engine()
            if isinstance(engine, NotAvailable):
                return f"no Engine API: {engine.reason}"
        elif need is Need.DOCKER_DATA and not host.disk().exists():
            return f"no docker data under {host.root}"
        elif need is Need.LIVE_HOST:
            proc = host.live_proc()
            if isinstance(proc, NotAvailable):
                return proc.reason
        elif need is Need.ROOT_USER and os.geteuid() != 0:
            return "needs root (effective uid 0)"
    for tool in step.tools:
        found = which(tool, forbidden_root=str(host.root))
        if isinstance(found, NotAvailable):
            return found.reason
    return None

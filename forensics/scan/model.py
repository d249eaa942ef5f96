"""Records every scan returns, and how a result becomes a :class:`Finding`."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from forensics.findings import Finding, Severity
from forensics.records import NotAvailable


class Status(enum.Enum):
    """Docker Bench's statuses, plus dockle's levels (a check table says which apply)."""

    PASS = "PASS"  # noqa: S105
    WARN = "WARN"
    INFO = "INFO"
    NOTE = "NOTE"
    FATAL = "FATAL"
    SKIP = "SKIP"


@dataclasses.dataclass(frozen=True)
class CheckDef:
    """One check as its tool numbers and describes it."""

    id: str
    """The tool's own id: ``5.4`` (CIS Docker Benchmark) or ``CIS-DI-0001`` (dockle)."""
    level: Status
    """What a failure is reported as (WARN, FATAL, INFO, NOTE)."""
    title: str
    remediation: str
    severity: Severity = Severity.MEDIUM
    """Severity of the Finding a failure becomes."""
    supported: bool = True
    """False: the tool itself does not decide it (reported as SKIP or NOTE)."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one subject."""

    id: str
    status: Status
    title: str
    subject: str
    """``host``, ``container:<id>`` or ``image:<id>``."""
    details: str = ""
    """What was seen (a value, a path, a reason the check could not decide)."""
    remediation: str = ""


@dataclasses.dataclass(frozen=True)
class ToolOutcome:
    """An external tool run beside (or instead of) the native checks."""

    tool: str
    status: str
    """ran, failed or skipped."""
    reason: str = ""
    argv: tuple[str, ...] = ()
    returncode: int | None = None
    output: Any = None
    """The tool's parsed JSON, as it came."""


def result(check: CheckDef, status: Status, subject: str, details: str = "") -> CheckResult:
    return CheckResult(check.id, status, check.title, subject, details, check.remediation)


def finding_for(res: CheckResult, check: CheckDef, rule_prefix: str, source: str,
                evidence: tuple[str, ...], failing: frozenset[Status]) -> Finding | None:  # fmt: skip
    """A failing result as a Finding; None when the result is not a failure."""
    if res.status not in failing:
        return None
    details = res.details + (f"\nRemediation: {res.remediation}" if res.remediation else "")
    return Finding(
        rule=f"{rule_prefix}.{res.id}",
        severity=check.severity,
        title=f"{res.id} {res.title}",
        subject=res.subject,
        source=source,
        evidence=evidence,
        details=details.strip(),
    )


def na_text(value: object) -> str:
    return value.reason if isinstance(value, NotAvailable) else str(value)

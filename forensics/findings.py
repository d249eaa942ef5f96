"""The one Finding model every analysis reports through."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Any

from forensics.records import to_jsonable


class Severity(enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclasses.dataclass(frozen=True)
class Finding:
    """Something noteworthy, with where its evidence lies in the archive."""

    rule: str
    """Identifier of the rule that fired, e.g. ``inventory.hidden-container``."""
    severity: Severity
    """How bad it is."""
    title: str
    """One line a responder reads first."""
    subject: str
    """What it is about: ``container:<id>``, ``image:<id>``, ``process:<pid>``, ``host``."""
    source: str
    """The analysis (step) that produced it."""
    evidence: tuple[str, ...] = ()
    """Paths inside the archive that back it up."""
    details: str = ""
    """More words, when the title is not enough."""

    @property
    def id(self) -> str:
        """Stable id: the same rule on the same subject and title is the same finding."""
        key = f"{self.rule}\0{self.subject}\0{self.title}".encode()
        return hashlib.sha256(key).hexdigest()[:16]


def deduplicate(findings: list[Finding]) -> list[Finding]:
    """One finding per id (evidence merged), worst first."""
    merged: dict[str, Finding] = {}
    for finding in findings:
        prior = merged.get(finding.id)
        if prior is None:
            merged[finding.id] = finding
        else:
            evidence = tuple(dict.fromkeys(prior.evidence + finding.evidence))
            merged[finding.id] = dataclasses.replace(prior, evidence=evidence)
    return sorted(merged.values(), key=lambda f: (f.severity.rank, f.rule, f.subject))


def finding_record(finding: Finding) -> dict[str, Any]:
    """A finding as findings.json holds it: its id first, then its fields."""
    return {"id": finding.id, **to_jsonable(finding)}

"""findings.sarif: the findings as SARIF 2.1.0, for tools that read static-analysis results."""

from __future__ import annotations

from typing import Any

from forensics import __version__
from forensics.report.view import ReportView

_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def render(view: ReportView) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding in view.findings:
        rule = str(finding.get("rule", "unknown"))
        rules.setdefault(rule, {"id": rule, "shortDescription": {"text": rule}})
        locations = [
            {"physicalLocation": {"artifactLocation": {"uri": path, "uriBaseId": "ARCHIVE"}}}
            for path in finding.get("evidence") or []
        ]
        results.append(
            {
                "ruleId": rule,
                "level": _LEVEL.get(str(finding.get("severity")), "note"),
                "message": {"text": str(finding.get("title", ""))},
                "locations": locations,
                "partialFingerprints": {"findingId": str(finding.get("id", ""))},
                "properties": {
                    "severity": finding.get("severity"),
                    "subject": finding.get("subject"),
                    "source": finding.get("source"),
                    "details": finding.get("details", ""),
                },
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "forensic-container",
                        "version": __version__,
                        "rules": sorted(rules.values(), key=lambda r: r["id"]),
                    }
                },
                "originalUriBaseIds": {"ARCHIVE": {"description": {"text": "the unpacked evidence archive"}}},
                "results": results,
            }
        ],
    }

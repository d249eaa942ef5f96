"""Rendering only: the terminal, findings.json, report.md and report.html."""

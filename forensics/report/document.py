"""report.md and report.html: findings first, then a section per container, links to evidence.

report.html is one self-contained file: inline CSS, no script, nothing fetched. Every
value shown comes from the suspect host and is escaped.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from forensics.report.view import ReportView

SEVERITIES = ("critical", "high", "medium", "low", "info")


def _subject_findings(view: ReportView, subject: str) -> list[dict[str, Any]]:
    return [f for f in view.findings if f.get("subject") == subject]


def _container_files(view: ReportView, cid: str) -> list[str]:
    prefixes = (f"containers/{cid}/", f"disk/containers/{cid}/", f"engine/containers/{cid}.json")
    return [f for f in view.files if f.startswith(prefixes)]


def _hex(image_id: object) -> str:
    text = str(image_id or "")
    text = text.removeprefix("image:").removeprefix("sha256:")
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else ""


def images(view: ReportView) -> list[dict[str, Any]]:
    """The images the containers use (and any the archive holds under ``images/<hex>/``):
    hex id, the names containers call it by, the containers, findings and evidence files."""
    found: dict[str, dict[str, Any]] = {}

    def entry(hexid: str) -> dict[str, Any]:
        return found.setdefault(
            hexid, {"hex": hexid, "names": [], "containers": [], "findings": [], "files": []}
        )

    for c in view.containers:
        hexid = _hex(c.get("image_id"))
        if hexid:
            item = entry(hexid)
            if c.get("image") and str(c.get("image")) not in item["names"]:
                item["names"].append(str(c.get("image")))
            item["containers"].append(c)
    for path in view.files:
        parts = path.split("/")
        if len(parts) >= 3 and parts[0] == "images" and _hex(parts[1]):
            entry(parts[1])
    for hexid, item in found.items():
        item["findings"] = [f for f in view.findings if _hex(f.get("subject")) == hexid
                            and str(f.get("subject", "")).startswith("image:")]  # fmt: skip
        item["files"] = [f for f in view.files if f.startswith(f"images/{hexid}/") or f in (
            f"disk/images/{hexid}.json", f"engine/images/{hexid}.json", f"engine/image-history/{hexid}.json")]  # fmt: skip
    return [found[k] for k in sorted(found)]


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(view: ReportView) -> str:
    custody = view.custody
    counts = Counter(str(f.get("severity")) for f in view.findings)
    lines = [
        "# Forensic triage report",
        "",
        f"- case: {_md(custody.get('case_id', ''))}; examiner: {_md(custody.get('examiner', ''))}",
        f"- host: {_md((custody.get('host') or {}).get('hostname', ''))}",
        f"- collected: {custody.get('started_utc', '')} to {custody.get('ended_utc', '')} (UTC)",
        f"- complete: {custody.get('complete')}"
        + (f"; not done: {', '.join(custody.get('not_done') or [])}" if custody.get("not_done") else ""),
        "- findings: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in SEVERITIES),
        "",
        "## Findings",
        "",
    ]
    if view.findings:
        lines += ["| severity | title | subject | evidence |", "| --- | --- | --- | --- |"]
        for f in view.findings:
            evidence = ", ".join(f"[{_md(p)}]({_md(p)})" for p in f.get("evidence") or [])
            lines.append(
                f"| {f.get('severity')} | {_md(f.get('title'))} | {_md(f.get('subject'))} | {evidence} |"
            )
    else:
        lines.append("No findings.")
    lines += ["", "## Containers", ""]
    for c in view.containers:
        cid = str(c.get("id", ""))
        lines += [f"### {_md(c.get('name') or cid[:12])} ({cid[:12]})", ""]
        lines.append(
            f"image {_md(c.get('image'))}, state {_md(c.get('state'))}, seen by {_md(c.get('source'))}"
        )
        for f in _subject_findings(view, f"container:{cid}"):
            lines.append(f"- **{f.get('severity')}** {_md(f.get('title'))}")
        for path in _container_files(view, cid):
            lines.append(f"- [{_md(path)}]({_md(path)})")
        lines.append("")
    lines += ["## Images", ""]
    for image in images(view):
        lines += [
            f"### {_md(', '.join(image['names']) or image['hex'][:12])} (sha256:{image['hex'][:12]})",
            "",
        ]
        for f in image["findings"]:
            lines.append(f"- **{f.get('severity')}** {_md(f.get('title'))}")
        for path in image["files"]:
            lines.append(f"- [{_md(path)}]({_md(path)})")
        lines.append("")
    timeline = [p for p in view.files if p.startswith("timeline/")]
    if timeline:
        lines += ["## Timelines", ""] + [f"- [{_md(p)}]({_md(p)})" for p in timeline] + [""]
    lines += ["## Steps", "", "| step | status | seconds | message |", "| --- | --- | --- | --- |"]
    for s in view.steps:
        lines.append(
            f"| {_md(s.get('name'))} | {_md(s.get('status'))} | {float(s.get('seconds') or 0):.1f} "
            f"| {_md(s.get('message', ''))} |"
        )
    return "\n".join(lines) + "\n"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}td{overflow-wrap:anywhere}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
.critical{background:#7a0010;color:#fff}.high{background:#d9534f;color:#fff}.medium{background:#f0ad4e}
.low{background:#d9edf7}.info{background:#eee}code{font-size:12px}
nav{border:1px solid #ccc;padding:.3em 1em;display:inline-block}nav ul{margin:.2em 0;padding-left:1.2em}
tr.finding:target{outline:3px solid #06c}
"""


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: str) -> str:
    return f'<a href="{_h(path)}"><code>{_h(path)}</code></a>'


def _anchor(finding: dict[str, Any]) -> str:
    fid = str(finding.get("id", ""))
    return "finding-" + (fid if fid.isalnum() else _h(fid).replace(" ", "_"))


def _finding_item(f: dict[str, Any]) -> str:
    sev = _h(f.get("severity"))
    return f'<li><span class="{sev}">{sev}</span> <a href="#{_anchor(f)}">{_h(f.get("title"))}</a></li>'


def _toc(view: ReportView) -> str:
    items = [f'<li><a href="#findings">Findings ({len(view.findings)})</a></li>',
             f'<li><a href="#containers">Containers ({len(view.containers)})</a><ul>']  # fmt: skip
    for c in view.containers:
        cid = str(c.get("id", ""))
        items.append(f'<li><a href="#container-{_h(cid)}">{_h(c.get("name") or cid[:12])}</a></li>')
    items.append("</ul></li>")
    listed = images(view)
    items.append(f'<li><a href="#images">Images ({len(listed)})</a><ul>')
    for image in listed:
        items.append(f'<li><a href="#image-{_h(image["hex"])}">{_h(", ".join(image["names"]) or image["hex"][:12])}'
                     "</a></li>")  # fmt: skip
    items.append("</ul></li>")
    if any(p.startswith("timeline/") for p in view.files):
        items.append('<li><a href="#timelines">Timelines</a></li>')
    items.append('<li><a href="#steps">Steps</a></li>')
    return '<nav id="contents"><strong>Contents</strong><ul>' + "".join(items) + "</ul></nav>"


def html_report(view: ReportView) -> str:
    custody = view.custody
    counts = Counter(str(f.get("severity")) for f in view.findings)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Forensic triage {_h(custody.get('case_id', ''))}</title><style>{_CSS}</style></head><body>",
        "<h1>Forensic triage report</h1>",
        "<table>",
        f"<tr><th>case</th><td>{_h(custody.get('case_id', ''))}</td></tr>",
        f"<tr><th>examiner</th><td>{_h(custody.get('examiner', ''))}</td></tr>",
        f"<tr><th>host</th><td>{_h((custody.get('host') or {}).get('hostname', ''))}</td></tr>",
        f"<tr><th>collected (UTC)</th><td>{_h(custody.get('started_utc', ''))} to "
        f"{_h(custody.get('ended_utc', ''))}</td></tr>",
        f"<tr><th>complete</th><td>{_h(custody.get('complete'))} {_h(', '.join(custody.get('not_done') or []))}"
        "</td></tr>",
        "</table>",
        _toc(view),
        '<h2 id="findings">Findings</h2><p>'
        + ", ".join(f'<span class="{s}">{counts.get(s, 0)} {s}</span>' for s in SEVERITIES)
        + "</p>",
    ]
    if view.findings:
        out.append("<table><tr><th>severity</th><th>title</th><th>subject</th><th>evidence</th></tr>")
        for f in view.findings:
            sev = str(f.get("severity"))
            out.append(
                f'<tr class="finding" id="{_anchor(f)}"><td class="{_h(sev)}">{_h(sev)}</td>'
                f'<td><a href="#{_anchor(f)}">{_h(f.get("title"))}</a>'
                f"<br><small>{_h(f.get('rule'))} {_h(f.get('details', ''))}</small></td>"
                f"<td>{_h(f.get('subject'))}</td>"
                f"<td>{'<br>'.join(_link(p) for p in f.get('evidence') or [])}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>No findings.</p>")
    out.append('<h2 id="containers">Containers</h2>')
    for c in view.containers:
        cid = str(c.get("id", ""))
        out.append(
            f'<h3 id="container-{_h(cid)}">{_h(c.get("name") or cid[:12])} <code>{_h(cid[:12])}</code></h3>'
        )
        out.append(
            f"<p>image {_h(c.get('image'))}, state {_h(c.get('state'))}, seen by {_h(c.get('source'))}</p><ul>"
        )
        for f in _subject_findings(view, f"container:{cid}"):
            out.append(_finding_item(f))
        for path in _container_files(view, cid):
            out.append(f"<li>{_link(path)}</li>")
        out.append("</ul>")
    out.append('<h2 id="images">Images</h2>')
    for image in images(view):
        hexid = image["hex"]
        out.append(f'<h3 id="image-{_h(hexid)}">{_h(", ".join(image["names"]) or hexid[:12])} '
                   f"<code>sha256:{_h(hexid[:12])}</code></h3><p>used by "
                   + (", ".join(f'<a href="#container-{_h(c.get("id", ""))}">{_h(c.get("name") or str(c.get("id", ""))[:12])}</a>'
                                for c in image["containers"]) or "no container")
                   + "</p><ul>")  # fmt: skip
        for f in image["findings"]:
            out.append(_finding_item(f))
        for path in image["files"]:
            out.append(f"<li>{_link(path)}</li>")
        out.append("</ul>")
    timeline = [p for p in view.files if p.startswith("timeline/")]
    if timeline:
        out.append('<h2 id="timelines">Timelines</h2><ul>' + "".join(f"<li>{_link(p)}</li>" for p in timeline)
                   + "</ul>")  # fmt: skip
    out.append(
        '<h2 id="steps">Steps</h2><table><tr><th>step</th><th>status</th><th>seconds</th><th>message</th></tr>'
    )
    for s in view.steps:
        out.append(
            f"<tr><td>{_h(s.get('name'))}</td><td>{_h(s.get('status'))}</td>"
            f"<td>{float(s.get('seconds') or 0):.1f}</td><td>{_h(s.get('message', ''))}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"

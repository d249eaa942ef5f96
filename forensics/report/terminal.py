"""What a person sees in the terminal. The only module besides the CLI that prints."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from forensics.containers.listing import ContainerEntry
from forensics.evidence.verify import VerifyResult
from forensics.findings import Severity
from forensics.host.doctor import DoctorReport
from forensics.records import NotAvailable, char_escape
from forensics.triage import TriageResult


def console(**kwargs: Any) -> Console:
    """A console that never turns text into emoji or colours it by guesswork.

    ``:x:`` in a suspect's file name must print as ``:x:``; Rich markup stays on for our
    own ``[bold]`` and friends, so every suspect value goes through :func:`safe`.
    """
    return Console(emoji=False, highlight=False, **kwargs)


out = console()
err = console(stderr=True)
"""Module-level so the CLI can share them; tests swap them for recording consoles."""


def safe(value: object, limit: int | None = None, *, lines: bool = False) -> str:
    """A suspect value as inert terminal text, ready to sit inside our markup.

    Control and other unprintable characters (ESC, BEL, CR, newline, bidi overrides,
    undecodable bytes) are shown as ``\\x1b``-style escapes, so a file name cannot move
    the cursor, recolour or rewrite the responder's terminal, nor fake a line of output;
    then Rich markup in it is escaped. ``lines`` keeps newlines and tabs (multi-line
    details in a table cell). ``limit`` cuts the text first and marks the cut with "…".
    A :class:`NotAvailable` shows as "n/a" with its (escaped) reason.
    """
    if isinstance(value, NotAvailable):
        return f"[yellow]n/a[/] ({safe(value.reason, limit)})"
    text = value if isinstance(value, str) else str(value)
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    return escape(inert(text, lines=lines) + ("…" if cut else ""))


def inert(text: str, *, lines: bool = False) -> str:
    """``text`` with every unprintable character shown as an escape (see :func:`safe`), for
    plain output that Rich does not render."""
    if text.isprintable():
        return text
    keep = "\n\t" if lines else ""
    return "".join(ch if ch.isprintable() or ch in keep else char_escape(ch) for ch in text)


def doctor(report: DoctorReport) -> None:
    out.print(f"[bold]host root[/]       {safe(report.root)}")
    out.print(f"[bold]docker data[/]     {safe(report.docker_data)}  driver: {safe(report.storage_driver)}")
    out.print(f"[bold]engine[/]          {safe(report.docker_host)}  version: {safe(report.engine_version)}")
    me = report.self_view
    out.print(
        f"[bold]in container[/]    {me.in_container}  id: {safe(me.container_id)}  "
        f"image: {safe(me.image_id)}  pid=host: {safe(me.pid_host)}"
    )
    caps = report.capabilities
    out.print(f"[bold]capabilities[/]    {safe(', '.join(caps) if isinstance(caps, list) else caps)}")
    table = Table("tool", "path", "version", "used for")
    for tool in report.tools:
        table.add_row(safe(tool.name), safe(tool.path), safe(tool.version), safe(tool.purpose))
    out.print(table)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {safe(warning)}")


def containers(entries: list[ContainerEntry]) -> None:
    table = Table("id", "name", "image", "state", "started", "source")
    for e in entries:
        style = "" if e.source == "both" else "red"
        table.add_row(safe(e.id[:12]), safe(e.name), safe(e.image), safe(e.state), safe(e.started[:19]),
                      safe(e.source), style=style)  # fmt: skip
    out.print(table)


def verification(result: VerifyResult) -> None:
    if result.intact:
        out.print(f"[green]intact[/]: {result.files_checked} files match {safe(result.target)}")
        if result.archive_sha256:
            out.print(f"archive sha256 {safe(result.archive_sha256)}")
        return
    out.print(f"[red]NOT intact[/]: {safe(result.target)}")
    for label, items in (
        ("changed", result.changed),
        ("missing", result.missing),
        ("extra", result.extra),
        ("problem", result.problems),
    ):
        for item in items:
            out.print(f"  {label}: {safe(item)}")


_COLOURS = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def progress(step: str, status: str) -> None:
    """A plain log line per step event (stderr is not a terminal)."""
    err.print(f"[dim]{safe(step)}[/] {safe(status)}")


class TriageProgress:
    """A live display of the steps running now, with a line per step that ended (stderr is a
    terminal). Use as a context manager; pass :meth:`update` as run_triage's ``progress``."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                  console=err, transient=True)  # fmt: skip
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> TriageProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, step: str, status: str) -> None:
        if status == "running":
            self._tasks[step] = self._progress.add_task(safe(step), total=None)
            return
        task = self._tasks.pop(step, None)
        if task is not None:
            self._progress.remove_task(task)
        colour = "green" if status == "ok" else "dim" if status.startswith("skipped") else "yellow"
        self._progress.console.print(f"[{colour}]{safe(step)}[/] {safe(status, 300)}")


def triage(result: TriageResult, top: int = 10) -> None:
    counts = {s: sum(1 for f in result.findings if f.severity is s) for s in Severity}
    out.print(
        "findings: " + ", ".join(f"[{_COLOURS[s]}]{counts[s]} {s.value}[/]" for s in Severity),
        highlight=False,
    )
    for finding in result.findings[:top]:
        out.print(f"  [{_COLOURS[finding.severity]}]{finding.severity.value:8}[/] {safe(finding.title)}  "
                  f"[dim]{safe(finding.subject)}[/]")  # fmt: skip
    if len(result.findings) > top:
        out.print(f"  ... {len(result.findings) - top} more in findings.json and report.html")
    failed = [o for o in result.outcomes if o.status not in ("ok", "skipped")]
    for outcome in failed:
        out.print(f"[yellow]{safe(outcome.name)}[/]: {safe(outcome.status)} {safe(outcome.message)}")
    state = "complete" if result.complete else "[red]INCOMPLETE[/]"
    out.print(f"triage {state}")
    out.print(f"archive {safe(result.archive.path)}")
    out.print(f"sha256  {safe(result.archive.sha256)}")


# ---- containers: diff, compare, extract ---------------------------------------------


def _flag_text(flags: tuple[str, ...]) -> str:
    return f"  [yellow]{safe(' '.join(flags))}[/]" if flags else ""


def _finding_line(finding: Finding) -> None:
    out.print(f"  [{_COLOURS[finding.severity]}]{finding.severity.value:8}[/] {safe(finding.title)}")


def _problem_line(problem: object) -> None:
    err.print(f"[yellow]problem:[/] {safe(problem)}")


def container_diff(diff: ContainerDiff) -> None:
    from forensics.containers.diff import show

    if out.is_terminal:
        colours = {"A": "green", "C": "yellow", "D": "red"}
        for entry in diff.entries:
            out.print(f"[{colours[entry.kind]}]{entry.kind}[/] {safe(show(entry.path))}{_flag_text(entry.flags)}",
                      soft_wrap=True)  # fmt: skip
    else:
        # Piped, as docker diff's output usually is: the same lines as plain text in one
        # write (Rich would parse and render each of 20,000 lines to print no colour).
        out.file.write("".join(
            f"{e.kind} {inert(show(e.path))}{'  ' + inert(' '.join(e.flags)) if e.flags else ''}\n"
            for e in diff.entries
        ))  # fmt: skip
    counts = ", ".join(f"{diff.counts.get(k, 0)} {k}" for k in "ACD")
    err.print(f"{safe(diff.name or diff.container_id[:12])}: {counts}; {diff.entries_examined} entries in the "
              f"writable layer; layers from {safe(diff.layers.source)}")  # fmt: skip
    if isinstance(diff.engine, NotAvailable):
        err.print(f"engine cross-check: not done ({safe(diff.engine.reason)})")
    elif diff.engine.agrees:
        err.print(f"engine cross-check: the Engine API lists the same {diff.engine.engine_count} changes")
    yara = diff.yara
    err.print(f"yara: {safe(yara.status)}{': ' + safe(yara.reason) if yara.reason else ''}"
              f"{f' ({yara.files} files, {len(yara.matches)} matches)' if yara.status == 'ran' else ''}")  # fmt: skip
    for finding in diff.findings:
        _finding_line(finding)
    for problem in diff.problems:
        _problem_line(problem)


def _version_line(label: str, version: ContainerFileVersion | None) -> None:
    if version is None:
        out.print(f"[bold]{label:9}[/] (absent)")
        return
    m = version.meta
    where = version.layer
    if version.layer_ref is not None and isinstance(version.layer_ref.diff_id, str):
        where += f" {version.layer_ref.diff_id[:19]}"
    out.print(f"[bold]{label:9}[/] {safe(m.permissions)} {m.uid}:{m.gid} {m.size} bytes  "
              f"sha256 {safe(version.sha256)}  [dim]({safe(where)})[/]")  # fmt: skip


def container_compare(result: ContainerComparison) -> None:
    from forensics.containers.diff import show

    out.print(f"[bold]{safe(show(result.path))}[/] in {safe(result.name or result.container_id[:12])}: "
              f"{safe(result.status)}, content {safe(result.content)}")  # fmt: skip
    _version_line("image", result.original)
    _version_line("container", result.current)
    if isinstance(result.text_diff, str):
        for line in result.text_diff.splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
            text = safe(line, lines=True)
            out.print(f"[{style}]{text}[/]" if style else text, soft_wrap=True)
    for finding in result.findings:
        _finding_line(finding)
    for problem in result.problems:
        _problem_line(problem)


def container_extract(extraction: ContainerExtraction, archive: SealedArchive) -> None:
    from forensics.containers.diff import show

    for f in extraction.files:
        if f.status not in ("copied", "directory"):
            out.print(f"[yellow]{safe(f.status):9}[/] {safe(show(f.path))}  [dim]{safe(f.reason)}[/]",
                      soft_wrap=True)  # fmt: skip
    counts = ", ".join(f"{n} {safe(status)}" for status, n in sorted(extraction.counts.items()))
    out.print(f"extracted: {counts or 'nothing'}")
    for problem in extraction.problems:
        _problem_line(problem)
    out.print(f"archive {safe(archive.path)}")
    out.print(f"sha256  {safe(archive.sha256)}")


import typing  # noqa: E402  (kept with the container renderers, below the others)

if typing.TYPE_CHECKING:
    from forensics.containers.compare import Comparison as ContainerComparison
    from forensics.containers.compare import FileVersion as ContainerFileVersion
    from forensics.containers.diff import ContainerDiff
    from forensics.containers.extract import Extraction as ContainerExtraction
    from forensics.evidence.archive import SealedArchive


# ---- binary: static triage ------------------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402  (kept with the binary renderer)

if TYPE_CHECKING:
    from forensics.binary.records import BinaryReport


def _bin_text(text: str, limit: int = 200) -> str:
    """The suspect's text made safe for a terminal: no control characters, no Rich markup."""
    return safe(text, limit)


def binary_report(report: BinaryReport, strings: int = 0, listed: int = 12) -> None:
    """One file's static triage: identity, structure, indicators, verdict, what ran."""
    p = out.print
    p(f"[bold]file[/]        {_bin_text(report.source)}  ({report.size} bytes)")
    tool = report.file_type.file_tool
    p(f"[bold]type[/]        {safe(report.file_type.description)}"
      + (f"  [dim]file: {_bin_text(tool, 400)}[/]" if isinstance(tool, str) else ""))  # fmt: skip
    h = report.hashes
    for name in ("md5", "sha1", "sha256", "ssdeep"):
        p(f"[bold]{name:<11}[/] {safe(getattr(h, name))}")
    elf = report.elf
    if not isinstance(elf, NotAvailable):
        linking = "static" if elf.static else "dynamic"
        p(f"[bold]elf[/]         {safe(elf.arch)} ELF{elf.elf_class} {safe(elf.endianness)}-endian {safe(elf.elf_type)} "
          f"entry {elf.entry:#x}; {'PIE' if elf.pie else 'not PIE'}, {linking}, "
          f"{'stripped' if elf.stripped else 'not stripped'}")  # fmt: skip
        if isinstance(elf.interpreter, str):
            p(f"[bold]interpreter[/] {_bin_text(elf.interpreter)}")
        if elf.needed:
            p(f"[bold]needed[/]      {_bin_text(', '.join(elf.needed))}")
        p(f"[bold]symbols[/]     {len(elf.imports)} imports, {len(elf.exports)} exports, "
          f"{len(elf.functions)} functions, {elf.symbols_total} in tables; section headers: "
          f"{_bin_text(elf.section_headers)}")  # fmt: skip
        if elf.imports:
            more = f" … (+{len(elf.imports) - 40})" if len(elf.imports) > 40 else ""
            p(f"[bold]imports[/]     {_bin_text(', '.join(elf.imports[:40]), 2000)}{more}")
        table = Table("segment", "flags", "offset", "filesz", "memsz", "entropy", title="program headers")
        for seg in elf.segments[:listed]:
            table.add_row(safe(seg.type), safe(seg.flags), f"{seg.offset:#x}", str(seg.filesz), str(seg.memsz),
                          _bin_entropy(seg.entropy))  # fmt: skip
        if elf.segments:
            out.print(table)
        table = Table("section", "type", "flags", "size", "entropy", title="sections")
        for sec in elf.sections[: listed * 3]:
            name = _bin_text(sec.name, 40)
            table.add_row(name, safe(sec.type), safe(sec.flags), str(sec.size), _bin_entropy(sec.entropy))
        if elf.sections:
            out.print(table)
        if isinstance(elf.entry_disassembly, NotAvailable):
            p(f"[bold]entry code[/]  {safe(elf.entry_disassembly)}")
        else:
            p("[bold]entry code[/]")
            for insn in elf.entry_disassembly[:listed]:
                line = f"  {insn.address:#x}  {safe(insn.hex):<24} {safe(insn.mnemonic)} {_bin_text(insn.operands)}"
                p(line)
    p(f"[bold]strings[/]     {report.strings_total} found")
    for found in report.strings[:strings]:
        p(f"  {found.offset:#010x} {safe(found.encoding[:5]):5} {_bin_text(found.text)}")
    if report.indicators:
        # every strong indicator; of the weak ones (addresses, URLs, paths) the first few
        weak = [i for i in report.indicators if not i.kind.strong]
        shown = [i for i in report.indicators if i.kind.strong] + weak[: listed * 3]
        table = Table("kind", "value", "count", "offset", "why", title="indicators")
        for ind in shown:
            style = "red" if ind.kind.strong else ""
            table.add_row(safe(ind.kind.value), _bin_text(ind.value, 120), str(ind.count), f"{ind.offset:#x}",
                          _bin_text(ind.detail), style=style)  # fmt: skip
        out.print(table)
        if len(shown) < len(report.indicators):
            p(f"[dim]… {len(report.indicators) - len(shown)} more indicators (--json shows all)[/]")
    for cap in report.capabilities:
        p(f"[bold]capability[/]  {safe(cap.name)}: {_bin_text(', '.join(cap.evidence))}")
    for sign in report.packer:
        p(f"[bold]packer[/]      {safe(sign.name)}: {_bin_text(sign.detail)}")
    p(f"[bold]analyses[/]    {safe(', '.join(report.analyses))}; {_bin_text(report.radare2.line)}")
    for problem in report.problems:
        p(f"[yellow]partial[/]     {safe(problem.stage)}: {_bin_text(problem.message)}")
    colour = {"suspicious": "bold red", "notable": "yellow"}.get(report.verdict.level, "green")
    p(f"[bold]verdict[/]     [{colour}]{_bin_text(report.verdict.line, 1000)}[/]")


def _bin_entropy(value: object) -> str:
    if isinstance(value, float):
        return f"[red]{value:.2f}[/]" if value >= 7.2 else f"{value:.2f}"
    return "-"


# ---- process and memory -----------------------------------------------------------------


def process_list(listing: ProcessList, findings: list[Finding]) -> None:
    flagged = {f.subject for f in findings}
    table = Table("pid", "ppid", "uid", "container", "exe", "sha256", "socks", "argv")
    for p in listing.processes:
        if p.kernel_thread:
            continue
        where = "host" if p.container is None else f"{safe(p.container.name)} {safe(p.container.id[:12])}"
        exe = safe(p.exe) + (" [red](deleted)[/]" if p.exe_deleted else "")
        sha = safe(p.exe_sha256[:12]) if isinstance(p.exe_sha256, str) else "-"
        style = "red" if f"process:{p.pid}" in flagged else ""
        table.add_row(str(p.pid), str(p.ppid), str(p.uid), where, exe, sha, str(len(p.sockets)),
                      safe(" ".join(p.cmdline), 120), style=style)  # fmt: skip
    out.print(table)
    for finding in findings:
        _finding_line(finding)
    for problem in listing.problems:
        err.print(f"[yellow]problem:[/] pid {problem.pid}: {safe(problem.message)}")


def process_event(event: ProcessEvent) -> None:
    where = "host" if event.container is None else safe(event.container.name)
    argv = safe(" ".join(event.cmdline)) if isinstance(event.cmdline, list) else safe(event.cmdline)
    out.print(f"{safe(event.time)} {event.pid:>7} {event.ppid:>7} {event.uid:>6} {where:14} {argv}",
              soft_wrap=True)  # fmt: skip


if typing.TYPE_CHECKING:
    from forensics.findings import Finding
    from forensics.process.inventory import ProcessList
    from forensics.process.monitor import ProcessEvent


# ---- scan (forensics scan host / lint / image) ----

_SCAN_STYLE = {
    "PASS": "green",
    "WARN": "yellow",
    "FATAL": "red",
    "INFO": "blue",
    "NOTE": "cyan",
    "SKIP": "dim",
}


def _scan_results(results: typing.Any, show_pass: bool) -> None:
    table = Table("id", "status", "subject", "title / details")
    for res in results:
        if res.status.value == "PASS" and not show_pass:
            continue
        style = _SCAN_STYLE.get(res.status.value, "")
        details = f"\n[dim]{safe(res.details, 300, lines=True)}[/]" if res.details else ""
        table.add_row(safe(res.id), f"[{style}]{safe(res.status.value)}[/]", safe(res.subject, 22),
                      safe(res.title) + details)  # fmt: skip
    out.print(table)


def bench_report(report: typing.Any, show_pass: bool = False) -> None:
    """Docker Bench results: everything but PASS, then the counts."""
    _scan_results(report.results, show_pass)
    for excluded in report.excluded:
        out.print(f"[dim]left out: {safe(excluded)}[/]")
    for problem in report.problems:
        _problem_line(problem)
    out.print(safe("  ".join(f"{k} {v}" for k, v in sorted(report.counts().items()))))


def lint_report(report: typing.Any, show_pass: bool = False) -> None:
    """dockle-style results for one image, and what the dockle binary did."""
    out.print(f"[bold]image[/] {safe(report.image)}  [bold]files[/] {safe(report.files)}")
    _scan_results(report.results, show_pass)
    reason = f" ({safe(report.dockle.reason)})" if report.dockle.reason else ""
    out.print(f"dockle binary: {safe(report.dockle.status)}{reason}")


def trivy_report(report: typing.Any, top: int = 30) -> None:
    """trivy's scanners and what they found, normalised."""
    out.print(f"[bold]target[/] {safe(report.target)}  [bold]trivy[/] {safe(report.trivy_version)}")
    for scanner, state in report.scanners.items():
        out.print(f"  {safe(scanner):10} {safe(state)}")
    table = Table("severity", "kind", "what", "where")
    for item in report.items[:top]:
        table.add_row(safe(item.severity), safe(item.kind), safe(item.title, 120), safe(item.where, 80))
    out.print(table)
    if len(report.items) > top:
        out.print(f"… {len(report.items) - top} more (--json for all)")

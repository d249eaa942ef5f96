"""What a person sees in the terminal. The only module besides the CLI that prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from forensics.containers.listing import ContainerEntry
from forensics.evidence.verify import VerifyResult
from forensics.findings import Severity
from forensics.host.doctor import DoctorReport
from forensics.records import NotAvailable
from forensics.triage import TriageResult

out = Console()
err = Console(stderr=True)


def _val(value: object) -> str:
    if isinstance(value, NotAvailable):
        return f"[yellow]n/a[/] ({value.reason})"
    return str(value)


def doctor(report: DoctorReport) -> None:
    out.print(f"[bold]host root[/]       {report.root}")
    out.print(f"[bold]docker data[/]     {_val(report.docker_data)}  driver: {_val(report.storage_driver)}")
    out.print(f"[bold]engine[/]          {_val(report.docker_host)}  version: {_val(report.engine_version)}")
    me = report.self_view
    out.print(
        f"[bold]in container[/]    {me.in_container}  id: {_val(me.container_id)}  "
        f"image: {_val(me.image_id)}  pid=host: {_val(me.pid_host)}"
    )
    caps = report.capabilities
    out.print(f"[bold]capabilities[/]    {_val(', '.join(caps) if isinstance(caps, list) else caps)}")
    table = Table("tool", "path", "version", "used for")
    for tool in report.tools:
        table.add_row(tool.name, _val(tool.path), _val(tool.version), tool.purpose)
    out.print(table)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {warning}")


def containers(entries: list[ContainerEntry]) -> None:
    table = Table("id", "name", "image", "state", "started", "source")
    for e in entries:
        style = "" if e.source == "both" else "red"
        table.add_row(e.id[:12], e.name, e.image, e.state, e.started[:19], e.source, style=style)
    out.print(table)


def verification(result: VerifyResult) -> None:
    if result.intact:
        out.print(f"[green]intact[/]: {result.files_checked} files match {result.target}")
        if result.archive_sha256:
            out.print(f"archive sha256 {result.archive_sha256}")
        return
    out.print(f"[red]NOT intact[/]: {result.target}")
    for label, items in (
        ("changed", result.changed),
        ("missing", result.missing),
        ("extra", result.extra),
        ("problem", result.problems),
    ):
        for item in items:
            out.print(f"  {label}: {item}")


_COLOURS = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def progress(step: str, status: str) -> None:
    """A plain log line per step event (stderr is not a terminal)."""
    from rich.markup import escape

    err.print(f"[dim]{escape(step)}[/] {escape(status)}", highlight=False, emoji=False)


class TriageProgress:
    """A live display of the steps running now, with a line per step that ended (stderr is a
    terminal). Use as a context manager; pass :meth:`update` as run_triage's ``progress``."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                  console=err, transient=True)  # fmt: skip
        self._tasks: dict[str, typing.Any] = {}

    def __enter__(self) -> TriageProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, step: str, status: str) -> None:
        from rich.markup import escape

        if status == "running":
            self._tasks[step] = self._progress.add_task(escape(step), total=None)
            return
        task = self._tasks.pop(step, None)
        if task is not None:
            self._progress.remove_task(task)
        colour = "green" if status == "ok" else "dim" if status.startswith("skipped") else "yellow"
        self._progress.console.print(f"[{colour}]{escape(step)}[/] {escape(status[:300])}", highlight=False,
                                     emoji=False)  # fmt: skip


def triage(result: TriageResult, top: int = 10) -> None:
    from rich.markup import escape

    counts = {s: sum(1 for f in result.findings if f.severity is s) for s in Severity}
    out.print(
        "findings: " + ", ".join(f"[{_COLOURS[s]}]{counts[s]} {s.value}[/]" for s in Severity),
        highlight=False,
    )
    for finding in result.findings[:top]:
        out.print(f"  [{_COLOURS[finding.severity]}]{finding.severity.value:8}[/] {escape(finding.title)}  "
                  f"[dim]{escape(finding.subject)}[/]", highlight=False, emoji=False)  # fmt: skip
    if len(result.findings) > top:
        out.print(f"  ... {len(result.findings) - top} more in findings.json and report.html")
    failed = [o for o in result.outcomes if o.status not in ("ok", "skipped")]
    for outcome in failed:
        out.print(f"[yellow]{escape(outcome.name)}[/]: {outcome.status} {escape(outcome.message)}",
                  highlight=False, emoji=False)  # fmt: skip
    state = "complete" if result.complete else "[red]INCOMPLETE[/]"
    out.print(f"triage {state}")
    out.print(f"archive {escape(str(result.archive.path))}", highlight=False, emoji=False)
    out.print(f"sha256  {result.archive.sha256}", highlight=False)


# ---- containers: diff, compare, extract ---------------------------------------------


def _flag_text(flags: tuple[str, ...]) -> str:
    return f"  [yellow]{' '.join(flags)}[/]" if flags else ""


def container_diff(diff: ContainerDiff) -> None:
    from rich.markup import escape

    from forensics.containers.diff import show

    colours = {"A": "green", "C": "yellow", "D": "red"}
    for entry in diff.entries:
        out.print(f"[{colours[entry.kind]}]{entry.kind}[/] {escape(show(entry.path))}{_flag_text(entry.flags)}",
                  highlight=False, emoji=False, soft_wrap=True)  # fmt: skip
    counts = ", ".join(f"{diff.counts.get(k, 0)} {k}" for k in "ACD")
    err.print(f"{diff.name or diff.container_id[:12]}: {counts}; {diff.entries_examined} entries in the "
              f"writable layer; layers from {diff.layers.source}", highlight=False, emoji=False)  # fmt: skip
    if isinstance(diff.engine, NotAvailable):
        err.print(f"engine cross-check: not done ({diff.engine.reason})", highlight=False, emoji=False)
    elif diff.engine.agrees:
        err.print(f"engine cross-check: the Engine API lists the same {diff.engine.engine_count} changes")
    yara = diff.yara
    err.print(f"yara: {yara.status}{': ' + yara.reason if yara.reason else ''}"
              f"{f' ({yara.files} files, {len(yara.matches)} matches)' if yara.status == 'ran' else ''}",
              highlight=False, emoji=False)  # fmt: skip
    for finding in diff.findings:
        out.print(f"  [{_COLOURS[finding.severity]}]{finding.severity.value:8}[/] {escape(finding.title)}",
                  highlight=False, emoji=False)  # fmt: skip
    for problem in diff.problems:
        err.print(f"[yellow]problem:[/] {escape(problem)}", highlight=False, emoji=False)


def _version_line(label: str, version: ContainerFileVersion | None) -> None:
    if version is None:
        out.print(f"[bold]{label:9}[/] (absent)", highlight=False, emoji=False)
        return
    m = version.meta
    where = version.layer
    if version.layer_ref is not None and isinstance(version.layer_ref.diff_id, str):
        where += f" {version.layer_ref.diff_id[:19]}"
    out.print(f"[bold]{label:9}[/] {m.permissions} {m.uid}:{m.gid} {m.size} bytes  sha256 {_val(version.sha256)}  "
              f"[dim]({where})[/]", highlight=False, emoji=False)  # fmt: skip


def container_compare(result: ContainerComparison) -> None:
    from rich.markup import escape

    from forensics.containers.diff import show

    out.print(f"[bold]{escape(show(result.path))}[/] in {result.name or result.container_id[:12]}: "
              f"{result.status}, content {result.content}", highlight=False, emoji=False)  # fmt: skip
    _version_line("image", result.original)
    _version_line("container", result.current)
    if isinstance(result.text_diff, str):
        for line in result.text_diff.splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
            text = escape(
                "".join(ch if ch.isprintable() or ch == "\t" else f"\\x{ord(ch):02x}" for ch in line)
            )
            out.print(f"[{style}]{text}[/]" if style else text, highlight=False, emoji=False, soft_wrap=True)
    for finding in result.findings:
        out.print(f"  [{_COLOURS[finding.severity]}]{finding.severity.value:8}[/] {escape(finding.title)}",
                  highlight=False, emoji=False)  # fmt: skip
    for problem in result.problems:
        err.print(f"[yellow]problem:[/] {escape(problem)}", highlight=False, emoji=False)


def container_extract(extraction: ContainerExtraction, archive: SealedArchive) -> None:
    from rich.markup import escape

    from forensics.containers.diff import show

    for f in extraction.files:
        if f.status not in ("copied", "directory"):
            out.print(f"[yellow]{f.status:9}[/] {escape(show(f.path))}  [dim]{escape(f.reason)}[/]",
                      highlight=False, emoji=False, soft_wrap=True)  # fmt: skip
    counts = ", ".join(f"{n} {status}" for status, n in sorted(extraction.counts.items()))
    out.print(f"extracted: {counts or 'nothing'}", highlight=False)
    for problem in extraction.problems:
        err.print(f"[yellow]problem:[/] {escape(problem)}", highlight=False, emoji=False)
    out.print(f"archive {archive.path}")
    out.print(f"sha256  {archive.sha256}")


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
    from rich.markup import escape

    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return escape(clean + ("…" if len(text) > limit else ""))


def binary_report(report: BinaryReport, strings: int = 0, listed: int = 12) -> None:
    """One file's static triage: identity, structure, indicators, verdict, what ran."""
    p = out.print
    p(f"[bold]file[/]        {_bin_text(report.source)}  ({report.size} bytes)", highlight=False)
    tool = report.file_type.file_tool
    p(f"[bold]type[/]        {report.file_type.description}"
      + (f"  [dim]file: {_bin_text(tool, 400)}[/]" if isinstance(tool, str) else ""), highlight=False)  # fmt: skip
    h = report.hashes
    for name in ("md5", "sha1", "sha256", "ssdeep"):
        p(f"[bold]{name:<11}[/] {_val(getattr(h, name))}", highlight=False)
    elf = report.elf
    if not isinstance(elf, NotAvailable):
        linking = "static" if elf.static else "dynamic"
        p(f"[bold]elf[/]         {elf.arch} ELF{elf.elf_class} {elf.endianness}-endian {elf.elf_type} "
          f"entry {elf.entry:#x}; {'PIE' if elf.pie else 'not PIE'}, {linking}, "
          f"{'stripped' if elf.stripped else 'not stripped'}", highlight=False)  # fmt: skip
        if isinstance(elf.interpreter, str):
            p(f"[bold]interpreter[/] {_bin_text(elf.interpreter)}", highlight=False)
        if elf.needed:
            p(f"[bold]needed[/]      {_bin_text(', '.join(elf.needed))}", highlight=False)
        p(f"[bold]symbols[/]     {len(elf.imports)} imports, {len(elf.exports)} exports, "
          f"{len(elf.functions)} functions, {elf.symbols_total} in tables; section headers: "
          f"{_bin_text(elf.section_headers)}", highlight=False)  # fmt: skip
        if elf.imports:
            more = f" … (+{len(elf.imports) - 40})" if len(elf.imports) > 40 else ""
            p(f"[bold]imports[/]     {_bin_text(', '.join(elf.imports[:40]), 2000)}{more}", highlight=False)
        table = Table("segment", "flags", "offset", "filesz", "memsz", "entropy", title="program headers")
        for seg in elf.segments[:listed]:
            table.add_row(seg.type, seg.flags, f"{seg.offset:#x}", str(seg.filesz), str(seg.memsz),
                          _bin_entropy(seg.entropy))  # fmt: skip
        if elf.segments:
            out.print(table)
        table = Table("section", "type", "flags", "size", "entropy", title="sections")
        for sec in elf.sections[: listed * 3]:
            name = _bin_text(sec.name, 40)
            table.add_row(name, sec.type, sec.flags, str(sec.size), _bin_entropy(sec.entropy))
        if elf.sections:
            out.print(table)
        if isinstance(elf.entry_disassembly, NotAvailable):
            p(f"[bold]entry code[/]  {_val(elf.entry_disassembly)}", highlight=False)
        else:
            p("[bold]entry code[/]")
            for insn in elf.entry_disassembly[:listed]:
                line = f"  {insn.address:#x}  {insn.hex:<24} {insn.mnemonic} {_bin_text(insn.operands)}"
                p(line, highlight=False)
    p(f"[bold]strings[/]     {report.strings_total} found", highlight=False)
    for found in report.strings[:strings]:
        p(f"  {found.offset:#010x} {found.encoding[:5]:5} {_bin_text(found.text)}", highlight=False)
    if report.indicators:
        # every strong indicator; of the weak ones (addresses, URLs, paths) the first few
        weak = [i for i in report.indicators if not i.kind.strong]
        shown = [i for i in report.indicators if i.kind.strong] + weak[: listed * 3]
        table = Table("kind", "value", "count", "offset", "why", title="indicators")
        for ind in shown:
            style = "red" if ind.kind.strong else ""
            table.add_row(ind.kind.value, _bin_text(ind.value, 120), str(ind.count), f"{ind.offset:#x}",
                          _bin_text(ind.detail), style=style)  # fmt: skip
        out.print(table)
        if len(shown) < len(report.indicators):
            p(f"[dim]… {len(report.indicators) - len(shown)} more indicators (--json shows all)[/]")
    for cap in report.capabilities:
        p(f"[bold]capability[/]  {cap.name}: {_bin_text(', '.join(cap.evidence))}", highlight=False)
    for sign in report.packer:
        p(f"[bold]packer[/]      {sign.name}: {_bin_text(sign.detail)}", highlight=False)
    p(f"[bold]analyses[/]    {', '.join(report.analyses)}; {_bin_text(report.radare2.line)}", highlight=False)
    for problem in report.problems:
        p(f"[yellow]partial[/]     {problem.stage}: {_bin_text(problem.message)}", highlight=False)
    colour = {"suspicious": "bold red", "notable": "yellow"}.get(report.verdict.level, "green")
    p(f"[bold]verdict[/]     [{colour}]{_bin_text(report.verdict.line, 1000)}[/]", highlight=False)


def _bin_entropy(value: object) -> str:
    if isinstance(value, float):
        return f"[red]{value:.2f}[/]" if value >= 7.2 else f"{value:.2f}"
    return "-"


# ---- process and memory -----------------------------------------------------------------


def process_list(listing: ProcessList, findings: list[Finding]) -> None:
    from rich.markup import escape

    flagged = {f.subject for f in findings}
    table = Table("pid", "ppid", "uid", "container", "exe", "sha256", "socks", "argv")
    for p in listing.processes:
        if p.kernel_thread:
            continue
        where = "host" if p.container is None else f"{_val(p.container.name)} {p.container.id[:12]}"
        exe = _val(p.exe) + (" [red](deleted)[/]" if p.exe_deleted else "")
        sha = p.exe_sha256[:12] if isinstance(p.exe_sha256, str) else "-"
        style = "red" if f"process:{p.pid}" in flagged else ""
        table.add_row(str(p.pid), str(p.ppid), str(p.uid), escape(where), exe, sha, str(len(p.sockets)),
                      escape(" ".join(p.cmdline)[:120]), style=style)  # fmt: skip
    out.print(table)
    for finding in findings:
        out.print(f"  [{_COLOURS[finding.severity]}]{finding.severity.value:8}[/] {escape(finding.title)}",
                  highlight=False, emoji=False)  # fmt: skip
    for problem in listing.problems:
        err.print(f"[yellow]problem:[/] pid {problem.pid}: {escape(problem.message)}", highlight=False)


def process_event(event: ProcessEvent) -> None:
    from rich.markup import escape

    where = "host" if event.container is None else f"{_val(event.container.name)}"
    argv = " ".join(event.cmdline) if isinstance(event.cmdline, list) else _val(event.cmdline)
    out.print(f"{event.time} {event.pid:>7} {event.ppid:>7} {event.uid:>6} {escape(where):14} {escape(argv)}",
              highlight=False, emoji=False, soft_wrap=True)  # fmt: skip


if typing.TYPE_CHECKING:
    from forensics.findings import Finding
    from forensics.process.inventory import ProcessList
    from forensics.process.monitor import ProcessEvent


# ---- scan (forensics scan host / lint / image) ----

_SCAN_STYLE = {"PASS": "green", "WARN": "yellow", "FATAL": "red", "INFO": "blue", "NOTE": "cyan", "SKIP": "dim"}


def _scan_results(results: typing.Any, show_pass: bool) -> None:
    from rich.markup import escape

    table = Table("id", "status", "subject", "title / details")
    for res in results:
        if res.status.value == "PASS" and not show_pass:
            continue
        style = _SCAN_STYLE.get(res.status.value, "")
        subject = res.subject if len(res.subject) < 24 else res.subject[:22] + "…"
        table.add_row(res.id, f"[{style}]{res.status.value}[/]", escape(subject),
                      escape(res.title) + (f"\n[dim]{escape(res.details[:300])}[/]" if res.details else ""))  # fmt: skip
    out.print(table)


def bench_report(report: typing.Any, show_pass: bool = False) -> None:
    """Docker Bench results: everything but PASS, then the counts."""
    _scan_results(report.results, show_pass)
    for excluded in report.excluded:
        out.print(f"[dim]left out: {excluded}[/]")
    for problem in report.problems:
        err.print(f"[yellow]problem:[/] {problem}", highlight=False)
    out.print("  ".join(f"{k} {v}" for k, v in sorted(report.counts().items())))


def lint_report(report: typing.Any, show_pass: bool = False) -> None:
    """dockle-style results for one image, and what the dockle binary did."""
    out.print(f"[bold]image[/] {report.image}  [bold]files[/] {_val(report.files)}")
    _scan_results(report.results, show_pass)
    out.print(f"dockle binary: {report.dockle.status}" + (f" ({report.dockle.reason})" if report.dockle.reason else ""))


def trivy_report(report: typing.Any, top: int = 30) -> None:
    """trivy's scanners and what they found, normalised."""
    from rich.markup import escape

    out.print(f"[bold]target[/] {escape(report.target)}  [bold]trivy[/] {_val(report.trivy_version)}")
    for scanner, state in report.scanners.items():
        out.print(f"  {scanner:10} {escape(state)}")
    table = Table("severity", "kind", "what", "where")
    for item in report.items[:top]:
        table.add_row(item.severity, item.kind, escape(item.title[:120]), escape(item.where[:80]))
    out.print(table)
    if len(report.items) > top:
        out.print(f"… {len(report.items) - top} more (--json for all)")

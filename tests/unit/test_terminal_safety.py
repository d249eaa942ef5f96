"""Every terminal renderer prints suspect values as inert text: no markup, no emoji, no
terminal control sequences, and never a crash (rich's MarkupError, a surrogate's
UnicodeEncodeError) on a hostile name."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from types import SimpleNamespace as NS

import pytest

from forensics.findings import Finding, Severity
from forensics.records import NotAvailable
from forensics.report import terminal

HOSTILE = "[/x][bold]:x:[link=file:///etc]a\nb\x1b[31m\x07\r\udcff"
"""Markup that would raise (``[/x]``) or restyle, an emoji code, a newline, an ANSI
colour, BEL, CR and a byte that was not UTF-8 (surrogateescape)."""
SHOWN = "[/x][bold]:x:[link=file:///etc]a\\x0ab\\x1b[31m\\x07\\x0d\\xff"
"""How a responder must see it."""


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], str]]:
    """Both module consoles swapped for recording ones; returns everything printed."""
    consoles = [terminal.console(file=io.StringIO(), record=True, width=3000, color_system="truecolor")
                for _ in range(2)]  # fmt: skip
    monkeypatch.setattr(terminal, "out", consoles[0])
    monkeypatch.setattr(terminal, "err", consoles[1])

    def text() -> str:
        raw = "".join(c.file.getvalue() for c in consoles)  # type: ignore[attr-defined]
        # Our own styling is ANSI; take it out to read the text, after checking the
        # suspect's ESC never reached the terminal raw (ours are all "\x1b[<digits>;...m").
        plain = "".join(c.export_text(clear=False) for c in consoles)
        assert "\x07" not in raw and "\r" not in raw and "\udcff" not in raw
        assert "\x1b[31m\x07" not in raw
        return plain

    yield text


def _finding() -> Finding:
    return Finding("test.hostile", Severity.HIGH, HOSTILE, "container:abc", "test")


def _na() -> NotAvailable:
    return NotAvailable(HOSTILE)


def test_safe_shows_controls_and_escapes_markup() -> None:
    assert terminal.safe("plain é") == "plain é"
    assert terminal.safe("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert terminal.safe("\u202eevil") == "\\u202eevil"
    assert terminal.safe("[bold]x") == "\\[bold]x"
    assert terminal.safe("a\tb\nc", lines=True) == "a\tb\nc"
    assert terminal.safe("abcdef", 3) == "abc…"
    assert terminal.safe(_na()).startswith("[yellow]n/a[/] (")


def test_consoles_have_no_emoji_and_no_highlighting() -> None:
    for console in (terminal.out, terminal.err):
        assert console._emoji is False and console._highlight is False


def test_doctor(shown: Callable[[], str]) -> None:
    tool = NS(name=HOSTILE, path=HOSTILE, version=_na(), purpose=HOSTILE)
    me = NS(in_container=True, container_id=HOSTILE, image_id=_na(), pid_host=_na())
    terminal.doctor(NS(root=HOSTILE, docker_data=HOSTILE, storage_driver=_na(), docker_host=HOSTILE,  # type: ignore[arg-type]
                       engine_version=HOSTILE, self_view=me, capabilities=[HOSTILE], tools=[tool],
                       warnings=[HOSTILE]))  # fmt: skip
    text = shown()
    assert text.count(SHOWN) >= 10 and "n/a" in text


def test_containers_and_verification(shown: Callable[[], str]) -> None:
    entry = NS(id=HOSTILE, name=HOSTILE, image=HOSTILE, state=HOSTILE, started=HOSTILE, source=HOSTILE)
    terminal.containers([entry])  # type: ignore[list-item]
    terminal.verification(NS(intact=True, files_checked=1, target=HOSTILE, archive_sha256=HOSTILE))  # type: ignore[arg-type]
    terminal.verification(NS(intact=False, target=HOSTILE, changed=[HOSTILE], missing=[HOSTILE],  # type: ignore[arg-type]
                             extra=[HOSTILE], problems=[HOSTILE]))  # fmt: skip
    text = shown()
    assert text.count(SHOWN) >= 4 + 2 + 5
    assert "[/x][bold]:x:[li" in text  # the 12-character id, escaped too


def test_progress_and_triage(shown: Callable[[], str]) -> None:
    terminal.progress(HOSTILE, HOSTILE)
    outcome = NS(name=HOSTILE, status="failed", message=HOSTILE)
    archive = NS(path="/tmp/" + HOSTILE, sha256=HOSTILE)
    terminal.triage(NS(findings=[_finding()], outcomes=[outcome], complete=False, archive=archive))  # type: ignore[arg-type]
    text = shown()
    assert text.count(SHOWN) == 2 + 1 + 2 + 2
    assert "INCOMPLETE" in text and ":x:" in text and "❌" not in text


def test_container_renderers(shown: Callable[[], str]) -> None:
    raw = HOSTILE.encode("utf-8", "surrogateescape")
    entry = NS(kind="A", path=raw, flags=(HOSTILE,))
    diff = NS(entries=[entry], counts={"A": 1}, name=HOSTILE, container_id="c" * 64, entries_examined=1,
              layers=NS(source=HOSTILE), engine=_na(), yara=NS(status=HOSTILE, reason=HOSTILE),
              findings=[_finding()], problems=[HOSTILE])  # fmt: skip
    terminal.container_diff(diff)  # type: ignore[arg-type]
    meta = NS(permissions=HOSTILE, uid=0, gid=0, size=1)
    version = NS(meta=meta, layer=HOSTILE, layer_ref=None, sha256=_na())
    comparison = NS(path=raw, name=HOSTILE, container_id="c" * 64, status=HOSTILE, content=HOSTILE,
                    original=version, current=None, text_diff=f"+{HOSTILE}\n-{HOSTILE}\n",
                    findings=[_finding()], problems=[HOSTILE])  # fmt: skip
    terminal.container_compare(comparison)  # type: ignore[arg-type]
    extraction = NS(
        files=[NS(status=HOSTILE, path=raw, reason=HOSTILE)], counts={HOSTILE: 1}, problems=[HOSTILE]
    )
    terminal.container_extract(extraction, NS(path=HOSTILE, sha256=HOSTILE))  # type: ignore[arg-type]
    text = shown()
    # the path went through display_path/show first: "\x1b" is already "\\x1b" there; the
    # point is that it neither crashed nor let ESC through
    assert "[/x][bold]:x:[link=file:///etc]a\\x0ab\\x1b[31m\\x07\\x0d\\xff" in text
    # the text diff keeps a line per line of the file, the newline inside one is impossible
    assert "+[/x][bold]:x:[link=file:///etc]a" in text
    assert text.count(SHOWN) >= 8 + 5 + 6


def test_binary_report(shown: Callable[[], str]) -> None:
    seg = NS(type=HOSTILE, flags=HOSTILE, offset=0, filesz=1, memsz=1, entropy=7.9)
    sec = NS(name=HOSTILE, type=HOSTILE, flags=HOSTILE, size=1, entropy=None)
    insn = NS(address=0, hex=HOSTILE, mnemonic=HOSTILE, operands=HOSTILE)
    elf = NS(static=True, arch=HOSTILE, elf_class=64, endianness=HOSTILE, elf_type=HOSTILE, entry=0,
             pie=False, stripped=True, interpreter=HOSTILE, needed=[HOSTILE], imports=[HOSTILE],
             exports=[], functions=[], symbols_total=1, section_headers=HOSTILE, segments=[seg],
             sections=[sec], entry_disassembly=[insn])  # fmt: skip
    report = NS(source=HOSTILE, size=1, file_type=NS(description=HOSTILE, file_tool=HOSTILE),
                hashes=NS(md5=HOSTILE, sha1=_na(), sha256=HOSTILE, ssdeep=_na()), elf=elf,
                strings_total=1, strings=[NS(offset=0, encoding=HOSTILE, text=HOSTILE)],
                indicators=[NS(kind=NS(strong=True, value=HOSTILE), value=HOSTILE, count=1, offset=0,
                               detail=HOSTILE)],
                capabilities=[NS(name=HOSTILE, evidence=[HOSTILE])], packer=[NS(name=HOSTILE, detail=HOSTILE)],
                analyses=[HOSTILE], radare2=NS(line=HOSTILE), problems=[NS(stage=HOSTILE, message=HOSTILE)],
                verdict=NS(level="suspicious", line=HOSTILE))  # fmt: skip
    terminal.binary_report(report, strings=1)  # type: ignore[arg-type]
    text = shown()
    assert text.count(SHOWN) >= 25


def test_process_renderers(shown: Callable[[], str]) -> None:
    proc = NS(pid=1, ppid=0, uid=0, kernel_thread=False, container=NS(name=HOSTILE, id=HOSTILE), exe=HOSTILE,
              exe_deleted=True, exe_sha256=HOSTILE, sockets=[], cmdline=[HOSTILE])  # fmt: skip
    listing = NS(processes=[proc], problems=[NS(pid=1, message=HOSTILE)])
    terminal.process_list(listing, [_finding()])  # type: ignore[arg-type]
    terminal.process_event(
        NS(time=HOSTILE, pid=1, ppid=0, uid=0, container=NS(name=HOSTILE), cmdline=[HOSTILE])
    )  # type: ignore[arg-type]
    terminal.process_event(NS(time="t", pid=1, ppid=0, uid=0, container=None, cmdline=_na()))  # type: ignore[arg-type]
    text = shown()
    assert text.count(SHOWN) >= 5 + 4 and "(deleted)" in text


def test_scan_renderers(shown: Callable[[], str]) -> None:
    result = NS(id=HOSTILE, status=NS(value="WARN"), subject=HOSTILE, title=HOSTILE, details=HOSTILE)
    terminal.bench_report(NS(results=[result], excluded=[HOSTILE], problems=[HOSTILE],
                             counts=lambda: {HOSTILE: 1}))  # fmt: skip
    terminal.lint_report(
        NS(image=HOSTILE, files=_na(), results=[result], dockle=NS(status=HOSTILE, reason=HOSTILE))
    )
    item = NS(severity=HOSTILE, kind=HOSTILE, title=HOSTILE, where=HOSTILE)
    terminal.trivy_report(NS(target=HOSTILE, trivy_version=_na(), scanners={HOSTILE: HOSTILE}, items=[item]))
    text = shown()
    assert text.count(SHOWN) >= 4 + 2 + 3 + 6
    # details keep their lines inside the cell; the controls are still shown
    assert "b\\x1b[31m\\x07\\x0d\\xff" in text


def test_a_piped_container_diff_prints_the_terminals_lines_as_plain_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Piped, the change lines skip Rich (one write); they must read exactly as the
    terminal's, and stay as inert."""
    raw = HOSTILE.encode("utf-8", "surrogateescape")
    entries = [NS(kind="A", path=raw, flags=(HOSTILE,)), NS(kind="C", path=b"/etc/passwd", flags=()),
               NS(kind="D", path=b"/tmp/\xe2\x80\xaeevil [b]", flags=("exec.elf", "names.odd"))]  # fmt: skip
    diff = NS(entries=entries, counts={"A": 1}, name="web", container_id="c" * 64, entries_examined=3,
              layers=NS(source="lower-file"), engine=_na(), yara=NS(status="skipped", reason="x"),
              findings=[], problems=[])  # fmt: skip
    monkeypatch.setattr(terminal, "err", terminal.console(file=io.StringIO()))
    tty = terminal.console(file=io.StringIO(), record=True, width=3000, force_terminal=True)
    monkeypatch.setattr(terminal, "out", tty)
    terminal.container_diff(diff)  # type: ignore[arg-type]
    piped = terminal.console(file=io.StringIO(), width=3000)
    monkeypatch.setattr(terminal, "out", piped)
    terminal.container_diff(diff)  # type: ignore[arg-type]
    plain = piped.file.getvalue()  # type: ignore[attr-defined]
    assert not piped.is_terminal and "\x1b" not in plain and "\u202e" not in plain
    assert plain == tty.export_text(clear=False)
    assert plain.splitlines()[0] == f"A {SHOWN}  {SHOWN}"
    assert plain.splitlines()[2] == "D /tmp/\\u202eevil [b]  exec.elf names.odd"

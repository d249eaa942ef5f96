"""Static triage of one file: hashes, type, ELF structure, strings, indicators, verdict,
and radare2 beside it when present. The file is read, never executed.

Entry points take an open file descriptor (from :meth:`RootFS.open_regular` for a file
inside a container or image root, or :func:`open_host_file` for a path the examiner names
or ``/proc/<pid>/exe``). The whole file is hashed; the native analysis looks at the first
``max_bytes`` of it; everything runs inside a wall-clock budget, and what was cut short is
listed in ``problems``.

External tools (``file``, radare2) get a private copy of the analysed bytes, mode 0400 in a
fresh temporary directory removed afterwards (:func:`sample_copy`), never a path inside
the suspect's tree. That copy is the only file this package writes outside the evidence
sink; it is scratch, not evidence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from forensics.binary import filetype, fuzzy, indicators, r2
from forensics.binary.budget import Budget
from forensics.binary.elf import analyse_elf
from forensics.binary.limits import BUDGET, MAX_BYTES
from forensics.binary.records import BinaryReport, FileType, Hashes, R2Result
from forensics.binary.strings import MAX_STRINGS, iter_strings
from forensics.errors import NotFound, UsageProblem
from forensics.records import NotAvailable

FUZZY_LIMIT = 16 * 1024 * 1024
"""Largest file given a fuzzy hash (without libfuzzy, ppdeep does about 1 MB/s here)."""
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Options:
    """How far one analysis may go."""

    max_bytes: int = MAX_BYTES
    budget: float = BUDGET
    radare2: bool = True
    """Run radare2 too when ``r2`` is on PATH."""
    r2_timeout: float = r2.R2_TIMEOUT
    file_tool: bool = True
    """Ask ``file`` too when it is on PATH."""
    forbidden_root: str | None = None
    """The analysed host root: tools found below it are refused (never run the suspect's code)."""


def open_host_file(path: str | bytes | os.PathLike[str]) -> int:
    """Open a file the examiner names (links followed) for reading; refuse anything but a
    regular file before reading a byte (a FIFO would block, a device has no end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{os.fsdecode(path)}: no such file") from None
    except OSError as exc:
        raise UsageProblem(f"{os.fsdecode(path)}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageProblem(f"{os.fsdecode(path)} is not a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        try:
            fd = os.open(path, flags | getattr(os, "O_NOATIME", 0))
        except PermissionError:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
            fd = os.open(path, flags)
    except OSError as exc:
        raise UsageProblem(f"{os.fsdecode(path)}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageProblem(f"{os.fsdecode(path)} changed into something other than a regular file")
    return fd


def analyse_fd(fd: int, source: str, options: Options = Options()) -> BinaryReport:
    """Hash the whole file behind ``fd`` (from its current start) and triage it."""
    budget = Budget(options.budget)
    digests = [hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()]
    head = bytearray()
    size = 0
    hashed = True
    while True:
        if budget.expired():
            budget.problem("hashes", f"budget used up after reading {size} bytes: file not fully hashed")
            hashed = False
            break
        chunk = os.pread(fd, CHUNK, size)
        if not chunk:
            break
        for digest in digests:
            digest.update(chunk)
        if len(head) < options.max_bytes:
            head += chunk[: options.max_bytes - len(head)]
        size += len(chunk)
    data = bytes(head)
    if len(data) < size:
        budget.problem("read", f"file is {size} bytes; the native analysis read the first {len(data)}")
    names = ("md5", "sha1", "sha256")
    values: dict[str, Any] = {
        n: d.hexdigest() if hashed else NotAvailable("file not fully read")
        for n, d in zip(names, digests, strict=True)
    }
    complete = hashed and len(data) == size
    return analyse_bytes(data, source, size, values, complete, options, budget)


def analyse_bytes(
    data: bytes,
    source: str,
    size: int | None = None,
    digests: dict[str, Any] | None = None,
    complete: bool = True,
    options: Options = Options(),
    budget: Budget | None = None,
) -> BinaryReport:
    """Triage ``data`` (the first bytes of a file of ``size`` bytes, or all of it).

    The native analysis runs first, inside the budget; ``file`` and radare2 (each with
    its own time limit) after it, on a private copy of the bytes.
    """
    budget = budget or Budget(options.budget)
    size = len(data) if size is None else size
    if digests is None:
        digests = {
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    hashes = Hashes(digests["md5"], digests["sha1"], digests["sha256"], _fuzzy(data, complete, budget))
    kind, description = filetype.sniff(data[: filetype.HEAD_BYTES])
    elf = analyse_elf(data, budget) if kind == "elf" else NotAvailable(f"not ELF ({description})")

    every = []
    if budget.allows("strings"):
        every = list(iter_strings(data, budget.expired))
        if budget.expired():
            budget.problem("strings", f"budget used up: string scan stopped after {len(every)} strings")
    found, cut = indicators.string_indicators(every, budget.expired)
    if cut:
        budget.problem(
            "indicators", f"more than {indicators.MAX_INDICATORS} distinct indicators: rest not kept"
        )
    caps = indicators.capabilities(elf, found)
    packer = indicators.packer_signs(data, elf) if budget.allows("packer") else ()
    verdict = indicators.verdict(found, caps, packer)

    with sample_copy(data, wanted=options.file_tool or options.radare2) as sample:
        file_tool: str | NotAvailable = NotAvailable("not asked for")
        if options.file_tool:
            file_tool = filetype.file_tool(sample, options.forbidden_root)
        radare = _radare2(sample, complete, options)
    analyses = ("native", "radare2") if radare.status in ("ran", "partial") else ("native",)
    if radare.status in ("failed", "partial"):
        budget.problem("radare2", radare.reason)
    return BinaryReport(
        source=source,
        size=size,
        analysed_bytes=len(data),
        hashes=hashes,
        file_type=FileType(kind, description, file_tool),
        elf=elf,
        strings_total=len(every),
        strings=tuple(every[:MAX_STRINGS]),
        indicators=tuple(sorted(found, key=lambda i: (not i.kind.strong, i.kind.value, i.offset))),
        capabilities=caps,
        packer=packer,
        verdict=verdict,
        analyses=analyses,
        radare2=radare,
        problems=tuple(budget.problems),
        seconds=round(time.monotonic() - budget.started, 3),
    )


def _radare2(sample: str | NotAvailable, complete: bool, options: Options) -> R2Result:
    if not options.radare2:
        return r2.skipped("not asked for (--no-r2)")
    if not complete:
        return r2.skipped("only part of the file was read")
    if isinstance(sample, NotAvailable):
        return r2.skipped(sample.reason)
    return r2.run_radare2(sample, options.forbidden_root, options.r2_timeout)


@contextlib.contextmanager
def sample_copy(data: bytes, wanted: bool = True) -> Iterator[str | NotAvailable]:
    """A private read-only copy of ``data`` for external tools, removed on exit."""
    if not wanted:
        yield NotAvailable("no external tool asked for")
        return
    try:
        tmp = tempfile.TemporaryDirectory(prefix="forensics-sample-")
    except OSError as exc:
        yield NotAvailable(f"no scratch directory for a sample copy: {exc}")
        return
    with tmp as directory:
        path = os.path.join(directory, "sample")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o400)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except OSError as exc:
            yield NotAvailable(f"could not write a sample copy: {exc}")
            return
        yield path


def _fuzzy(data: bytes, complete: bool, budget: Budget) -> str | NotAvailable:
    if not complete:
        return NotAvailable("only part of the file was read")
    if len(data) > FUZZY_LIMIT:
        return NotAvailable(f"file over {FUZZY_LIMIT} bytes: no fuzzy hash")
    how = fuzzy.implementation()
    if len(data) * fuzzy.SECONDS_PER_BYTE[how] > budget.left():
        budget.problem("ssdeep", f"not enough budget left for the fuzzy hash ({how})")
        return NotAvailable("not enough budget left")
    try:
        return fuzzy.fuzzy_hash(data)
    except Exception as exc:
        budget.problem("ssdeep", f"{how} failed: {exc}")
        return NotAvailable(f"{how} failed: {exc}")

"""The folder of YARA rules (forensics/rules/yara/*.yar), run with the ``yara`` tool.

The tool comes from the appliance's own PATH through :func:`forensics.tools.run`, never
from the analysed root. It is never handed a path inside the suspect's file system: it
would open it itself, following a link that a running container swapped in, and (on a
writable mount) update the file's access time. Instead each file is read by us through
:class:`RootFS` (no links, ``O_NOATIME``; each directory resolved once for all its files),
copied into an anonymous memory file (``memfd_create``), and yara scans
``/proc/<our pid>/fd/<n>``. Files go in batches bounded in count and bytes; each batch is
one ``--scan-list`` on stdin, and the next batch is copied while yara scans the last. The
rules are compiled once with ``yarac`` into a private temporary directory
(:func:`prepared`; a triage does it once for all its containers: compiling them costs a
yara run more than scanning a batch of small files); without ``yarac``, or when it fails,
each run compiles the sources. When ``yara`` is absent the scan is a recorded skip, not an
error.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import resource
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from forensics import tools
from forensics.errors import UnsafePath
from forensics.host.rootfs import RootFS, chunks, open_file_at
from forensics.records import NotAvailable

RULES_DIR = Path(__file__).resolve().parent.parent / "rules" / "yara"
TIMEOUT = 300.0
"""Seconds for one batch."""
PER_FILE_TIMEOUT = 30
MAX_FILE = 100 * 1024 * 1024
BATCH_FILES = 2000
"""Files per yara run (fewer when the open-file limit is low: each is an open memfd). Each
run costs a start and a load of the rules: 20,000 small files took 2.3 s in runs of 500 and
1.8 s in runs of 2,000 here."""
BATCH_BYTES = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class YaraMatch:
    path: bytes
    """The file, as a path inside the container."""
    rule: str


@dataclasses.dataclass(frozen=True)
class YaraScan:
    """One run of the rules over a container's added and changed files."""

    status: str
    """``ran``, ``skipped`` (no tool, no rules, nothing to scan) or ``failed``."""
    reason: str
    rule_files: list[str]
    files: int
    """Files scanned."""
    matches: list[YaraMatch]
    not_scanned: list[tuple[bytes, str]]
    """Files left out, and why."""
    argv: list[str]
    """The command line of the first batch (the scan list comes on stdin)."""
    batches: int
    errors: list[str]
    """What yara said on stderr, and batches that failed, bounded."""


def skipped(reason: str) -> YaraScan:
    return YaraScan("skipped", reason, [], 0, [], [], [], 0, [])


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    return sorted(rules_dir.glob("*.yar")) if rules_dir.is_dir() else []


@contextlib.contextmanager
def _memfd_copy(dir_fd: int, name: bytes, limit: int) -> Iterator[tuple[int, int]]:
    """(memfd, size) holding the content of the regular file ``name`` in ``dir_fd`` (looked
    at with lstat, opened without following it, on that inode); the memfd is closed after."""
    src, st = open_file_at(dir_fd, name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    try:
        if st.st_size > limit:
            raise UnsafePath(f"{st.st_size} bytes, over the {limit}-byte limit")
        mem = os.memfd_create("forensics-yara", os.MFD_CLOEXEC)
        try:
            copied = 0
            for chunk in chunks(src, st.st_size, limit):
                os.write(mem, chunk)
                copied += len(chunk)
            yield mem, copied
        finally:
            os.close(mem)
    finally:
        os.close(src)


class _Parents:
    """The directory of the file at hand, opened once for all its files in a row (the
    paths come sorted): a path is resolved inside the root once per directory, not once
    per file."""

    def __init__(self, fs: RootFS) -> None:
        self.fs = fs
        self.path: bytes | None = None
        self.fd: int | Exception = UnsafePath("no directory yet")
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> _Parents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def open(self, path: bytes) -> tuple[int, bytes]:
        """(fd of the directory holding ``path``, the name in it); raises why not."""
        parent, _, name = path.rstrip(b"/").rpartition(b"/")
        if parent != self.path:
            self.stack.close()
            self.path = parent
            try:
                self.fd = self.stack.enter_context(self.fs.directory(parent or b"/"))
            except (UnsafePath, OSError) as exc:
                self.fd = exc
        if isinstance(self.fd, Exception):
            raise self.fd
        if not name or name in (b".", b".."):
            raise UnsafePath(f"{path!r} does not name a file")
        return self.fd, name


def _fill(
    todo: collections.deque[bytes], parents: _Parents, per_batch: int, max_file: int,
    not_scanned: list[tuple[bytes, str]], held: contextlib.ExitStack,
) -> tuple[contextlib.ExitStack, dict[bytes, bytes]]:  # fmt: skip
    """The next batch: its files copied into memfds (the stack that closes them, which
    ``held`` closes too if the scan ends early), as /proc path -> the file's path."""
    memfds = contextlib.ExitStack()
    held.push(memfds.__exit__)
    batch: dict[bytes, bytes] = {}
    size = 0
    while todo and len(batch) < per_batch and size < BATCH_BYTES:
        path = todo.popleft()
        try:
            mem, copied = memfds.enter_context(_memfd_copy(*parents.open(path), max_file))
        except (UnsafePath, OSError) as exc:
            not_scanned.append((path, str(exc)))
            continue
        batch[f"/proc/{os.getpid()}/fd/{mem}".encode()] = path
        size += copied
    return memfds, batch


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The rules made ready once for every scan of a run (a triage scans each container)."""

    binary: str | NotAvailable
    """yara, from our own PATH."""
    folder: Path
    rule_files: list[str]
    rules_argv: list[str]
    """The rules' part of yara's command line: ``-C <compiled>``, or the source files."""
    errors: tuple[str, ...]
    """Why the rules were not compiled ahead, if they were not."""


def _compile(
    rules: list[str], forbidden_root: str, stack: contextlib.ExitStack, errors: list[str]
) -> list[str]:
    """``-C <compiled>`` when ``yarac`` compiled them (into a temporary directory removed
    with ``stack``), else the source files."""
    yarac = tools.which("yarac", forbidden_root=forbidden_root)
    if isinstance(yarac, NotAvailable):
        return rules
    try:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="forensics-yara-"))
    except OSError as exc:
        errors.append(f"no temporary directory for the compiled rules, each run compiles them: {exc}")
        return rules
    target = os.path.join(folder, "rules.yarc")
    result = tools.run([yarac, "--no-warnings", *rules, target], timeout=60)
    if not result.ok:
        errors.append(f"yarac could not compile the rules, each run compiles them: {result.describe()}")
        return rules
    return ["-C", target]


@contextlib.contextmanager
def prepared(forbidden_root: str, rules_dir: Path = RULES_DIR, compile: bool = True) -> Iterator[Prepared]:
    """The rules, compiled once (when yara, yarac and rules are there, and ``compile``) for
    every :func:`scan` made inside the ``with``; the compiled file is removed after it."""
    rules = [str(p) for p in rule_files(rules_dir)]
    binary = tools.which("yara", forbidden_root=forbidden_root)
    with contextlib.ExitStack() as stack:
        errors: list[str] = []
        ready = compile and rules and isinstance(binary, str)
        argv = _compile(rules, forbidden_root, stack, errors) if ready else rules
        yield Prepared(binary, rules_dir, rules, argv, tuple(errors))


def scan(
    fs: RootFS,
    paths: Sequence[bytes],
    forbidden_root: str,
    rules_dir: Path = RULES_DIR,
    max_file: int = MAX_FILE,
    timeout: float = TIMEOUT,
    rules: Prepared | None = None,
) -> YaraScan:
    """Run every rule over the regular files ``paths`` inside ``fs`` (with ``rules`` made
    ready by :func:`prepared`; without, they are made ready for this scan alone)."""
    if rules is None:
        with prepared(forbidden_root, rules_dir, compile=bool(paths)) as ready:
            return scan(fs, paths, forbidden_root, rules_dir, max_file, timeout, ready)
    if isinstance(rules.binary, NotAvailable):
        return skipped(rules.binary.reason)
    if not rules.rule_files:
        return skipped(f"no *.yar rules in {rules.folder}")
    if not paths:
        return dataclasses.replace(skipped("no added or changed regular files"), rule_files=rules.rule_files)
    argv = [rules.binary, "--no-warnings", "--no-follow-symlinks", f"--timeout={PER_FILE_TIMEOUT}",
            *rules.rules_argv, "--scan-list", "/dev/stdin"]  # fmt: skip
    return _batches(fs, paths, rules.rule_files, argv, list(rules.errors), max_file, timeout)


def _batches(
    fs: RootFS, paths: Sequence[bytes], rules: list[str], argv: list[str], errors: list[str], max_file: int,
    timeout: float,
) -> YaraScan:  # fmt: skip
    """The files copied into memfds a batch at a time, each batch one yara run. The next
    batch is copied while yara scans the last one (a thread waits for it), so our reading
    and its scanning take the two cores side by side rather than in turn."""
    matches: list[YaraMatch] = []
    not_scanned: list[tuple[bytes, str]] = []
    scanned = batches = 0
    failed = False
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # Two batches are open at once, each holding a memfd per file (and a source fd while copied).
    per_batch = BATCH_FILES if soft == resource.RLIM_INFINITY else max(1, min(BATCH_FILES, (soft - 64) // 4))
    todo = collections.deque(paths)
    with (
        _Parents(fs) as parents,
        contextlib.ExitStack() as held,
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="yara") as running,
    ):
        scanning: tuple[int, concurrent.futures.Future[tools.ToolRun], dict[bytes, bytes], contextlib.ExitStack] | None = None  # fmt: skip
        while todo or scanning is not None:
            ready = _fill(todo, parents, per_batch, max_file, not_scanned, held) if todo else None
            if scanning is not None:
                number, future, batch, memfds = scanning
                with memfds:
                    result = future.result()
                scanning = None
                scanned += len(batch)
                for line in result.stdout.splitlines():
                    rule, sep, where = line.partition(b" ")
                    if sep and where in batch:
                        matches.append(YaraMatch(batch[where], rule.decode("ascii", "replace")))
                for said in result.stderr.decode("utf-8", "replace").splitlines():
                    if len(errors) < 200:
                        errors.append(said)
                if not result.ok:
                    failed = True
                    errors.append(f"batch {number}: {result.describe()}")
            if ready is not None:
                memfds, batch = ready
                if not batch:
                    memfds.close()
                    continue
                batches += 1
                stdin = b"\n".join(batch) + b"\n"
                future = running.submit(tools.run, argv, timeout=timeout, stdin=stdin)
                scanning = (batches, future, batch, memfds)
    status = "failed" if failed else "ran"
    reason = "a batch failed: see errors" if failed else ""
    return YaraScan(status, reason, rules, scanned, matches, not_scanned, argv, batches, errors)

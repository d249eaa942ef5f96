"""``container diff``: what a container changed, read from disk, with what each change is.

:mod:`forensics.containers.overlay` gives the engine's list of changes; here each one gets
its metadata (type, mode, owner, size, times), a SHA-256 for regular files (size-bounded),
a link's target (as data), the image layer that held the original, and the flags of the
suspicious-change rules (:mod:`forensics.rules.container_changes`). Files are read during
the walk itself, through the directory fd it holds (opened without following links, on
the inode it lstat'ed), once: for the hash, and for the first bytes when a rule wants
them. Added and changed files then go
through the YARA rules, and, when the Engine API answers, its own list of changes is
compared with ours.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import operator
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from forensics.bulk import collector_paused
from forensics.containers import yarascan
from forensics.containers.checks import Candidate, Matcher
from forensics.containers.layers import ContainerLayers, Layer, host_path
from forensics.containers.limits import MAX_HASH
from forensics.containers.overlay import OverlayChanges, RawChange, compute_changes, offered
from forensics.containers.runtime import MountRecord, mounts_of
from forensics.errors import UnsafePath
from forensics.findings import Finding, Severity
from forensics.host.disk import DiskContainer
from forensics.host.engine import Engine
from forensics.host.rootfs import GrewPastLimit, RootFS, chunks, file_type, open_file_at
from forensics.records import NotAvailable, char_escape, display_path, path_record, to_jsonable
from forensics.rules.container_changes import ChangeRule

MAX_HASH_TOTAL = 8 * 1024 * 1024 * 1024
"""Bytes hashed per container in all; later files get NotAvailable."""
CHUNK = 1 << 20
MAX_LISTED = 50
"""Paths named in one finding's details."""
_KINDS = {0: "C", 1: "A", 2: "D"}
_DEVICES = (stat.S_IFCHR, stat.S_IFBLK)
_PATH = operator.attrgetter("path")
_KIND = operator.attrgetter("kind")


class FileMeta(NamedTuple):
    """What lstat says of one entry (a named tuple, as :class:`DiffEntry` is: a diff makes
    one or two per change, and a frozen dataclass cost three times as much to build)."""

    file_type: str
    mode: int
    """st_mode, type bits included."""
    permissions: str
    """As ``ls -l`` shows it, e.g. ``-rwsr-xr-x``."""
    uid: int
    gid: int
    size: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    rdev: str | None
    """``major:minor`` for a device, else None."""

    @classmethod
    def of(cls, st: os.stat_result) -> FileMeta:
        mode = st.st_mode
        kind = stat.S_IFMT(mode)
        return cls(
            file_type(mode),
            mode,
            stat.filemode(mode),
            st.st_uid,
            st.st_gid,
            st.st_size,
            st.st_nlink,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_ctime_ns,
            f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" if kind in _DEVICES else None,
        )


class DiffEntry(NamedTuple):
    """One change, as ``docker diff`` lists it, and what it is."""

    kind: str
    """``A`` added, ``C`` changed, ``D`` deleted."""
    path: bytes
    """Absolute path inside the container (bytes: names need not be UTF-8)."""
    cause: str
    """Why it is listed: ``new``, ``stat``, ``capability``, ``parent`` (something below
    it changed), ``whiteout``, ``xattr-whiteout``, ``opaque`` (hidden by an opaque dir)."""
    current: FileMeta | None
    """The entry in the writable layer (None for D)."""
    original: FileMeta | None
    """The entry in the image's layers (None for A)."""
    layer: Layer | None
    """The lower layer that held the original (None for A)."""
    sha256: str | NotAvailable
    """Of the current content, for a regular file."""
    link_target: bytes | NotAvailable | None
    """A symlink's target, as data (None: not a link)."""
    executable: bool
    """A regular file with an execute bit."""
    flags: tuple[str, ...] = ()
    """Ids of the suspicious-change rules (and YARA rules, ``yara:<rule>``) that fired."""


@dataclasses.dataclass(frozen=True)
class EngineCheck:
    """The Engine API's ``GET /containers/{id}/changes`` beside ours."""

    engine_count: int
    only_engine: list[str]
    """``K /path`` the engine lists and the disk does not (asked twice)."""
    only_disk: list[str]
    """``K /path`` the disk shows and the engine does not (asked twice)."""

    @property
    def agrees(self) -> bool:
        return not (self.only_engine or self.only_disk)


@dataclasses.dataclass(frozen=True)
class DiffOptions:
    hash_limit: int = MAX_HASH
    yara: bool = True
    engine: Engine | NotAvailable = dataclasses.field(default_factory=lambda: NotAvailable("not asked"))
    evidence: str = ""
    """Where the diff is stored in the archive, for the findings' evidence."""
    yara_rules: yarascan.Prepared | None = None
    """The YARA rules made ready once for many containers (None: for this one alone)."""


@dataclasses.dataclass(frozen=True)
class ContainerDiff:
    """A container's changes against its image, from disk."""

    container_id: str
    name: str
    image_id: str
    image_ref: str
    state: str
    layers: ContainerLayers
    entries: list[DiffEntry]
    counts: dict[str, int]
    entries_examined: int
    truncated: bool
    problems: list[str]
    mounts: list[MountRecord]
    yara: yarascan.YaraScan
    engine: EngineCheck | NotAvailable
    findings: list[Finding]


def show(path: bytes) -> str:
    """A path for one line of text: non-UTF-8 and control characters escaped."""
    text = display_path(path)
    return text if text.isprintable() else "".join(ch if ch.isprintable() else char_escape(ch) for ch in text)


def _read(
    dir_fd: int, name: bytes, st: os.stat_result, hash_limit: int, window: int
) -> tuple[str | NotAvailable, bytes]:
    """(SHA-256 or why not, first ``window`` bytes) of the regular file ``name`` in the
    writable directory ``dir_fd``, lstat'ed as ``st``: opened once, read once."""
    try:
        fd, now = open_file_at(dir_fd, name, st)
    except (UnsafePath, OSError) as exc:
        return NotAvailable(f"unreadable: {exc}"), b""
    try:
        size = now.st_size
        if size > hash_limit:
            return NotAvailable(f"{size} bytes, over the {hash_limit}-byte hash limit"), (
                os.pread(fd, window, 0) if window else b""
            )
        if size < CHUNK:  # the common small file: one read of what fstat said and one byte more
            data = os.read(fd, size + 1)
            if len(data) <= size:
                return hashlib.sha256(data).hexdigest(), data[:window]
            os.lseek(fd, 0, os.SEEK_SET)  # it grew while read: again, the long way
        digest = hashlib.sha256()
        head = b""
        try:
            for chunk in chunks(fd, size, hash_limit, CHUNK):
                digest.update(chunk)
                if len(head) < window:
                    head += chunk[: window - len(head)]
        except GrewPastLimit:
            return NotAvailable(f"grew past the {hash_limit}-byte hash limit while read"), head
        return digest.hexdigest(), head
    except OSError as exc:
        return NotAvailable(f"unreadable: {exc}"), b""
    finally:
        os.close(fd)


def _candidate(raw: RawChange) -> Candidate:
    new, old = raw.new, raw.old
    here = new if new is not None else old
    assert here is not None
    mode = here.st_mode
    # Made positionally, straight through tuple.__new__: one per change, and the named
    # tuple's own __new__ with keywords costs twice as much.
    if old is None:
        return _tuple_new(Candidate, (raw.kind, raw.path, file_type(mode), mode, here.st_size, None, None))
    return _tuple_new(
        Candidate, (raw.kind, raw.path, file_type(mode), mode, here.st_size, old.st_mode, old.st_size)
    )


_tuple_new = tuple.__new__


_Content = tuple[str | NotAvailable, bytes | NotAvailable | None, list[ChangeRule]]
"""What reading one change gave: SHA-256, link target, the rules that fired."""


class _Reader:
    """The overlay walk's visit hook: each added or changed file is read once, through the
    directory fd the walk holds (no path resolved twice), hashed, its first bytes offered
    to the rules that want them; a link's target is read as data."""

    def __init__(self, matcher: Matcher, hash_limit: int) -> None:
        self.matcher = matcher
        self.hash_limit = hash_limit
        self.budget = MAX_HASH_TOTAL

    def __call__(self, raw: RawChange, dir_fd: int, name: bytes) -> _Content:
        new = raw.new
        assert new is not None
        candidate = _candidate(raw)
        plan = self.matcher.plan(candidate)
        if not stat.S_ISREG(new.st_mode):
            try:
                target: bytes | NotAvailable = os.readlink(name, dir_fd=dir_fd)
            except OSError as exc:
                target = NotAvailable(f"unreadable: {exc}")
            return NotAvailable("not a regular file"), target, self.matcher.matches(candidate, plan, b"")
        if self.budget <= 0:
            sha: str | NotAvailable = NotAvailable(
                f"the {MAX_HASH_TOTAL}-byte hash budget of this container is spent"
            )
            return sha, None, self.matcher.matches(candidate, plan, b"")
        sha, head = _read(dir_fd, name, new, min(self.hash_limit, self.budget), plan.window)
        if isinstance(sha, str):  # only what was hashed: a file over the limit costs nothing
            self.budget -= new.st_size
        return sha, None, self.matcher.matches(candidate, plan, head)


def enrich(
    changes: OverlayChanges, layers: ContainerLayers, matcher: Matcher
) -> tuple[list[DiffEntry], dict[str, list[bytes]]]:
    """Metadata, hashes and rule flags for each change; also rule id -> paths flagged.

    Files and links were read during the walk (``changes.visited``, see :class:`_Reader`);
    the rest (deletions, directories, specials) get their flags from metadata here.
    """
    entries = []
    flagged: dict[str, list[bytes]] = defaultdict(list)
    for raw in changes.changes:
        content = changes.visited.get(raw.path)
        if content is None:
            candidate = _candidate(raw)
            why = "deleted" if raw.new is None else "not a regular file"
            if raw.new is not None and offered(raw.new.st_mode):
                why = "not read (the walk offered no fd)"
            content = (NotAvailable(why), None, matcher.matches(candidate, matcher.plan(candidate), b""))
        sha, target, fired = content
        for rule in fired:
            flagged[rule.id].append(raw.path)
        new, old = raw.new, raw.old
        entries.append(
            DiffEntry(
                raw.kind,
                raw.path,
                raw.cause,
                FileMeta.of(new) if new is not None else None,
                FileMeta.of(old) if old is not None else None,
                layers.lowers[raw.old_layer] if raw.old_layer is not None else None,
                sha,
                target,
                new is not None and stat.S_ISREG(new.st_mode) and bool(new.st_mode & 0o111),
                tuple([rule.id for rule in fired]) if fired else (),
            )
        )
    return entries, dict(flagged)


def analyse(
    container: DiskContainer, layers: ContainerLayers, root: str, options: DiffOptions | None = None
) -> ContainerDiff:
    """Everything ``container diff`` shows for one container."""
    options = options or DiffOptions()
    lowers = [host_path(root, layer.path) for layer in layers.lowers]
    upper = host_path(root, layers.upper)
    matcher = Matcher.default()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="engine-changes") as asking:
        # The daemon works out its own change list while we walk the disk and run yara.
        asked = None
        if not isinstance(options.engine, NotAvailable):
            asked = asking.submit(engine_changes, options.engine, container.id)
        with collector_paused():  # hundreds of thousands of objects that all live on
            changes = compute_changes(upper, lowers, visit=_Reader(matcher, options.hash_limit))
            entries, flagged = enrich(changes, layers, matcher)
        entries.sort(key=_PATH)
        if options.yara:
            scan = _yara(entries, upper, root, options.yara_rules)
        else:
            scan = yarascan.skipped("not asked (--no-yara)")
        engine = _engine_check(options.engine, container.id, changes.changes, upper, lowers, asked)
    if scan.matches:
        by_path: dict[bytes, list[str]] = defaultdict(list)
        for match in scan.matches:
            by_path[match.path].append(f"yara:{match.rule}")
        entries = [e._replace(flags=e.flags + tuple(by_path.get(e.path, ()))) for e in entries]
    subject = f"container:{container.id}"
    findings = _findings(
        matcher, flagged, scan, engine, subject, options.evidence, changes.truncated, container
    )
    return ContainerDiff(
        container_id=container.id,
        name=container.name,
        image_id=container.image_id,
        image_ref=container.image_ref,
        state=container.state.status,
        layers=layers,
        entries=entries,
        counts=dict(Counter(map(_KIND, entries))),
        entries_examined=changes.entries,
        truncated=changes.truncated,
        problems=layers.problems + changes.problems,
        mounts=mounts_of(container.config),
        yara=scan,
        engine=engine,
        findings=findings,
    )


def _yara(
    entries: Sequence[DiffEntry], upper: str, root: str, rules: yarascan.Prepared | None
) -> yarascan.YaraScan:
    files = [
        e.path for e in entries if e.kind in "AC" and e.current is not None and e.current.file_type == "file"
    ]
    return yarascan.scan(RootFS(upper), files, forbidden_root=root, rules=rules)


def _engine_check(
    engine: Engine | NotAvailable, cid: str, ours: Sequence[RawChange], upper: str, lowers: list[str],
    asked: concurrent.futures.Future[set[str]] | None = None,
) -> EngineCheck | NotAvailable:  # fmt: skip
    """Our change list against the engine's (``asked``: its first answer, being had)."""
    if isinstance(engine, NotAvailable):
        return engine
    try:
        first = asked.result() if asked is not None else engine_changes(engine, cid)
    except Exception as exc:  # the daemon's trouble is a recorded fact, not our failure
        return NotAvailable(f"the Engine API's changes could not be had: {exc}")
    disk = {_key(c.kind, c.path) for c in ours}
    if first == disk:
        return EngineCheck(len(first), [], [])
    # A running container may change between the two looks: ask both sides again and keep
    # only what differs both times.
    try:
        second = engine_changes(engine, cid)
    except Exception as exc:
        return NotAvailable(f"the Engine API's changes could not be had a second time: {exc}")
    again = {_key(c.kind, c.path) for c in compute_changes(upper, lowers).changes}
    only_engine = sorted((first - disk) & (second - again))
    only_disk = sorted((disk - first) & (again - second))
    return EngineCheck(len(second), only_engine, only_disk)


def _key(kind: str, path: bytes) -> str:
    # The engine's JSON turns bytes that are not UTF-8 into U+FFFD; so do we, to compare.
    return f"{kind} {path.decode('utf-8', 'replace')}"


def engine_changes(engine: Engine, cid: str) -> set[str]:
    """The engine's changes as ``K /path`` strings."""
    out = set()
    for item in engine.container_changes(cid):
        kind = _KINDS.get(item.get("Kind"), "?")  # type: ignore[arg-type]
        out.add(f"{kind} {item.get('Path', '')}")
    return out


def _findings(
    matcher: Matcher, flagged: dict[str, list[bytes]], scan: yarascan.YaraScan,
    engine: EngineCheck | NotAvailable, subject: str, evidence: str, truncated: bool,
    container: DiskContainer,
) -> list[Finding]:  # fmt: skip
    where = (evidence,) if evidence else ()
    label = container.name or container.id[:12]
    out = []
    for rule in matcher.rules:
        paths = flagged.get(rule.id)
        if not paths:
            continue
        more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
        listed = "\n".join(show(p) for p in paths[:MAX_LISTED])
        extra = f"\n... and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
        out.append(
            Finding(
                rule=f"container.{rule.id}",
                severity=rule.severity,
                title=f"{label}: {rule.title}: {show(paths[0])}{more}",
                subject=subject,
                source="containers.diff",
                evidence=where,
                details=(rule.details + "\n" if rule.details else "") + "Paths:\n" + listed + extra,
            )
        )
    by_rule: dict[str, list[bytes]] = defaultdict(list)
    for match in scan.matches:
        by_rule[match.rule].append(match.path)
    for rule_name, paths in sorted(by_rule.items()):
        more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
        out.append(
            Finding(
                rule=f"container.yara.{rule_name}",
                severity=Severity.HIGH,
                title=f"{label}: YARA rule {rule_name} matched {show(paths[0])}{more}",
                subject=subject,
                source="containers.diff",
                evidence=where,
                details="Paths:\n" + "\n".join(show(p) for p in paths[:MAX_LISTED]),
            )
        )
    if isinstance(engine, EngineCheck) and not engine.agrees:
        out.append(
            Finding(
                rule="container.diff-engine-mismatch",
                severity=Severity.HIGH,
                title=f"{label}: the Engine API's changes differ from the writable layer on disk",
                subject=subject,
                source="containers.diff",
                evidence=where,
                details="Asked twice, the daemon and the disk still disagree: a tampered daemon, or a "
                "layer changed behind its back.\nOnly the engine:\n" + "\n".join(engine.only_engine[:MAX_LISTED])
                + "\nOnly the disk:\n" + "\n".join(engine.only_disk[:MAX_LISTED]),
            )
        )  # fmt: skip
    if truncated:
        out.append(
            Finding(
                rule="container.diff-truncated",
                severity=Severity.LOW,
                title=f"{label}: the writable layer is too large to list whole: diff incomplete",
                subject=subject,
                source="containers.diff",
                evidence=where,
            )
        )
    return out


def entry_record(entry: DiffEntry) -> dict[str, Any]:
    """An entry as JSON: the path kept exactly (base64 when not UTF-8)."""
    record: dict[str, Any] = {"kind": entry.kind, **path_record(entry.path), "cause": entry.cause}
    meta = entry.current or entry.original
    record["type"] = meta.file_type if meta else "unknown"
    record["current"] = to_jsonable(entry.current)
    record["original"] = to_jsonable(entry.original)
    record["layer"] = to_jsonable(entry.layer)
    record["sha256"] = to_jsonable(entry.sha256)
    if isinstance(entry.link_target, bytes):
        target = path_record(entry.link_target)
        record["link_target"] = target["path"]
        if "path_b64" in target:
            record["link_target_b64"] = target["path_b64"]
    else:
        record["link_target"] = to_jsonable(entry.link_target)
    record["executable"] = entry.executable
    record["flags"] = list(entry.flags)
    return record


def diff_record(diff: ContainerDiff) -> dict[str, Any]:
    """The whole diff as JSON."""
    scan = diff.yara
    return {
        "container": {"id": diff.container_id, "name": diff.name, "image_id": diff.image_id,
                      "image": diff.image_ref, "state": diff.state},
        "counts": diff.counts,
        "entries_examined": diff.entries_examined,
        "truncated": diff.truncated,
        "layers": to_jsonable(diff.layers),
        "mounts": to_jsonable(diff.mounts),
        "changes": [entry_record(e) for e in diff.entries],
        "yara": {
            "status": scan.status, "reason": scan.reason, "rule_files": scan.rule_files, "files": scan.files,
            "matches": [{**path_record(m.path), "rule": m.rule} for m in scan.matches],
            "not_scanned": [{**path_record(p), "why": why} for p, why in scan.not_scanned],
            "argv": scan.argv, "batches": scan.batches, "errors": scan.errors,
        },
        "engine": to_jsonable(diff.engine),
        "problems": diff.problems,
        "findings": to_jsonable(diff.findings),
    }  # fmt: skip

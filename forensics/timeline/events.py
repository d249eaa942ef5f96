"""Timeline events from what a triage collected: file times, container and image times,
process starts and findings, as Timesketch imports them from JSON lines (``message``,
``datetime`` ISO 8601, ``timestamp_desc``, plus attributes).

Every time comes from the suspect host and may be crafted: a value that does not parse,
or Docker's zero time (``0001-01-01T00:00:00Z``), is left out rather than guessed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from forensics.records import display_path

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$"
)
_FIRST_YEAR = 1971
"""Times before this are Docker's or the kernel's "unset", not events."""


@dataclasses.dataclass(frozen=True)
class TimelineEvent:
    """One line of the Timesketch file."""

    when: dt.datetime
    """Aware, UTC."""
    timestamp_desc: str
    """What the time means, e.g. ``Content Modification Time``, ``Container Started``."""
    message: str
    source: str
    """Where it comes from: ``container diff``, ``container config``, ``image history``, ..."""
    container: str = ""
    """The container's name (else its short id), empty when not about a container."""
    container_id: str = ""
    path: str = ""
    """Path inside the container or image (non-UTF-8 bytes as ``\\xNN``)."""
    sha256: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    """Further attributes (image id, pid, rule, severity, evidence...)."""

    def record(self) -> dict[str, Any]:
        micros = int(self.when.timestamp()) * 1_000_000 + self.when.microsecond
        out: dict[str, Any] = {
            "message": self.message,
            "datetime": self.when.isoformat().replace("+00:00", "Z"),
            "timestamp": micros,
            "timestamp_desc": self.timestamp_desc,
            "source": self.source,
        }
        for key in ("container", "container_id", "path", "sha256"):
            value = getattr(self, key)
            if value:
                out[key] = value
        for key, value in self.attributes:
            out.setdefault(key, value)
        return out


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 time (Docker writes nanoseconds) as aware UTC, or None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _ISO.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                             int((fraction or "0").ljust(6, "0")[:6]), tzinfo=dt.UTC)  # fmt: skip
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            moment -= sign * offset
    except (ValueError, OverflowError):
        return None
    return moment if moment.year >= _FIRST_YEAR else None


def from_ns(value: int) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromtimestamp(value / 1e9, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.year >= _FIRST_YEAR else None


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


_FILE_TIMES = (
    ("mtime_ns", "Content Modification Time"),
    ("atime_ns", "Last Access Time"),
    ("ctime_ns", "Metadata Modification Time"),
)
_KIND = {"A": "added", "C": "changed", "D": "deleted"}


def file_events(container: str, container_id: str, entries: Iterable[Any]) -> Iterator[TimelineEvent]:
    """Each time of each changed entry of a container's writable layer (``DiffEntry``)."""
    for entry in entries:
        meta = entry.current or entry.original
        if meta is None:
            continue
        path = display_path(entry.path)
        sha = entry.sha256 if isinstance(entry.sha256, str) else ""
        kind = _KIND.get(entry.kind, entry.kind)
        where = "in the writable layer" if entry.current is not None else "in the image (now deleted)"
        for field, desc in _FILE_TIMES:
            moment = from_ns(getattr(meta, field))
            if moment is None:
                continue
            yield TimelineEvent(
                moment, desc, f"{container}: {path} ({kind}, {meta.permissions} {meta.uid}:{meta.gid}, "
                f"{meta.size} bytes) {where}", "container diff", container, container_id, path, sha,
                (("kind", kind), ("flags", " ".join(entry.flags)), ("evidence", f"containers/{container_id}/diff.json")),
            )  # fmt: skip


MAX_LOG_LINES = 20_000
"""Log lines per container taken into the timeline (the whole log is in the archive)."""


def log_events(container: str, container_id: str, lines: Iterable[bytes]) -> Iterator[TimelineEvent]:
    """Each line of a container's json-file log (``{"log", "stream", "time"}``); a line that
    is not such a record is passed over (it is still in the copied log)."""
    evidence = f"containers/{container_id}/{container_id}-json.log"
    for count, raw in enumerate(lines):
        if count >= MAX_LOG_LINES:
            return
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        moment = parse_time(record.get("time"))
        if moment is None:
            continue
        stream = str(record.get("stream", ""))[:16]
        text = str(record.get("log", "")).rstrip("\n")[:500]
        yield TimelineEvent(
            moment, "Container Log Line", f"{container} {stream}: {text}", "container log",
            container, container_id, attributes=(("stream", stream), ("evidence", evidence)),
        )  # fmt: skip


def container_events(containers: Iterable[Any]) -> Iterator[TimelineEvent]:
    """Created, started and finished, from the disk's config.v2.json (``DiskContainer``)."""
    for c in containers:
        name = c.name or c.id[:12]
        times = (
            (c.created, "Container Created", "created"),
            (c.state.started_at, "Container Started", "started"),
            (c.state.finished_at, "Container Finished", f"finished (exit code {c.state.exit_code})"),
        )
        for value, desc, verb in times:
            moment = parse_time(value)
            if moment is not None:
                yield TimelineEvent(
                    moment, desc, f"container {name} {verb} from image {c.image_ref or c.image_id}",
                    "container config (disk)", name, c.id,
                    attributes=(("image_id", c.image_id), ("evidence", f"disk/containers/{c.id}/config.v2.json")),
                )  # fmt: skip


def api_container_events(entries: Iterable[Any], on_disk: set[str]) -> Iterator[TimelineEvent]:
    """Created and started as the Engine API reports them, for containers the disk does not show
    (those the disk shows are in :func:`container_events`)."""
    for e in entries:
        if e.id in on_disk:
            continue
        name = e.name or e.id[:12]
        for value, desc in ((e.created, "Container Created"), (e.started, "Container Started")):
            moment = parse_time(value)
            if moment is not None:
                yield TimelineEvent(moment, desc, f"container {name} {desc.split()[-1].lower()} "
                                    f"(Engine API only; not on disk)", "container list (API)", name, e.id,
                                    attributes=(("image_id", e.image_id), ("evidence", "containers.json")))  # fmt: skip


def image_events(image_id: str, tags: list[str], config: dict[str, Any]) -> Iterator[TimelineEvent]:
    """The image's creation and each history entry's time (``created_by`` is the build step)."""
    label = ", ".join(str(t) for t in tags[:5]) or image_id[:19]
    attrs = (
        ("image_id", image_id),
        ("image", label),
        ("evidence", f"disk/images/{image_id.removeprefix('sha256:')}.json"),
    )
    moment = parse_time(config.get("created"))
    if moment is not None:
        yield TimelineEvent(
            moment, "Image Created", f"image {label} created", "image config", attributes=attrs
        )
    history = config.get("history")
    for index, item in enumerate(history if isinstance(history, list) else []):
        if not isinstance(item, dict):
            continue
        moment = parse_time(item.get("created"))
        if moment is None:
            continue
        step = str(item.get("created_by") or item.get("comment") or "")[:1000]
        empty = " (no layer)" if item.get("empty_layer") else ""
        yield TimelineEvent(moment, "Image Layer Created", f"image {label} history #{index}{empty}: {step}",
                            "image history", attributes=(*attrs, ("history_index", str(index))))  # fmt: skip


def process_events(processes: Iterable[Any]) -> Iterator[TimelineEvent]:
    """Each process's start time (``ProcessRecord``)."""
    for p in processes:
        if getattr(p, "kernel_thread", False):
            continue
        moment = parse_time(p.start_time)
        if moment is None:
            continue
        ref = p.container
        name = "" if ref is None else (ref.name if isinstance(ref.name, str) else ref.id[:12])
        argv = " ".join(p.cmdline)[:1000] or f"[{p.comm}]"
        exe = p.exe if isinstance(p.exe, str) else ""
        sha = p.exe_sha256 if isinstance(p.exe_sha256, str) else ""
        yield TimelineEvent(
            moment, "Process Started", f"pid {p.pid} (ppid {p.ppid}, uid {p.uid}) started: {argv}",
            "process list", name, "" if ref is None else ref.id, exe, sha,
            (("pid", str(p.pid)), ("ppid", str(p.ppid)), ("uid", str(p.uid)), ("evidence", "processes/processes.json")),
        )  # fmt: skip


@dataclasses.dataclass
class EvidenceTimes:
    """Times a finding may be placed at: of a subject's files, and of the subject itself."""

    files: dict[str, dict[str, tuple[dt.datetime, str]]] = dataclasses.field(default_factory=dict)
    """subject -> path -> (time, what the time is)."""
    subjects: dict[str, tuple[dt.datetime, str]] = dataclasses.field(default_factory=dict)
    """subject -> (time, what the time is), e.g. a process's start."""

    def for_finding(self, finding: Any) -> tuple[dt.datetime, str] | None:
        """The newest time among the subject's files the finding names, else the subject's."""
        text = f"{finding.title}\n{finding.details}"
        named = [t for path, t in self.files.get(finding.subject, {}).items() if path in text]
        if named:
            moment, what = max(named)
            return moment, f"Finding: {what}"
        if finding.subject in self.subjects:
            moment, what = self.subjects[finding.subject]
            return moment, f"Finding: {what}"
        return None


def finding_events(
    findings: Iterable[Any], times: EvidenceTimes, collected: dt.datetime
) -> Iterator[TimelineEvent]:
    """Each finding at the time of what it cites when known, else at the collection time."""
    for f in findings:
        found = times.for_finding(f)
        moment, desc = found if found is not None else (collected, "Finding Reported (collection time)")
        cid = f.subject.removeprefix("container:") if f.subject.startswith("container:") else ""
        yield TimelineEvent(
            moment, desc, f"[{f.severity.value}] {f.title}", "finding", container_id=cid,
            attributes=(("finding_id", f.id), ("rule", f.rule), ("severity", f.severity.value),
                        ("subject", f.subject), ("evidence", " ".join(f.evidence)), ("reported_by", f.source)),
        )  # fmt: skip

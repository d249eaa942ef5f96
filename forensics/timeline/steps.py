"""Triage step ``timeline.build``: the last step of a run. It reads what earlier steps left in
``ctx.state`` and writes ``timeline/bodyfile.txt`` (the Sleuth Kit's body file, for
``mactime -b``) and ``timeline/timesketch.jsonl`` (Timesketch's JSON lines import).

The body file holds every file whose metadata a container diff collected (the writable
layer's added and changed entries, which the extraction copies; deleted entries with
their image metadata and `` (deleted)`` after the name, as fls marks them), each name
prefixed by its container: ``/<container-name>/path``. The Timesketch file adds
container, image, process and finding events to those file times.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from forensics.containers.steps import selected
from forensics.errors import UnsafePath
from forensics.findings import Finding, deduplicate
from forensics.host.rootfs import PathNotFound
from forensics.records import display_path, utc_now
from forensics.steps import Phase, Step, StepContext, register
from forensics.timeline import bodyfile, events

BODYFILE = "timeline/bodyfile.txt"
TIMESKETCH = "timeline/timesketch.jsonl"
FINDINGS = "findings"
"""``ctx.state`` key of the run's findings so far (the runner puts its list there)."""
ALL_IMAGES_ENV = "FORENSICS_ALL_IMAGES"


def _label(name: str, cid: str) -> str:
    return name.strip("/").replace("/", "_") or cid[:12]


def _body_entries(label: str, diff: Any) -> list[bodyfile.BodyEntry]:
    out = []
    prefix = b"/" + label.encode("utf-8", "surrogateescape")
    for entry in diff.entries:
        meta = entry.current or entry.original
        if meta is None:
            continue
        name = prefix + entry.path + (b" (deleted)" if entry.current is None else b"")
        out.append(bodyfile.BodyEntry(
            name=name, mode=meta.mode, uid=meta.uid, gid=meta.gid, size=meta.size,
            atime=meta.atime_ns // 1_000_000_000, mtime=meta.mtime_ns // 1_000_000_000,
            ctime=meta.ctime_ns // 1_000_000_000,
        ))  # fmt: skip
    return out


MAX_LOG_READ = 16 * 1024 * 1024
"""Bytes of a container's json-file log read for the timeline."""


def _log_lines(ctx: StepContext, container_id: str) -> list[bytes]:
    """The json-file log from disk, bounded; unreadable is a warning and no lines."""
    disk = ctx.host.disk()
    path = disk.path("containers", container_id, f"{container_id}-json.log")
    try:
        with ctx.host.rootfs().open_regular(path, follow=False) as (fd, _st):
            data = os.read(fd, MAX_LOG_READ)
    except (UnsafePath, OSError) as exc:
        if not isinstance(exc, PathNotFound):
            ctx.warn(f"container {container_id[:12]}: log unreadable for the timeline: {exc}")
        return []
    return data.splitlines()


def build(ctx: StepContext) -> None:
    state = ctx.state
    me = state.get("self")
    own_container = getattr(me, "container_id", None)
    own_image = getattr(me, "image_id", None)
    inventory = state.get("disk_inventory")
    disk_containers = selected(ctx) if inventory is not None or ctx.host.disk().exists() else []
    names = {c.id: _label(c.name, c.id) for c in disk_containers}
    for entry in state.get("containers") or []:
        names.setdefault(entry.id, _label(entry.name, entry.id))
    times = events.EvidenceTimes()
    body: list[bodyfile.BodyEntry] = []
    timeline: list[events.TimelineEvent] = []

    diffs: dict[str, Any] = state.get("container_diffs") or {}
    for cid, diff in sorted(diffs.items()):
        label = names.get(cid) or _label(getattr(diff, "name", ""), cid)
        body.extend(_body_entries(label, diff))
        timeline.extend(events.file_events(label, cid, diff.entries))
        files = times.files.setdefault(f"container:{cid}", {})
        for entry in diff.entries:
            meta = entry.current or entry.original
            moment = events.from_ns(meta.mtime_ns) if meta is not None else None
            if (
                moment is not None
                and meta is not None
                and not stat.S_ISDIR(meta.mode)
                and len(entry.path) > 1
            ):
                path = display_path(entry.path)
                files[path] = (moment, f"Content Modification Time of {path}")

    for container in disk_containers:
        if container.id != own_container:
            timeline.extend(
                events.log_events(names[container.id], container.id, _log_lines(ctx, container.id))
            )

    for event in events.container_events(disk_containers):
        timeline.append(event)
        if event.timestamp_desc == "Container Created":
            times.subjects[f"container:{event.container_id}"] = (event.when, "Container Created")
    on_disk = {c.id for c in getattr(inventory, "containers", []) or []}
    api_only = [e for e in state.get("containers") or [] if e.id != own_container and e.id not in on_disk]
    timeline.extend(events.api_container_events(api_only, on_disk))

    timeline.extend(_image_events(ctx, inventory, disk_containers, own_image, times))

    listing = state.get("processes")
    processes = getattr(listing, "processes", None) or []
    for event in events.process_events(processes):
        timeline.append(event)
        times.subjects[f"process:{dict(event.attributes)['pid']}"] = (event.when, "Process Started")

    findings: list[Finding] = deduplicate(list(state.get(FINDINGS) or []))
    findings = [f for f in findings if f.subject != f"container:{own_container}"]
    timeline.extend(events.finding_events(findings, times, utc_now()))

    timeline.sort(key=lambda e: (e.when, e.source, e.message))
    ctx.sink.add_bytes(BODYFILE, bodyfile.render(body))
    ctx.sink.add_jsonl(TIMESKETCH, (e.record() for e in timeline))
    ctx.log.event(
        ctx.step, "info", message="timeline written", bodyfile_lines=len(body), events=len(timeline)
    )


def _image_events(ctx: StepContext, inventory: Any, containers: list[Any], own_image: object,
                  times: events.EvidenceTimes) -> list[events.TimelineEvent]:  # fmt: skip
    """Creation and history of the images the containers use (every image with
    FORENSICS_ALL_IMAGES=1), read from their configs on disk."""
    if inventory is None:
        return []
    wanted = {c.image_id for c in containers}
    if os.environ.get(ALL_IMAGES_ENV) == "1":
        wanted.update(image.id for image in inventory.images)
    wanted.discard(own_image)
    disk = ctx.host.disk()
    out: list[events.TimelineEvent] = []
    for image in sorted(inventory.images, key=lambda i: i.id):
        if image.id not in wanted:
            continue
        problems: list[Any] = []
        config = disk.read_json(image.config_path, problems)
        for problem in problems:
            ctx.warn(f"image {image.id[:19]}: {problem.message}", image=image.id)
        if config is None:
            continue
        for event in events.image_events(image.id, list(image.repo_tags), config):
            out.append(event)
            if event.timestamp_desc == "Image Created":
                for subject in (f"image:{image.id}", f"image:{image.id.removeprefix('sha256:')}"):
                    times.subjects[subject] = (event.when, "Image Created")
    return out


register(Step("timeline.build", Phase.SCANS, build, timeout=600,
              description="bodyfile (mactime) and Timesketch JSON lines from what the run collected"))  # fmt: skip
